"""Paying back what is left on a gift card and closing it (spec 2.5.4: refund an unused
or partly used card; a fully used card has nothing to refund).

What is left is the card's balance. The part of it that the online purchase paid for goes
back through the payment provider, in proportion to what the buyer paid for the face value
(a 200 card bought for 180 with 50 left pays back 45). Money recharged at a till beyond
the face value, and cards sold at a till, are paid back at the till: staff see how much
before they confirm, and the card's history keeps it.

Either way the whole balance leaves the card's ledger and the card is closed (REFUNDED) in
the same transaction as the provider's refund, so a refused provider call changes nothing,
and a second refund finds the card closed. The payment purpose's refund hook
(`take_back`) is the one place that closes a card bought online: a refund started from the
Payments page must name exactly the amount the card's page would.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import ledger
from portal.db import transaction
from portal.giftcards import cards
from portal.giftcards.errors import GiftCardError
from portal.giftcards.errors import GiftCardErrorCode as Code
from portal.giftcards.models import CardStatus, GiftCard, TransactionKind
from portal.giftcards.spending import MAX_REASON, lock
from portal.payments import services as payments
from portal.payments.errors import PaymentError, PaymentErrorCode
from portal.payments.models import Payment
from portal.web.filters import money

REFUNDABLE = (CardStatus.ACTIVE, CardStatus.FROZEN)   # expired cards are ACTIVE by status


@dataclass(frozen=True)
class Quote:
    """What a refund of the card would move now, in minor units of the card's currency."""

    currency: str
    value: int           # what leaves the card: its whole balance
    online: int          # paid back through the payment provider
    at_till: int         # to pay back at the till (value not covered by `online`)
    payment_id: int | None

    @property
    def is_refundable(self) -> bool:
        return self.value > 0


def _quote(session: Session, card: GiftCard, balance: int) -> Quote:
    payment = session.get(Payment, card.payment_id) if card.payment_id else None
    online = covered = 0
    if payment is not None and payment.refundable_minor and card.face_minor:
        covered = min(balance, card.face_minor)
        # Rounded down once: the buyer never gets back more than they paid for the value.
        online = min(covered * card.price_minor // card.face_minor, payment.refundable_minor)
        if online == 0:
            covered = 0
    return Quote(currency=card.currency, value=balance, online=online, at_till=balance - covered,
                 payment_id=payment.id if online else None)


def quote(session: Session, card: GiftCard) -> Quote | None:
    """What refunding the card would pay back now; None when its state allows no refund."""
    if card.status not in REFUNDABLE:
        return None
    return _quote(session, card, cards.balance(session, card))


def _close(session: Session, card: GiftCard, acc: ledger.Account, q: Quote, *,
           operator_id: int | None, note: str | None) -> None:
    entry = ledger.post(session, acc, -q.value, reason="giftcard_card_refund",
                        key="card_refund", source=("gift_card", card.id),
                        operator_id=operator_id)
    card.status = CardStatus.REFUNDED
    cards.record(session, card, TransactionKind.CARD_REFUND, -q.value, key="card_refund",
                 balance_after=entry.balance_after, operator_id=operator_id, note=note)


def _refusal(card: GiftCard, balance: int) -> GiftCardError | None:
    if card.status == CardStatus.REFUNDED:
        return GiftCardError(Code.NOT_NOW, _("This gift card was refunded already."),
                             card_status=card.status)
    if card.status not in REFUNDABLE:
        return GiftCardError(Code.NOT_NOW, _("This gift card was never sold: there is "
                                             "nothing to refund."), card_status=card.status)
    if balance == 0:
        return GiftCardError(Code.NOT_NOW, _("This gift card is fully used: there is nothing "
                                             "to refund."), card_status=card.status)
    return None


def refund_card(session: Session, card_id: int, *, operator_id: int | None,
                reason: str) -> Quote:
    """Pay back the card's remaining value (see the module's rules) and close it. Returns
    what was moved. Audited ("giftcard.refund"; a provider refund also "payment.refund")."""
    from portal.staff import services as staff

    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise GiftCardError(Code.INVALID, _("Give a reason of up to %(n)d characters.",
                                            n=MAX_REASON), field="reason")
    with transaction(session):
        card = session.get(GiftCard, card_id)
        if card is None:
            raise GiftCardError(Code.NOT_FOUND, _("There is no such gift card."))
        acc = lock(session, card)
        if (refused := _refusal(card, acc.balance)) is not None:
            raise refused
        q = _quote(session, card, acc.balance)
        if q.online:
            try:
                # The payment's refund calls `take_back`, which closes the card.
                payments.refund(session, q.payment_id, q.online, reason=reason,
                                operator_id=operator_id)
            except PaymentError as e:
                raise GiftCardError(Code.NOT_NOW, str(e)) from e
        else:
            _close(session, card, acc, q, operator_id=operator_id, note=None)
        row = session.scalar(select(cards.GiftCardTransaction).where(
            cards.GiftCardTransaction.card_id == card.id,
            cards.GiftCardTransaction.key == "card_refund"))
        row.note = _till_note(q, card.currency, reason)
        row.operator_id = operator_id
        staff.record(session, operator_id, "giftcard.refund", card,
                     before={"status": "active", "balance_minor": q.value},
                     after={"status": "refunded", "online_minor": q.online,
                            "at_till_minor": q.at_till, "reason": reason})
        return q


def _till_note(q: Quote, currency: str, reason: str) -> str:
    if not q.at_till:
        return reason[:MAX_REASON]
    owed = money(q.at_till, currency)
    return f"{reason} · " + _("%(amount)s to pay back at the till", amount=owed)[:MAX_REASON]


def take_back(session: Session, payment: Payment, amount_minor: int) -> dict:
    """The gift card purpose's refund hook: the payment's refund closes the card. Only the
    amount the card's remaining value gives may be refunded (from either page)."""
    card = session.scalar(select(GiftCard).where(GiftCard.id == payment.purpose_id))
    acc = lock(session, card)
    if (refused := _refusal(card, acc.balance)) is not None:
        raise PaymentError(PaymentErrorCode.NOT_REFUNDABLE, str(refused))
    q = _quote(session, card, acc.balance)
    if amount_minor != q.online:
        raise PaymentError(
            PaymentErrorCode.NOT_REFUNDABLE,
            _("A gift card is refunded from its page in the sold cards, for the value left "
              "on it: %(amount)s now.", amount=money(q.online, card.currency)))
    _close(session, card, acc, q, operator_id=None, note=None)
    return {"gift_card_id": card.id, "value_minor": q.value, "at_till_minor": q.at_till}
