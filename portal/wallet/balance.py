"""A card's prepaid balance: two ledger accounts (principal and bonus), bills paid from
them (charges) and refunds of those bills.

- Spending order: **principal first, then bonus**. A bill takes all it can from the
  principal that may be spent now, and only the rest from the bonus.
- Refunds go the reverse way: a refund returns **bonus first**, up to what the charge
  took from bonus and has not returned yet, then principal. Over all refunds of a charge
  each account gets back exactly what the charge took from it.
- Same-day restrictions (custom top-up plans): a top-up credited today (the merchant's
  local day) whose plan sets `same_day_usable_bp` locks amount × (10000 − bp) / 10000,
  rounded up, of principal until local midnight; a plan with `bonus_locked_same_day`
  locks that top-up's bonus until local midnight. Locked money cannot pay today.

The accounts are ledger accounts of owner ("card", MemberCard.id) in the card plan's
currency; only `portal.ledger.post` changes them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import String, cast, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, scoped_session, selectinload

from portal import clock, ledger
from portal.db import transaction
from portal.ledger import AccountKind, InsufficientBalance
from portal.members.models import Member, MemberCard
from portal.wallet.errors import WalletError, WalletErrorCode
from portal.wallet.models import (
    Charge,
    ChargeRefund,
    ChargeStatus,
    Topup,
    TopupPlan,
    TopupStatus,
)

OWNER = "card"
KINDS = (AccountKind.PREPAID_PRINCIPAL, AccountKind.PREPAID_BONUS)
MAX_KEY = 128


@dataclass
class Balance:
    principal: int
    bonus: int
    currency: str
    # What today's top-ups keep from paying until local midnight (`locked_until`); never
    # more than the account holds.
    locked_principal: int = 0
    locked_bonus: int = 0
    locked_until: datetime | None = None
    # Money from top-ups that may only pay for certain items (not for any bill).
    restricted: int = 0

    @property
    def total(self) -> int:
        return self.principal + self.bonus

    @property
    def spendable_principal(self) -> int:
        return self.principal - self.locked_principal

    @property
    def spendable_bonus(self) -> int:
        return self.bonus - self.locked_bonus

    @property
    def spendable_now(self) -> int:
        """What any bill can take now: not what is locked, nor what is only for certain
        items (a bill naming those items can take that too)."""
        return max(self.spendable_principal + self.spendable_bonus - self.restricted, 0)

    @property
    def locked(self) -> int:
        return self.locked_principal + self.locked_bonus

    def as_dict(self) -> dict:
        return {"currency": self.currency, "balance": self.total, "principal": self.principal,
                "bonus": self.bonus, "spendable_now": self.spendable_now,
                "restricted_to_items": self.restricted}


@dataclass
class CardBalance:
    """One card on the member's balance page: its balance and a page of its history."""

    card: MemberCard
    balance: Balance
    entries: list[ledger.Entry] = field(default_factory=list)


# --- reading -------------------------------------------------------------------------------

def balance(session: Session, card_id: int) -> Balance:
    """The card's balance, with what is locked until midnight."""
    card = session.get(MemberCard, card_id)
    if card is None:
        raise WalletError(WalletErrorCode.UNKNOWN_CARD, _("There is no card with this number."))
    return _balances(session, [card])[card.id]


def _balances(session: Session, cards: list[MemberCard],
              known: dict[int, dict[str, int]] | None = None) -> dict[int, Balance]:
    """Balances of several cards in two queries (accounts, today's locking top-ups)."""
    ids = [c.id for c in cards]
    amounts = known if known is not None else _account_balances(session, cards)
    locks = _locks(session, ids)
    restricted = _restricted(session, ids)
    until = clock.start_of_local_day(clock.today() + timedelta(days=1))
    result = {}
    for card in cards:
        held = amounts.get(card.id, {})
        principal = held.get(AccountKind.PREPAID_PRINCIPAL, 0)
        bonus = held.get(AccountKind.PREPAID_BONUS, 0)
        lock_p, lock_b = locks.get(card.id, (0, 0))
        lock_p, lock_b = min(lock_p, principal), min(lock_b, bonus)
        result[card.id] = Balance(principal, bonus, card.plan.currency, lock_p, lock_b,
                                  until if lock_p or lock_b else None,
                                  restricted.get(card.id, 0))
    return result


def _account_balances(session: Session, cards: list[MemberCard]) -> dict[int, dict[str, int]]:
    currency = {c.id: c.plan.currency for c in cards}
    rows = session.execute(
        select(ledger.Account.owner_id, ledger.Account.kind, ledger.Account.currency,
               ledger.Account.balance)
        .where(ledger.Account.owner_type == OWNER, ledger.Account.owner_id.in_(currency),
               ledger.Account.kind.in_(KINDS))).all()
    found: dict[int, dict[str, int]] = {}
    for owner_id, kind, acc_currency, amount in rows:
        if acc_currency == currency[owner_id]:
            found.setdefault(owner_id, {})[kind] = amount
    return found


def _locks(session: Session, card_ids: list[int]) -> dict[int, tuple[int, int]]:
    """(principal, bonus) that top-ups credited today keep from paying until midnight."""
    if not card_ids:
        return {}
    rows = session.execute(
        select(Topup.card_id, Topup.amount_minor, Topup.refunded_minor, Topup.bonus_minor,
               TopupPlan.same_day_usable_bp, TopupPlan.bonus_locked_same_day)
        .join(TopupPlan, TopupPlan.id == Topup.plan_id)
        .where(Topup.card_id.in_(card_ids), Topup.status == TopupStatus.CREDITED,
               Topup.credited_at >= clock.start_of_local_day(clock.today()),
               or_(TopupPlan.same_day_usable_bp.is_not(None),
                   TopupPlan.bonus_locked_same_day.is_(True)))).all()
    locks: dict[int, tuple[int, int]] = {}
    for card_id, amount, refunded, bonus, usable_bp, bonus_locked in rows:
        principal_lock = 0
        if usable_bp is not None:
            usable_bp = min(max(usable_bp, 0), 10000)
            # Rounded up: the member never spends more than the plan allows today.
            principal_lock = -(-max(amount - refunded, 0) * (10000 - usable_bp) // 10000)
        bonus_lock = bonus if bonus_locked else 0
        p, b = locks.get(card_id, (0, 0))
        locks[card_id] = (p + principal_lock, b + bonus_lock)
    return locks


# --- item restrictions ---------------------------------------------------------------------
#
# A top-up whose plan lists items (`spend_product_ids`) may only pay for those items. Its
# money is followed through the ledger's lots: each credit is a lot with what is left of
# it (`open_amount`) and its source top-up; a charge names the lots it spends, and a
# refund credits them back with the same source, so the restriction stays with the money.

@dataclass
class Lot:
    entry_id: int
    kind: str
    open: int
    topup_id: int | None
    items: frozenset[str] | None        # None: any bill


def _lot_query(account_ids):
    source = ledger.Entry.source_id
    return (select(ledger.Entry.id, ledger.Account.kind, ledger.Entry.open_amount, Topup.id,
                   TopupPlan.spend_product_ids, ledger.Account.owner_id)
            .join(ledger.Account, ledger.Account.id == ledger.Entry.account_id)
            .outerjoin(Topup, (ledger.Entry.source_type == "topup")
                       & (cast(Topup.id, String) == source))
            .outerjoin(TopupPlan, TopupPlan.id == Topup.plan_id)
            .where(ledger.Entry.account_id.in_(account_ids), ledger.Entry.open_amount > 0)
            .order_by(ledger.Entry.id))


def _lots(session: Session, accounts) -> list[Lot]:
    rows = session.execute(_lot_query([a.id for a in accounts])).all()
    return [Lot(entry_id, kind, open_amount, topup_id,
                frozenset(items) if items else None)
            for entry_id, kind, open_amount, topup_id, items, _owner in rows]


def _restricted(session: Session, card_ids: list[int]) -> dict[int, int]:
    """Per card: the money left that only some items may take (one query)."""
    if not card_ids:
        return {}
    accounts = select(ledger.Account.id).where(ledger.Account.owner_type == OWNER,
                                               ledger.Account.owner_id.in_(card_ids),
                                               ledger.Account.kind.in_(KINDS))
    found: dict[int, int] = {}
    for _e, _k, open_amount, _t, items, owner in session.execute(_lot_query(accounts)):
        if items:
            found[owner] = found.get(owner, 0) + open_amount
    return found


def _topup_locks(session: Session, card_id: int) -> dict[tuple[int, str], int]:
    """(top-up, kind) → what that top-up keeps locked until midnight."""
    rows = session.execute(
        select(Topup.id, Topup.amount_minor, Topup.refunded_minor, Topup.bonus_minor,
               TopupPlan.same_day_usable_bp, TopupPlan.bonus_locked_same_day)
        .join(TopupPlan, TopupPlan.id == Topup.plan_id)
        .where(Topup.card_id == card_id, Topup.status == TopupStatus.CREDITED,
               Topup.credited_at >= clock.start_of_local_day(clock.today()),
               or_(TopupPlan.same_day_usable_bp.is_not(None),
                   TopupPlan.bonus_locked_same_day.is_(True)))).all()
    locks = {}
    for topup_id, amount, refunded, bonus, usable_bp, bonus_locked in rows:
        if usable_bp is not None:
            usable_bp = min(max(usable_bp, 0), 10000)
            locks[(topup_id, AccountKind.PREPAID_PRINCIPAL)] = \
                -(-max(amount - refunded, 0) * (10000 - usable_bp) // 10000)
        if bonus_locked:
            locks[(topup_id, AccountKind.PREPAID_BONUS)] = bonus
    return locks


def allocate(lots: list[Lot], locks: dict[tuple[int, str], int], amount: int,
             lines: list[tuple[str, int]]) -> list[tuple[Lot, int]] | None:
    """Which credits pay a bill of `amount` whose `lines` name items: principal first, then
    bonus; within each, restricted money on the lines it may pay for first, then money for
    any bill. None when the bill cannot be paid in full."""
    line_left = [n for _item, n in lines]
    free_left = amount - sum(line_left)
    lock_left = dict(locks)
    taken: list[tuple[Lot, int]] = []

    def available(lot: Lot) -> int:
        lock = lock_left.get((lot.topup_id, lot.kind), 0)
        held = min(lock, lot.open)
        if held:
            lock_left[(lot.topup_id, lot.kind)] = lock - held
        return lot.open - held

    for kind in KINDS:
        own = [lot for lot in lots if lot.kind == kind]
        for lot in [lot for lot in own if lot.items]:
            can = available(lot)
            used = 0
            for i, (item, _n) in enumerate(lines):
                if can == used:
                    break
                if item in lot.items and line_left[i]:
                    step = min(can - used, line_left[i])
                    line_left[i] -= step
                    used += step
            if used:
                taken.append((lot, used))
        for lot in [lot for lot in own if not lot.items]:
            can = available(lot)
            used = min(can, free_left)
            free_left -= used
            for i in range(len(line_left)):
                if can == used:
                    break
                step = min(can - used, line_left[i])
                line_left[i] -= step
                used += step
            if used:
                taken.append((lot, used))
    if free_left or any(line_left):
        return None
    return taken


def member_balances(session: Session, member_id: int, *, card_id: int | None = None,
                    before_id: int | None = None, limit: int = 20) -> list[CardBalance]:
    """The member's cards that have a prepaid account, each with a page of history.

    With `card_id`, only that card, and only if it is the member's (else an empty list).
    The number of queries does not grow with the history: cards, accounts, locks, and one
    page of entries per card."""
    query = select(MemberCard).options(selectinload(MemberCard.plan)) \
        .where(MemberCard.member_id == member_id).order_by(MemberCard.id)
    if card_id is not None:
        query = query.where(MemberCard.id == card_id)
    cards = list(session.scalars(query))
    amounts = _account_balances(session, cards) if cards else {}
    cards = [c for c in cards if c.id in amounts]
    balances = _balances(session, cards, amounts)
    return [CardBalance(c, balances[c.id], history(session, c.id, before_id=before_id,
                                                    limit=limit)) for c in cards]


def history(session: Session, card_id: int, before_id: int | None = None,
            limit: int = 20) -> list[ledger.Entry]:
    """Entries of both accounts merged, newest first, `limit` at a time (`before_id`: the
    last entry of the previous page). Each entry gets `.kind` for display."""
    query = select(ledger.Entry, ledger.Account.kind).join(
        ledger.Account, ledger.Account.id == ledger.Entry.account_id).where(
        ledger.Account.owner_type == OWNER, ledger.Account.owner_id == card_id,
        ledger.Account.kind.in_(KINDS))
    if before_id:
        query = query.where(ledger.Entry.id < before_id)
    rows = session.execute(query.order_by(ledger.Entry.id.desc()).limit(limit)).all()
    for entry, kind in rows:
        entry.kind = kind
    return [entry for entry, _kind in rows]


# --- crediting (in the caller's transaction) -----------------------------------------------

def _accounts(session: Session, card: MemberCard, currency: str | None = None,
              *, lock: bool = False) -> tuple[ledger.Account, ledger.Account]:
    """The card's principal and bonus accounts, created on first use. With `lock`, both
    rows are locked (in id order) so one card's spends run one after the other."""
    currency = currency or card.plan.currency
    accounts = [ledger.account(session, kind, OWNER, card.id, currency) for kind in KINDS]
    if lock:
        ids = sorted(a.id for a in accounts)
        session.scalars(select(ledger.Account).where(ledger.Account.id.in_(ids))
                        .order_by(ledger.Account.id).with_for_update()
                        .execution_options(populate_existing=True)).all()
    return accounts[0], accounts[1]


def credit(session: Session, card: MemberCard, *, principal: int, bonus: int, key: str,
           reason: str, source: tuple[str, int]) -> None:
    """Add to the card's principal and bonus, in the caller's transaction. Idempotent per
    `key` (f"{key}:principal", f"{key}:bonus"); zero amounts post nothing."""
    if principal < 0 or bonus < 0:
        raise ValueError("credit() adds; amounts are ≥ 0")
    principal_acc, bonus_acc = _accounts(session, card)
    for acc, amount, part in ((principal_acc, principal, "principal"),
                              (bonus_acc, bonus, "bonus")):
        if amount:
            ledger.post(session, acc, amount, reason=reason, key=f"{key}:{part}",
                        source=source)


def debit_for_refund(session: Session, card: MemberCard, *, principal: int, bonus: int,
                     key: str, reason: str, source: tuple[str, int]) -> tuple[int, int]:
    """Take back up to `principal` and `bonus` (a refunded top-up), in the caller's
    transaction. What was spent already cannot be taken: never below zero. Returns what
    was taken, (principal, bonus); the same key again takes nothing more and returns what
    that key took."""
    if principal < 0 or bonus < 0:
        raise ValueError("debit_for_refund() takes amounts ≥ 0")
    taken = []
    for acc, wanted, part in zip(_accounts(session, card, lock=True), (principal, bonus),
                                 ("principal", "bonus"), strict=True):
        done = session.scalar(select(ledger.Entry).where(
            ledger.Entry.account_id == acc.id, ledger.Entry.idempotency_key == f"{key}:{part}"))
        if done is not None:
            taken.append(-done.delta)
            continue
        amount = min(wanted, acc.balance)
        if amount > 0:
            ledger.post(session, acc, -amount, reason=reason, key=f"{key}:{part}",
                        source=source, lots=_own_lots_first(session, acc, source, amount))
        taken.append(max(amount, 0))
    return taken[0], taken[1]


def _own_lots_first(session: Session, acc, source: tuple[str, int],
                    amount: int) -> list[tuple[int, int]]:
    """The credits a refunded top-up takes back: its own first, then the oldest."""
    lots = _lots(session, (acc,))
    topup_id = source[1] if source[0] == "topup" else None
    ordered = [lot for lot in lots if lot.topup_id == topup_id] + \
        [lot for lot in lots if lot.topup_id != topup_id]
    taken = []
    for lot in ordered:
        if not amount:
            break
        step = min(lot.open, amount)
        taken.append((lot.entry_id, step))
        amount -= step
    return taken


# --- charges -------------------------------------------------------------------------------

def _owns_transaction(session: Session) -> bool:
    raw = session() if isinstance(session, scoped_session) else session
    return not raw.info.get("writing")


def _check_card(card: MemberCard | None) -> MemberCard:
    if card is None:
        raise WalletError(WalletErrorCode.UNKNOWN_CARD, _("There is no card with this number."))
    status = card.current_status()
    if status != "active":
        from portal.web.filters import card_status_label

        raise WalletError(WalletErrorCode.CARD_INACTIVE,
                          _("This card is %(status)s.", status=card_status_label(status)),
                          card_status=status)
    return card


def _check_key(key: str, name: str) -> None:
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY:
        raise WalletError(WalletErrorCode.INVALID,
                          _("A %(name)s of up to %(n)d characters is needed.", name=name,
                            n=MAX_KEY), field=name)


def _charge_by_key(session: Session, card_id: int, key: str) -> Charge | None:
    return session.scalar(select(Charge).where(Charge.card_id == card_id,
                                               Charge.idempotency_key == key))


def _replay(charge: Charge, amount_minor: int, currency: str) -> Charge:
    if charge.amount_minor != amount_minor or charge.currency != currency:
        raise WalletError(WalletErrorCode.IDEMPOTENCY_CONFLICT,
                          _("This idempotency key was used for another amount."),
                          charge_id=charge.id)
    charge.replayed = True
    return charge


def clean_lines(lines, amount_minor: int) -> list[tuple[str, int]]:
    """A bill's items as (product id, amount); they may not add up to more than the bill
    (what they leave is the bill's other items)."""
    cleaned = []
    for line in lines or []:
        # A line that is not an object, or a product id that is not text, is refused, not
        # read with str(): the API fuzzing found ["x"] answered with a server error.
        line = line if isinstance(line, dict) else {}
        item = line.get("product_id")
        item = item.strip()[:64] if isinstance(item, str) else ""
        amount = line.get("amount")
        if not item or type(amount) is not int or amount < 0:
            raise WalletError(WalletErrorCode.INVALID,
                              _("Each line needs a product id and an amount ≥ 0."),
                              field="lines")
        cleaned.append((item, amount))
    if sum(n for _item, n in cleaned) > amount_minor:
        raise WalletError(WalletErrorCode.INVALID,
                          _("The lines add up to more than the bill."), field="lines")
    return cleaned


def charge(session: Session, *, card_id: int, amount_minor: int, currency: str,
           idempotency_key: str, order_external_id: str | None = None,
           store_id: int | None = None, channel: str, client_id: int | None = None,
           lines: list[dict] | None = None) -> Charge:
    """Pay a bill from the card's balance: principal first, then bonus, never locked money,
    never part of a bill; money a top-up keeps for certain items only pays `lines` naming
    them. Once per (card, idempotency key): the same key again returns the first charge
    (`charge.replayed` is True then), with another amount it is refused."""
    if type(amount_minor) is not int or amount_minor <= 0:
        raise WalletError(WalletErrorCode.INVALID_AMOUNT,
                          _("Enter an amount above zero, in minor units."), field="amount")
    _check_key(idempotency_key, "idempotency_key")
    items = clean_lines(lines, amount_minor)
    owns = _owns_transaction(session)
    try:
        with transaction(session):
            existing = _charge_by_key(session, card_id, idempotency_key)
            if existing is not None:
                return _replay(existing, amount_minor, currency)
            card = _check_card(session.get(MemberCard, card_id))
            if currency != card.plan.currency:
                raise WalletError(WalletErrorCode.WRONG_CURRENCY,
                                  _("The card's currency is %(currency)s.",
                                    currency=card.plan.currency))
            # The row locks make one card's charges take turns: the lock check below is a
            # read, and the ledger's conditional UPDATE alone knows nothing of locks.
            principal_acc, bonus_acc = _accounts(session, card, lock=True)
            existing = _charge_by_key(session, card_id, idempotency_key)
            if existing is not None:  # committed by a parallel request while we waited
                return _replay(existing, amount_minor, currency)
            now = _balances(session, [card], {card.id: {
                AccountKind.PREPAID_PRINCIPAL: principal_acc.balance,
                AccountKind.PREPAID_BONUS: bonus_acc.balance}})[card.id]
            plan = allocate(_lots(session, (principal_acc, bonus_acc)),
                            _topup_locks(session, card.id), amount_minor, items)
            if plan is None:
                raise _insufficient(now, amount_minor)
            from_principal = sum(n for lot, n in plan if lot.kind == principal_acc.kind)
            from_bonus = amount_minor - from_principal
            paid = Charge(card_id=card.id, member_id=card.member_id, currency=currency,
                          amount_minor=amount_minor, principal_minor=from_principal,
                          bonus_minor=from_bonus, order_external_id=order_external_id,
                          store_id=store_id, channel=channel, client_id=client_id,
                          idempotency_key=idempotency_key, created_at=clock.now(),
                          lots=[{"entry": lot.entry_id, "kind": lot.kind,
                                 "topup": lot.topup_id, "amount": n, "refunded": 0}
                                for lot, n in plan])
            session.add(paid)
            session.flush()
            try:
                for acc, amount in ((principal_acc, from_principal), (bonus_acc, from_bonus)):
                    if amount:
                        ledger.post(session, acc, -amount, reason="charge",
                                    key=f"charge:{paid.id}", source=("charge", paid.id),
                                    lots=[(lot.entry_id, n) for lot, n in plan
                                          if lot.kind == acc.kind])
            except InsufficientBalance:  # not expected under the row locks; refuse whole
                raise _insufficient(now, amount_minor) from None
            paid.replayed = False
            return paid
    except IntegrityError:
        # The same key was charged meanwhile by a parallel request (the unique constraint).
        if not owns:
            raise
        session.rollback()
        existing = _charge_by_key(session, card_id, idempotency_key)
        if existing is None:
            raise
        return _replay(existing, amount_minor, currency)


def _insufficient(now: Balance, amount_minor: int) -> WalletError:
    return WalletError(WalletErrorCode.INSUFFICIENT_BALANCE,
                       _("The balance cannot pay this bill."),
                       amount=amount_minor, **now.as_dict(), locked=now.locked)


def refund_charge(session: Session, charge_id: int, *, amount_minor: int | None,
                  refund_key: str, store_id: int | None = None) -> ChargeRefund:
    """Give back a charge, whole (`amount_minor` None: all that is left) or in part, never
    more than is left. Bonus comes back first, up to what the charge took from bonus and
    has not returned, then principal. Once per refund key: the same key again returns the
    first refund (`refund.replayed` is True); with another amount it is refused. With
    `store_id`, only a charge made at that store is found."""
    if amount_minor is not None and (type(amount_minor) is not int or amount_minor <= 0):
        raise WalletError(WalletErrorCode.INVALID_AMOUNT,
                          _("Enter an amount above zero, in minor units."), field="amount")
    _check_key(refund_key, "refund_key")
    owns = _owns_transaction(session)
    try:
        with transaction(session):
            # The charge's row lock makes its refunds take turns: none sees a stale "left".
            paid = session.scalar(select(Charge).where(Charge.id == charge_id)
                                  .with_for_update()
                                  .execution_options(populate_existing=True))
            if paid is None or (store_id is not None and paid.store_id != store_id):
                raise WalletError(WalletErrorCode.UNKNOWN_CHARGE, _("There is no such charge."))
            done = _refund_by_key(session, charge_id, refund_key)
            if done is not None:
                return _replay_refund(done, amount_minor)
            # Closing forfeited the bonus and erased the member; money put back here would
            # sit on a frozen card of no one. Locked as closing locks it (close_account
            # holds the member row), so a closure and a refund cannot pass each other.
            closed = session.scalar(select(Member.closed_at)
                                    .join(MemberCard, MemberCard.member_id == Member.id)
                                    .where(MemberCard.id == paid.card_id)
                                    .with_for_update(of=Member, read=True))
            if closed is not None:
                raise WalletError(WalletErrorCode.MEMBER_CLOSED,
                                  _("The member's account is closed: this charge cannot "
                                    "go back on the card. Pay it back another way."))
            left = paid.amount_minor - paid.refunded_minor
            amount = left if amount_minor is None else amount_minor
            if left == 0 or amount > left:
                raise WalletError(WalletErrorCode.REFUND_TOO_LARGE,
                                  _("Only %(n)d (minor units) of this charge can be refunded.",
                                    n=left), left=left)
            bonus_back = min(amount, paid.bonus_minor - paid.refunded_bonus_minor)
            principal_back = amount - bonus_back
            refund = ChargeRefund(charge_id=paid.id, refund_key=refund_key,
                                  amount_minor=amount, principal_minor=principal_back,
                                  bonus_minor=bonus_back, created_at=clock.now())
            session.add(refund)
            session.flush()
            card = session.get(MemberCard, paid.card_id)
            principal_acc, bonus_acc = _accounts(session, card, paid.currency)
            parts = [dict(part) for part in paid.lots]
            n = 0
            for acc, back in ((principal_acc, principal_back), (bonus_acc, bonus_back)):
                # Back to the credits it came from, the last taken first, each with the
                # source of its top-up: an item restriction stays with the money.
                for part in reversed([p for p in parts if p["kind"] == acc.kind]):
                    step = min(back, part["amount"] - part["refunded"])
                    if step <= 0:
                        continue
                    part["refunded"] += step
                    back -= step
                    n += 1
                    ledger.post(session, acc, step, reason="charge_refund",
                                key=f"charge_refund:{refund.id}:{n}",
                                source=("topup", part["topup"]) if part["topup"]
                                else ("charge_refund", refund.id))
                if back:  # a charge made before its lots were kept
                    ledger.post(session, acc, back, reason="charge_refund",
                                key=f"charge_refund:{refund.id}",
                                source=("charge_refund", refund.id))
            paid.lots = parts
            paid.refunded_minor += amount
            paid.refunded_principal_minor += principal_back
            paid.refunded_bonus_minor += bonus_back
            if paid.refunded_minor == paid.amount_minor:
                paid.status = ChargeStatus.REFUNDED
            session.flush()
            refund.replayed = False
            return refund
    except IntegrityError:
        if not owns:
            raise
        session.rollback()
        done = _refund_by_key(session, charge_id, refund_key)
        if done is None:
            raise
        return _replay_refund(done, amount_minor)


def _refund_by_key(session: Session, charge_id: int, key: str) -> ChargeRefund | None:
    return session.scalar(select(ChargeRefund).where(ChargeRefund.charge_id == charge_id,
                                                     ChargeRefund.refund_key == key))


def _replay_refund(refund: ChargeRefund, amount_minor: int | None) -> ChargeRefund:
    if amount_minor is not None and amount_minor != refund.amount_minor:
        raise WalletError(WalletErrorCode.IDEMPOTENCY_CONFLICT,
                          _("This refund key was used for another amount."),
                          refund_id=refund.id)
    refund.replayed = True
    return refund


def card_by_number(session: Session, card_no: str) -> MemberCard | None:
    """A card by its number (spaces and dashes ignored), whatever its status."""
    digits = "".join(ch for ch in str(card_no or "") if ch not in " -")
    return session.scalar(select(MemberCard).options(selectinload(MemberCard.plan))
                          .where(MemberCard.number == digits))


def get_charge(session: Session, charge_id: int) -> Charge | None:
    return session.get(Charge, charge_id)
