"""Spending gift cards at tills and web shops: charges, refunds of charges, recharges, and
the merchant's freeze / restore.

- A charge is paid in full or not at all: never more than the card holds, never part of
  a bill. Several cards on one order: the till asks each card's balance and charges card
  after card with what is still to pay (each card gives only what is needed).
- One card's charges, refunds, recharges and freezes take turns on its ledger account's
  row lock (FOR UPDATE), so none of them decides on a stale balance or status.
- Idempotent: a charge once per (card, idempotency key), a refund once per (charge, refund
  key), a recharge once per (card, idempotency key). The same key again returns the first
  outcome with `.replayed = True`; with another amount it is refused
  (IDEMPOTENCY_CONFLICT). Also when the same key arrives twice at the same moment: the
  unique constraints decide, and the loser answers the winner's outcome.
- Refunds of a charge go back to the card also when it is frozen or expired since (the
  money was the card's; the holder or staff decide later what happens to it), but not to
  a card whose remaining value was paid back (refunded: closed).
- Every change leaves a GiftCardTransaction (`cards.record`) with a key unique per card.

Each function owns its transaction (`portal.db.transaction`); called inside a caller's
write transaction it joins it (a parallel duplicate key then surfaces as IntegrityError
to that caller).
"""
from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, scoped_session

from portal import clock, ledger
from portal.db import transaction
from portal.giftcards import cards
from portal.giftcards.errors import GiftCardError
from portal.giftcards.errors import GiftCardErrorCode as Code
from portal.giftcards.models import (
    CardStatus,
    GiftCard,
    GiftCardCharge,
    GiftCardProduct,
    GiftCardTransaction,
    TransactionKind,
)
from portal.ledger import InsufficientBalance

# Keys become ledger keys (128 characters) with a short prefix.
MAX_KEY = 100
MAX_REASON = 255


# --- helpers -------------------------------------------------------------------------------

def owns_transaction(session: Session) -> bool:
    raw = session() if isinstance(session, scoped_session) else session
    return not raw.info.get("writing")


def _check_amount(amount_minor, *, optional: bool = False) -> None:
    if optional and amount_minor is None:
        return
    if type(amount_minor) is not int or amount_minor <= 0:
        raise GiftCardError(Code.INVALID, _("Enter an amount above zero, in minor units."),
                            field="amount")


def check_key(key, name: str) -> None:
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY:
        raise GiftCardError(Code.INVALID,
                            _("A %(name)s of up to %(n)d characters is needed.", name=name,
                              n=MAX_KEY), field=name)


def _card(session: Session, number: str) -> GiftCard:
    card = cards.by_number(session, number)
    if card is None:
        raise GiftCardError(Code.NOT_FOUND, _("There is no gift card with this number."))
    return card


def lock(session: Session, card: GiftCard) -> ledger.Account:
    """The card's ledger account, its row locked for this transaction, and the card read
    again: a freeze or charge committed while we waited is seen."""
    acc = cards.account(session, card)
    acc = session.scalars(select(ledger.Account).where(ledger.Account.id == acc.id)
                          .with_for_update()
                          .execution_options(populate_existing=True)).one()
    session.refresh(card)
    return acc


def _check_spendable(session: Session, card: GiftCard, store_id: int | None,
                     currency: str) -> None:
    """Refuse a card that cannot take or give money now (charges and recharges)."""
    status = cards.state(card)
    if status == CardStatus.FROZEN:
        raise GiftCardError(Code.FROZEN, _("This gift card is frozen."), card_status=status)
    if status == "expired":
        raise GiftCardError(Code.EXPIRED, _("This gift card has expired."), card_status=status,
                            expires_at=card.expires_at.isoformat())
    if status != CardStatus.ACTIVE:
        raise GiftCardError(Code.INACTIVE, _("This gift card cannot be used."), card_status=status)
    product = session.get(GiftCardProduct, card.product_id)
    if product.store_ids and store_id not in product.store_ids:
        raise GiftCardError(Code.WRONG_STORE, _("This gift card cannot be used at this store."))
    if currency != card.currency:
        raise GiftCardError(Code.INVALID, _("The gift card's currency is %(currency)s.",
                                            currency=card.currency), field="currency")


def _charge_by_key(session: Session, card_id: int, key: str) -> GiftCardCharge | None:
    return session.scalar(select(GiftCardCharge).where(GiftCardCharge.card_id == card_id,
                                                       GiftCardCharge.idempotency_key == key))


def _transaction_by_key(session: Session, card_id: int, key: str) -> GiftCardTransaction | None:
    return session.scalar(select(GiftCardTransaction).where(
        GiftCardTransaction.card_id == card_id, GiftCardTransaction.key == key))


def _replay_charge(charge: GiftCardCharge, amount_minor: int, currency: str) -> GiftCardCharge:
    if charge.amount_minor != amount_minor or charge.currency != currency:
        raise GiftCardError(Code.IDEMPOTENCY_CONFLICT,
                            _("This idempotency key was used for another amount."),
                            charge_id=charge.id)
    charge.replayed = True
    return charge


def _replay_transaction(row: GiftCardTransaction, amount_minor: int | None,
                        message: str) -> GiftCardTransaction:
    if amount_minor is not None and abs(row.amount_minor) != amount_minor:
        raise GiftCardError(Code.IDEMPOTENCY_CONFLICT, message, transaction_id=row.id)
    row.replayed = True
    return row


def charge_transaction(session: Session, charge: GiftCardCharge) -> GiftCardTransaction | None:
    """The consumption line a charge left (its `balance_after` is the card's after it)."""
    return _transaction_by_key(session, charge.card_id, f"charge:{charge.id}")


# --- charges -------------------------------------------------------------------------------

def charge(session: Session, *, number: str, amount_minor: int, currency: str,
           idempotency_key: str, order_external_id: str | None = None, store_id: int | None,
           client_id: int | None = None) -> GiftCardCharge:
    """Pay a bill of `amount_minor` (> 0) with the card: all of it or nothing. Refused when
    the card is unknown (NOT_FOUND), not active (INACTIVE), frozen (FROZEN), expired
    (EXPIRED), not for this store (WRONG_STORE), in another currency (INVALID) or short
    (INSUFFICIENT, with `balance`). Once per (card, idempotency key): the same key returns
    the first charge with `.replayed = True`; with another amount IDEMPOTENCY_CONFLICT."""
    _check_amount(amount_minor)
    check_key(idempotency_key, "idempotency_key")
    owns = owns_transaction(session)
    try:
        with transaction(session):
            card = _card(session, number)
            existing = _charge_by_key(session, card.id, idempotency_key)
            if existing is not None:
                return _replay_charge(existing, amount_minor, currency)
            # One card's charges take turns: the balance read below is what we spend.
            acc = lock(session, card)
            existing = _charge_by_key(session, card.id, idempotency_key)
            if existing is not None:  # committed by a parallel request while we waited
                return _replay_charge(existing, amount_minor, currency)
            _check_spendable(session, card, store_id, currency)
            if acc.balance < amount_minor:
                raise _insufficient(card, acc.balance, amount_minor)
            paid = GiftCardCharge(card_id=card.id, amount_minor=amount_minor,
                                  currency=currency, order_external_id=order_external_id,
                                  store_id=store_id, client_id=client_id,
                                  idempotency_key=idempotency_key, created_at=clock.now())
            session.add(paid)
            session.flush()
            try:
                entry = ledger.post(session, acc, -amount_minor, reason="giftcard_charge",
                                    key=f"charge:{paid.id}", source=("giftcard_charge", paid.id))
            except InsufficientBalance as e:  # not expected under the row lock
                raise _insufficient(card, e.available, amount_minor) from None
            cards.record(session, card, TransactionKind.CONSUMPTION, -amount_minor,
                         key=f"charge:{paid.id}", balance_after=entry.balance_after,
                         charge_id=paid.id, store_id=store_id, client_id=client_id,
                         note=order_external_id[:255] if order_external_id else None)
            paid.replayed = False
            return paid
    except IntegrityError:
        # The same key was charged meanwhile by a parallel request (the unique constraint).
        if not owns:
            raise
        session.rollback()
        card = _card(session, number)
        existing = _charge_by_key(session, card.id, idempotency_key)
        if existing is None:
            raise
        return _replay_charge(existing, amount_minor, currency)


def _insufficient(card: GiftCard, balance: int, amount_minor: int) -> GiftCardError:
    return GiftCardError(Code.INSUFFICIENT, _("The gift card's balance cannot pay this bill."),
                         balance=balance, amount=amount_minor, currency=card.currency)


def refund_charge(session: Session, charge_id: int, *, amount_minor: int | None = None,
                  refund_key: str, store_id: int | None) -> GiftCardTransaction:
    """Give a charge back to its card, whole (`amount_minor` None: all that is left) or in
    part, never more than is left (REFUND_TOO_LARGE, with `left`). Only a charge made at
    `store_id` is found (else NOT_FOUND). Once per refund key: the same key returns the
    first refund (the REFUND transaction, `.replayed = True`); with another amount
    IDEMPOTENCY_CONFLICT. Allowed on a frozen or expired card (the money was the card's);
    refused (INACTIVE) on a card whose remaining value was paid back."""
    _check_amount(amount_minor, optional=True)
    check_key(refund_key, "refund_key")
    owns = owns_transaction(session)
    try:
        with transaction(session):
            return _refund(session, charge_id, amount_minor, refund_key, store_id)
    except IntegrityError:
        if not owns:
            raise
        session.rollback()
        paid = session.get(GiftCardCharge, charge_id)
        done = paid and _transaction_by_key(session, paid.card_id,
                                            f"refund:{paid.id}:{refund_key}")
        if not done:
            raise
        return _replay_transaction(done, amount_minor,
                                   _("This refund key was used for another amount."))


def _refund(session: Session, charge_id: int, amount_minor: int | None, refund_key: str,
            store_id: int | None) -> GiftCardTransaction:
    # The charge's row lock makes its refunds take turns: none sees a stale "left".
    paid = session.scalar(select(GiftCardCharge).where(GiftCardCharge.id == charge_id)
                          .with_for_update().execution_options(populate_existing=True))
    if paid is None or paid.store_id != store_id:
        raise GiftCardError(Code.NOT_FOUND, _("There is no such gift card charge."))
    key = f"refund:{paid.id}:{refund_key}"
    done = _transaction_by_key(session, paid.card_id, key)
    if done is not None:
        return _replay_transaction(done, amount_minor,
                                   _("This refund key was used for another amount."))
    left = paid.amount_minor - paid.refunded_minor
    amount = left if amount_minor is None else amount_minor
    if left == 0 or amount > left:
        raise GiftCardError(Code.REFUND_TOO_LARGE,
                            _("Only %(n)d (minor units) of this charge can be refunded.",
                              n=left), left=left)
    card = session.get(GiftCard, paid.card_id)
    acc = lock(session, card)
    if card.status in (CardStatus.REFUNDED, CardStatus.CANCELLED, CardStatus.PENDING):
        raise GiftCardError(Code.INACTIVE, _("This gift card is closed."),
                            card_status=card.status)
    entry = ledger.post(session, acc, amount, reason="giftcard_charge_refund", key=key,
                        source=("giftcard_charge", paid.id))
    paid.refunded_minor += amount
    row = cards.record(session, card, TransactionKind.REFUND, amount, key=key,
                       balance_after=entry.balance_after, charge_id=paid.id,
                       store_id=store_id, client_id=paid.client_id)
    row.replayed = False
    return row


# --- recharges -----------------------------------------------------------------------------

def recharge(session: Session, *, number: str, amount_minor: int, currency: str,
             idempotency_key: str, store_id: int | None,
             client_id: int | None = None) -> GiftCardTransaction:
    """Add money to a card at a till, where its product allows POS recharge (else
    NOT_RECHARGEABLE); the card must be active, not frozen, not expired, and spendable at
    the store. Once per (card, idempotency key): returns the RECHARGE transaction
    (`.replayed` True for the same key again; another amount: IDEMPOTENCY_CONFLICT).
    The money is taken by the till; the card's validity does not change."""
    _check_amount(amount_minor)
    check_key(idempotency_key, "idempotency_key")
    owns = owns_transaction(session)
    key = f"recharge:{idempotency_key}"
    message = _("This idempotency key was used for another amount.")
    try:
        with transaction(session):
            card = _card(session, number)
            done = _transaction_by_key(session, card.id, key)
            if done is not None:
                return _replay_transaction(done, amount_minor, message)
            product = session.get(GiftCardProduct, card.product_id)
            if not product.pos_recharge:
                raise GiftCardError(Code.NOT_RECHARGEABLE,
                                    _("This gift card cannot be recharged."))
            acc = lock(session, card)
            done = _transaction_by_key(session, card.id, key)
            if done is not None:
                return _replay_transaction(done, amount_minor, message)
            _check_spendable(session, card, store_id, currency)
            try:
                entry = ledger.post(session, acc, amount_minor, reason="giftcard_recharge",
                                    key=key, source=("gift_card", card.id))
            except ledger.BalanceTooLarge:
                raise GiftCardError(Code.INVALID, _("The card cannot hold that much."),
                                    field="amount") from None
            row = cards.record(session, card, TransactionKind.RECHARGE, amount_minor, key=key,
                               balance_after=entry.balance_after, store_id=store_id,
                               client_id=client_id)
            row.replayed = False
            return row
    except IntegrityError:
        if not owns:
            raise
        session.rollback()
        card = _card(session, number)
        done = _transaction_by_key(session, card.id, key)
        if done is None:
            raise
        return _replay_transaction(done, amount_minor, message)


# --- freeze / restore (staff) --------------------------------------------------------------

def freeze(session: Session, card_id: int, *, operator_id: int | None,
           reason: str) -> GiftCard:
    """Stop an active card from spending and recharging (NOT_NOW when it is not active;
    an expired card can be frozen too). Its balance stays; refunds of its charges still
    come back to it. Audited ("giftcard.freeze") and recorded (FREEZE)."""
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise GiftCardError(Code.INVALID, _("Give a reason of up to %(n)d characters.",
                                            n=MAX_REASON), field="reason")
    return _set_status(session, card_id, operator_id, reason, CardStatus.ACTIVE,
                       CardStatus.FROZEN, TransactionKind.FREEZE)


def restore(session: Session, card_id: int, *, operator_id: int | None,
            reason: str = "") -> GiftCard:
    """Let a frozen card spend again (NOT_NOW when it is not frozen). Audited
    ("giftcard.restore") and recorded (RESTORE)."""
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON:
        raise GiftCardError(Code.INVALID, _("Give a reason of up to %(n)d characters.",
                                            n=MAX_REASON), field="reason")
    return _set_status(session, card_id, operator_id, reason, CardStatus.FROZEN,
                       CardStatus.ACTIVE, TransactionKind.RESTORE)


def _set_status(session: Session, card_id: int, operator_id: int | None, reason: str,
                before: CardStatus, after: CardStatus, kind: TransactionKind) -> GiftCard:
    from portal.staff import services as staff

    with transaction(session):
        card = session.get(GiftCard, card_id)
        if card is None:
            raise GiftCardError(Code.NOT_FOUND, _("There is no such gift card."))
        acc = lock(session, card)
        if card.status != before:
            message = _("Only an active gift card can be frozen.") \
                if kind == TransactionKind.FREEZE else _("This gift card is not frozen.")
            raise GiftCardError(Code.NOT_NOW, message, card_status=card.status)
        card.status = after
        n = session.scalar(select(func.count()).select_from(GiftCardTransaction).where(
            GiftCardTransaction.card_id == card.id, GiftCardTransaction.kind == kind))
        cards.record(session, card, kind, 0, key=f"{kind}:{n + 1}",
                     balance_after=acc.balance, operator_id=operator_id,
                     note=reason or None)
        staff.record(session, operator_id, f"giftcard.{kind}", card,
                     before={"status": str(before)},
                     after={"status": str(after), "reason": reason})
        session.flush()
        return card
