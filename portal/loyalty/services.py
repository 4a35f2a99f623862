"""Points and experience from spend: orders from tills and shops, refunds, redemption."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from fractions import Fraction

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from portal import clock, ledger
from portal.db import transaction
from portal.ledger import AccountKind, InsufficientBalance

# The parts of loyalty other packages use, reached through this module (ARCHITECTURE.md).
from portal.loyalty import alarm, events, tiers  # noqa: F401
from portal.loyalty.errors import LoyaltyError, LoyaltyErrorCode
from portal.loyalty.models import EarningRule, Order, OrderRefund, ProductFilter
from portal.members.models import Member, MemberCard

PAYMENT_METHODS = ("cash", "card", "prepaid", "gift_card", "points", "coupon")


@dataclass(frozen=True)
class OrderLine:
    line_id: str
    amount: int            # what was paid for the line, minor units
    product_id: str = ""
    name: str = ""
    category: str = ""
    quantity: int = 1


@dataclass(frozen=True)
class Payment:
    method: str
    amount: int


def points_expiry(rule: EarningRule | None, earned_at: datetime) -> datetime | None:
    """1 January after N years, at 0:00 local time (N = 0: the next 1 January)."""
    if rule is None or rule.points_expiry_years is None:
        return None
    year = clock.local(earned_at).year + rule.points_expiry_years + 1
    return clock.start_of_local_day(date(year, 1, 1))


def _matches(rule: EarningRule, line: OrderLine) -> bool:
    names = {n.casefold() for n in rule.filter_names or []}
    return line.product_id in set(rule.filter_product_ids or []) or \
        (bool(line.name) and line.name.casefold() in names)


def line_bases(rule: EarningRule | None, lines: list[OrderLine],
               payments: list[Payment]) -> dict[str, int]:
    """What each line contributes to earning: its paid amount if the product filter lets
    it earn, less its share of what was paid with points (points earn nothing)."""
    total = sum(line.amount for line in lines)
    paid_with_points = sum(p.amount for p in payments if p.method == "points")
    share = Fraction(max(total - paid_with_points, 0), total) if total else Fraction(0)
    bases = {}
    for line in lines:
        earns = True
        if rule is not None and rule.product_filter == ProductFilter.WHITELIST:
            earns = _matches(rule, line)
        elif rule is not None and rule.product_filter == ProductFilter.BLACKLIST:
            earns = not _matches(rule, line)
        bases[line.line_id] = int(line.amount * share) if earns else 0
    return bases


def earned(rule: EarningRule | None, base: int) -> tuple[int, int]:
    """(points, experience) for a base: E per N, integer floor (10 per 10: 29 gives 20)."""
    if rule is None:
        return 0, 0
    points = (base // rule.points_per_minor) * rule.points_amount \
        if rule.points_amount and rule.points_per_minor else 0
    experience = (base // rule.experience_per_minor) * rule.experience_amount \
        if rule.experience_amount and rule.experience_per_minor else 0
    return points, experience


def _card(session: Session, card_no: str) -> MemberCard:
    digits = "".join(ch for ch in str(card_no or "") if ch not in " -")
    card = session.scalar(select(MemberCard).options(selectinload(MemberCard.plan),
                                                     selectinload(MemberCard.tier))
                          .where(MemberCard.number == digits))
    if card is None:
        raise LoyaltyError(LoyaltyErrorCode.UNKNOWN_CARD, _("There is no card with this number."))
    return card


def _check_card(card: MemberCard) -> None:
    if card.current_status() != "active":
        from portal.web.filters import card_status_label

        raise LoyaltyError(LoyaltyErrorCode.CARD_INACTIVE,
                           _("This card is %(status)s.",
                             status=card_status_label(card.current_status())))


def _accounts(session: Session, member_id: int):
    return (ledger.account(session, AccountKind.POINTS, "member", member_id),
            ledger.account(session, AccountKind.EXPERIENCE, "member", member_id))


def record_order(session: Session, *, store_id: int, client_id: int | None, channel: str,
                 external_id: str, card_no: str, occurred_at: datetime, currency: str,
                 lines: list[OrderLine], payments: list[Payment]) -> tuple[Order, bool]:
    """Record an order and credit what it earns, once per (store, external id).

    Returns the order and whether it is new; the same order again changes nothing."""
    _check_order(lines, payments)
    try:
        with transaction(session):
            existing = _order(session, store_id, external_id)
            if existing is not None:
                return existing, False
            card = _card(session, card_no)
            _check_card(card)
            if currency != card.plan.currency:
                raise LoyaltyError(LoyaltyErrorCode.WRONG_CURRENCY,
                                   _("The card's currency is %(currency)s.",
                                     currency=card.plan.currency))
            rule = session.scalar(select(EarningRule).where(EarningRule.plan_id == card.plan_id))
            bases = line_bases(rule, lines, payments)
            base = sum(bases.values())
            points, experience = earned(rule, base)
            points = _multiplied(session, card, channel, occurred_at, points)
            if alarm.is_blocked(session, card.member, "earn"):
                points = 0  # an abnormal member earns no points while the block is on
            # Checked before the order row: its INTEGER columns would overflow first.
            if max(points, experience) > ledger.MAX_BALANCE:
                raise ledger.BalanceTooLarge(0, max(points, experience))
            order = Order(store_id=store_id, client_id=client_id, external_id=external_id,
                          member_id=card.member_id, channel=channel, occurred_at=occurred_at,
                          currency=currency, total_minor=sum(ln.amount for ln in lines),
                          earn_base_minor=base, points_earned=points,
                          experience_earned=experience,
                          lines=[{**ln.__dict__, "earn_base": bases[ln.line_id]}
                                 for ln in lines],
                          payments=[p.__dict__ for p in payments])
            session.add(order)
            session.flush()
            points_account, experience_account = _accounts(session, card.member_id)
            if points:
                ledger.post(session, points_account, points, reason="order",
                            key=f"order:{order.id}", source=("order", order.id),
                            expires_at=points_expiry(rule, occurred_at))
                alarm.check(session, card.member_id)
            if experience:
                ledger.post(session, experience_account, experience, reason="order",
                            key=f"order:{order.id}", source=("order", order.id))
                tiers.on_experience_change(session, card.member_id)
            member = session.get(Member, card.member_id)
            if member.last_purchase_at is None or member.last_purchase_at < occurred_at:
                member.last_purchase_at = occurred_at
            return order, True
    except IntegrityError:
        # The same order was recorded meanwhile by a parallel request.
        session.rollback()
        existing = _order(session, store_id, external_id)
        if existing is None:
            raise
        return existing, False


def _multiplied(session: Session, card: MemberCard, channel: str, at: datetime,
                points: int) -> int:
    """Points × the best multiplier benefit (or member day, birthday) active for the card on
    this channel at the order's time: the same rule as the basket quote. Experience is not
    multiplied: it decides tiers, which a promotion should not buy."""
    if not points:
        return 0
    from portal.benefits import quote

    multiplier_bp, _benefit = quote.points_multiplier(session, card, channel, at)
    return quote.multiply(points, multiplier_bp)


def _check_order(lines: list[OrderLine], payments: list[Payment]) -> None:
    ids = [ln.line_id for ln in lines]
    if not lines or len(set(ids)) != len(ids) or any(not i for i in ids):
        raise LoyaltyError(LoyaltyErrorCode.INVALID,
                           _("An order needs lines, each with its own line_id."))
    if any(ln.amount < 0 or ln.quantity <= 0 for ln in lines):
        raise LoyaltyError(LoyaltyErrorCode.INVALID,
                           _("Line amounts cannot be negative; quantities are above zero."))
    if any(p.method not in PAYMENT_METHODS or p.amount < 0 for p in payments):
        raise LoyaltyError(LoyaltyErrorCode.INVALID, _("Unknown payment method or amount."))


def _order(session: Session, store_id: int, external_id: str) -> Order | None:
    return session.scalar(select(Order).where(Order.store_id == store_id,
                                              Order.external_id == external_id))


def refund_order(session: Session, *, store_id: int, external_id: str, refund_id: str,
                 lines: list[tuple[str, int]] | None) -> OrderRefund:
    """Reverse what a refund takes back, in proportion, exactly once per refund id.

    `lines` are (line_id, amount); None refunds everything not refunded yet. Over all
    refunds no more is reversed than the order earned, and a full refund reverses it all."""
    with transaction(session):
        order = session.scalar(select(Order).options(selectinload(Order.refunds))
                               .where(Order.store_id == store_id,
                                      Order.external_id == external_id)
                                          .with_for_update().execution_options(populate_existing=True))
        if order is None:
            raise LoyaltyError(LoyaltyErrorCode.UNKNOWN_ORDER, _("There is no such order."))
        done = next((r for r in order.refunds if r.refund_id == refund_id), None)
        if done is not None:
            return done
        by_id = {ln["line_id"]: ln for ln in order.lines}
        refunded = {line_id: 0 for line_id in by_id}
        for r in order.refunds:
            for item in r.lines:
                refunded[item["line_id"]] += item["amount"]
        if lines is None:
            lines = [(i, by_id[i]["amount"] - refunded[i]) for i in by_id
                     if by_id[i]["amount"] > refunded[i]]
            if not lines:
                raise LoyaltyError(LoyaltyErrorCode.REFUND_TOO_LARGE,
                                   _("Everything on this order is refunded already."))
        for line_id, amount in lines:
            if line_id not in by_id:
                raise LoyaltyError(LoyaltyErrorCode.UNKNOWN_LINE,
                                   _("The order has no line %(line)s.", line=line_id))
            if amount <= 0 or refunded[line_id] + amount > by_id[line_id]["amount"]:
                raise LoyaltyError(LoyaltyErrorCode.REFUND_TOO_LARGE,
                                   _("Line %(line)s cannot be refunded by that much.",
                                     line=line_id))
            refunded[line_id] += amount
        # Fractions, then one floor: however a refund is split, the totals come out exact.
        base_back = sum((Fraction(refunded[i], by_id[i]["amount"]) * by_id[i]["earn_base"]
                         for i in by_id if by_id[i]["amount"]), Fraction(0))
        kept = 1 - base_back / order.earn_base_minor if order.earn_base_minor else Fraction(0)
        points_due = order.points_earned - int(order.points_earned * kept)
        experience_due = order.experience_earned - int(order.experience_earned * kept)
        # What earlier refunds could not take back (already spent) is written off, never
        # taken from points the member earned elsewhere.
        points_now = points_due - sum(r.points_reversed + r.points_written_off
                                      for r in order.refunds)
        experience_now = experience_due - sum(r.experience_reversed + r.experience_written_off
                                              for r in order.refunds)
        refund = OrderRefund(order=order, refund_id=refund_id,
                             lines=[{"line_id": i, "amount": a} for i, a in lines],
                             amount_minor=sum(a for _i, a in lines))
        session.add(refund)
        session.flush()
        points_account, experience_account = _accounts(session, order.member_id)
        refund.points_reversed = _take_back(session, points_account, points_now, refund)
        refund.points_written_off = max(points_now - refund.points_reversed, 0)
        refund.experience_reversed = _take_back(session, experience_account, experience_now,
                                                refund)
        refund.experience_written_off = max(experience_now - refund.experience_reversed, 0)
        if refund.experience_reversed:
            tiers.on_experience_change(session, order.member_id)
        return refund


def _take_back(session: Session, account, amount: int, refund: OrderRefund) -> int:
    """Debit up to `amount`; what was already spent cannot be taken back below zero."""
    amount = min(amount, account.balance)
    if amount > 0:
        ledger.post(session, account, -amount, reason="refund",
                    key=f"refund:{refund.order_id}:{refund.refund_id}",
                    source=("order_refund", refund.id))
    return max(amount, 0)


def redeem_points(session: Session, *, card_no: str, points: int, reference: str,
                  store_id: int) -> tuple[int, int]:
    """Spend points at a till or shop, once per reference. Returns (entry id, balance)."""
    if not isinstance(points, int) or points <= 0:
        raise LoyaltyError(LoyaltyErrorCode.INVALID, _("Redeem a whole number of points above "
                                                       "zero."))
    with transaction(session):
        card = _card(session, card_no)
        _check_card(card)
        if alarm.is_blocked(session, card.member, "redeem"):
            raise LoyaltyError(LoyaltyErrorCode.MEMBER_ABNORMAL,
                               _("This member's points are on hold: ask the shop."))
        account = ledger.account(session, AccountKind.POINTS, "member", card.member_id)
        ledger.expire(session, account)  # points that lapsed at 0:00 are gone already
        try:
            entry = ledger.post(session, account, -points, reason="redeem",
                                key=f"redeem:{store_id}:{reference}",
                                source=("store", store_id))
        except InsufficientBalance as e:
            raise LoyaltyError(LoyaltyErrorCode.INSUFFICIENT_POINTS,
                               _("Only %(n)d points are available.", n=e.available),
                               available=e.available) from None
        return entry.id, account.balance


@dataclass
class Standing:
    card: MemberCard
    member: Member
    points: int
    experience: int
    next_expiry_points: int
    next_expiry_at: datetime | None


def standing(session: Session, member: Member, card: MemberCard) -> Standing:
    """Balances and the points that expire next (the soonest-expiring open lots)."""
    points = ledger.balance(session, AccountKind.POINTS, "member", member.id)
    experience = ledger.balance(session, AccountKind.EXPERIENCE, "member", member.id)
    soonest = session.execute(
        select(ledger.Entry.expires_at, func.sum(ledger.Entry.open_amount))
        .join(ledger.Account, ledger.Account.id == ledger.Entry.account_id)
        .where(ledger.Account.kind == AccountKind.POINTS, ledger.Account.owner_type == "member",
               ledger.Account.owner_id == member.id, ledger.Entry.open_amount > 0,
               ledger.Entry.expires_at.is_not(None))
        .group_by(ledger.Entry.expires_at).order_by(ledger.Entry.expires_at).limit(1)).first()
    return Standing(card, member, points, experience,
                    int(soonest[1]) if soonest else 0, soonest[0] if soonest else None)


def member_standing(session: Session, member_id: int, card_no: str | None = None) -> Standing:
    """A member's standing on the card with `card_no` if it is theirs, else their first."""
    member = session.get(Member, member_id)
    digits = "".join(ch for ch in str(card_no or "") if ch not in " -")
    card = next((c for c in member.cards if c.number == digits), member.cards[0])
    return standing(session, member, card)


def lookup(session: Session, *, card_no: str | None = None,
           phone: str | None = None) -> Standing:
    if card_no:
        card = _card(session, card_no)
        member = session.get(Member, card.member_id)
    else:
        from portal.members.services import member_by_mobile

        member = member_by_mobile(session, phone or "")
        card = member.cards[0] if member is not None and member.cards else None
        if card is None:
            raise LoyaltyError(LoyaltyErrorCode.UNKNOWN_CARD,
                               _("There is no member with this number."))
    return standing(session, member, card)


from portal import jobs  # noqa: E402


@jobs.on_tick("expire_points")
def expire_points(session: Session) -> int:
    """Expire what is left of points whose 1 January has come (idempotent per lot)."""
    accounts = session.scalars(
        select(ledger.Account).join(ledger.Entry, ledger.Entry.account_id == ledger.Account.id)
        .where(ledger.Account.kind == AccountKind.POINTS, ledger.Entry.open_amount > 0,
               ledger.Entry.expires_at <= clock.now()).distinct()).all()
    session.rollback()
    total = 0
    for account_id in [a.id for a in accounts]:
        with transaction(session):
            total += ledger.expire(session, session.get(ledger.Account, account_id))
    return total


# --- staff: earning rules and adjustments ---------------------------------------------------

def earning_rules(session: Session) -> list[tuple]:
    """Every card plan with its earning rule (None when not set up yet)."""
    from portal.members.models import CardPlan

    plans = session.scalars(select(CardPlan).order_by(CardPlan.id)).all()
    rules = {r.plan_id: r for r in session.scalars(select(EarningRule))}
    return [(p, rules.get(p.id)) for p in plans]


def earning_rule_errors(data: dict) -> dict[str, str]:
    """What is wrong with an earning rule's settings, by field (empty when fine)."""
    errors = {}
    for amount, per in (("points_amount", "points_per_minor"),
                        ("experience_amount", "experience_per_minor")):
        if data.get(amount) is None or not 0 <= data[amount] <= 1_000_000:
            errors[amount] = _("From 0 (none) to 1,000,000.")
        if data.get(per) is None or data[per] <= 0:
            errors[per] = _("Enter an amount above zero.")
    if data.get("product_filter") not in {f.value for f in ProductFilter}:
        errors["product_filter"] = _("Choose which products earn.")
    elif data["product_filter"] != ProductFilter.NONE and not (
            data.get("filter_product_ids") or data.get("filter_names")):
        errors["filter_product_ids"] = _("List the products (by id or name) the rule is about.")
    years = data.get("points_expiry_years")
    if years is not None and not 0 <= years <= 50:
        errors["points_expiry_years"] = _("From 0 to 50 years, or never.")
    return errors


def save_earning_rule(session: Session, plan_id: int, data: dict, *,
                      operator_id: int) -> EarningRule:
    """Set how a plan's members earn. Every problem is reported at once, by field."""
    from portal.members.models import CardPlan
    from portal.staff.services import record

    errors = earning_rule_errors(data)
    if errors:
        raise LoyaltyError(LoyaltyErrorCode.INVALID, _("Please correct the marked fields."),
                           errors=errors)
    fields = ("points_amount", "points_per_minor", "experience_amount", "experience_per_minor",
              "product_filter", "filter_product_ids", "filter_names", "points_expiry_years")
    with transaction(session):
        if session.get(CardPlan, plan_id) is None:
            raise LoyaltyError(LoyaltyErrorCode.INVALID, _("There is no such card plan."))
        rule = session.scalar(select(EarningRule).where(EarningRule.plan_id == plan_id)
                              .with_for_update().execution_options(populate_existing=True))
        before = {f: getattr(rule, f) for f in fields} if rule else None
        if rule is None:
            rule = EarningRule(plan_id=plan_id)
            session.add(rule)
        for name in fields:
            setattr(rule, name, data.get(name))
        rule.updated_at = clock.now()
        session.flush()
        record(session, operator_id, "earning_rule.update", ("card_plans", plan_id),
               before=before, after={f: data.get(f) for f in fields})
        return rule


def adjust(session: Session, *, member_id: int, kind: str, delta: int, reason: str,
           key: str, operator_id: int) -> int:
    """A staff correction of points or experience, with a reason; audited. Returns the
    new balance. The same key twice adjusts once."""
    from portal.staff.services import record

    reason = " ".join((reason or "").split())
    if kind not in (AccountKind.POINTS, AccountKind.EXPERIENCE):
        raise LoyaltyError(LoyaltyErrorCode.INVALID, _("Choose points or experience."))
    if not isinstance(delta, int) or delta == 0 or abs(delta) > 10_000_000:
        message = _("Enter a change other than zero, up to 10,000,000 either way.")
        raise LoyaltyError(LoyaltyErrorCode.INVALID, message, errors={"delta": message})
    if not reason:
        raise LoyaltyError(LoyaltyErrorCode.INVALID, _("Say why (it goes in the audit log)."),
                           errors={"reason": _("Say why (it goes in the audit log).")})
    with transaction(session):
        # Shared lock: closing holds the member row while it forfeits the points, so an
        # adjustment lands before (and is forfeited) or finds the account closed.
        member = session.scalar(select(Member).where(Member.id == member_id)
                                .with_for_update(read=True)
                                .execution_options(populate_existing=True))
        if member is None:
            raise LoyaltyError(LoyaltyErrorCode.UNKNOWN_CARD, _("No such member."))
        if member.is_closed:
            raise LoyaltyError(LoyaltyErrorCode.MEMBER_CLOSED,
                               _("This account is closed: its points and experience can "
                                 "no longer change."))
        account = ledger.account(session, AccountKind(kind), "member", member_id)
        if session.scalar(select(ledger.Entry.id).where(
                ledger.Entry.account_id == account.id,
                ledger.Entry.idempotency_key == f"adjust:{key}")) is not None:
            return account.balance  # a double submit: done already, audited already
        rule_expiry = None
        if kind == AccountKind.POINTS and delta > 0:
            rule_expiry = points_expiry(rule_for_member(session, member_id), clock.now())
        try:
            ledger.post(session, account, delta, reason="adjustment", key=f"adjust:{key}",
                        source=("staff", operator_id), operator_id=operator_id,
                        expires_at=rule_expiry)
        except InsufficientBalance as e:
            raise LoyaltyError(LoyaltyErrorCode.INSUFFICIENT_POINTS,
                               _("Only %(n)d are available.", n=e.available),
                               errors={"delta": _("Only %(n)d are available.",
                                                  n=e.available)}) from None
        if kind == AccountKind.EXPERIENCE:
            tiers.on_experience_change(session, member_id)
        elif delta > 0:
            alarm.check(session, member_id)
        record(session, operator_id, f"{kind}.adjust", ("members", member_id),
               after={"delta": delta, "reason": reason, "balance": account.balance})
        return account.balance


def history(session: Session, member_id: int, *, before_id: int | None = None,
            limit: int = 20, with_experience: bool = True) -> list[ledger.Entry]:
    """Points (and experience) entries, newest first, `limit` at a time."""
    kinds = [AccountKind.POINTS, AccountKind.EXPERIENCE] if with_experience \
        else [AccountKind.POINTS]
    query = select(ledger.Entry, ledger.Account.kind).join(
        ledger.Account, ledger.Account.id == ledger.Entry.account_id).where(
        ledger.Account.owner_type == "member", ledger.Account.owner_id == member_id,
        ledger.Account.kind.in_(kinds))
    if before_id:
        query = query.where(ledger.Entry.id < before_id)
    rows = session.execute(query.order_by(ledger.Entry.id.desc()).limit(limit)).all()
    for entry, kind in rows:
        entry.kind = kind  # for display: which ledger the entry belongs to
    return [entry for entry, _kind in rows]


def card_for(session: Session, card_no: str) -> MemberCard:
    """An active card by number (LoyaltyError otherwise)."""
    card = _card(session, card_no)
    _check_card(card)
    return card


def rule_for_member(session: Session, member_id: int) -> EarningRule | None:
    """The earning rule of the member's first card's plan."""
    card = session.scalar(select(MemberCard).where(MemberCard.member_id == member_id)
                          .order_by(MemberCard.id).limit(1))
    if card is None:
        return None
    return session.scalar(select(EarningRule).where(EarningRule.plan_id == card.plan_id))


def experience_on_timeline(session: Session) -> bool:
    from portal.loyalty.models import LoyaltySettings

    row = session.scalar(select(LoyaltySettings).limit(1))
    return True if row is None else row.experience_on_timeline


def set_experience_on_timeline(session: Session, on: bool, *, operator_id: int) -> None:
    from portal.loyalty.models import LoyaltySettings
    from portal.staff.services import record

    with transaction(session):
        row = session.scalar(select(LoyaltySettings).limit(1)
                             .with_for_update().execution_options(populate_existing=True))
        if row is None:
            row = LoyaltySettings()
            session.add(row)
        before = row.experience_on_timeline
        row.experience_on_timeline = on
        session.flush()
        record(session, operator_id, "loyalty.timeline", ("loyalty_settings", row.id),
               before={"experience_on_timeline": before},
               after={"experience_on_timeline": on})
