"""What the buyer of a gift card sees of a gift they sent a friend (spec 2.5): the card as
bought, when its link went out, when it was claimed, and how it was used.

A gift is found by its payment's token: the guest buyer's credential already (the payment
status page), so the receipt link needs no account. A member's gift is theirs only.

The buyer sees amounts, dates and store names, and the friend's name as the buyer typed it:
never the holder's account, the staff who acted, nor staff notes (a freeze's reason)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session, contains_eager

from portal.giftcards import cards
from portal.giftcards.models import (
    CardStatus,
    GiftCard,
    GiftCardProduct,
    GiftCardTransaction,
    TransactionKind,
)
from portal.giftcards.staff import _balances
from portal.members.models import Store
from portal.payments.models import Payment

HISTORY_LIMIT = 200
# The transaction kinds a buyer sees, as the event they read ("used" at a till, …).
EVENTS = {TransactionKind.ACTIVATION: "bought", TransactionKind.CONSUMPTION: "used",
          TransactionKind.REFUND: "returned", TransactionKind.RECHARGE: "topped_up",
          TransactionKind.CARD_REFUND: "refunded", TransactionKind.FREEZE: "frozen",
          TransactionKind.RESTORE: "restored"}


@dataclass
class Event:
    kind: str                 # bought, sent, claimed, used, returned, topped_up, refunded,
    at: datetime              # frozen, restored, expired
    amount_minor: int = 0     # + onto the card, − off it
    balance_after: int | None = None
    store: str | None = None


@dataclass
class Gift:
    card: GiftCard
    token: str                # the payment's: the address of the gift's page
    balance: int
    state: str                # pending, active, expired, frozen, refunded, cancelled
    events: list[Event] = field(default_factory=list)

    @property
    def used_minor(self) -> int:
        """Spent at tills, less what tills gave back."""
        return -sum(e.amount_minor for e in self.events if e.kind in ("used", "returned"))


def _query(*columns):
    return (select(GiftCard, *columns)
            .join(Payment, Payment.id == GiftCard.payment_id)
            .join(GiftCardProduct, GiftCardProduct.id == GiftCard.product_id)
            .options(contains_eager(GiftCard.product))
            .where(Payment.purpose == "giftcard", GiftCard.recipient_name.is_not(None)))


def by_token(session: Session, token: str) -> tuple[GiftCard, Payment] | None:
    """The gift bought with this payment, and the payment (whose `member_id` says whose it
    is); None when the token is not a gift's."""
    if not token:
        return None
    row = session.execute(_query(Payment).where(Payment.token == token)).first()
    return (row[0], row[1]) if row else None


def sent_by(session: Session, member_id: int) -> list[Gift]:
    """A member's gifts to friends, newest first, with balances (two queries in all)."""
    rows = session.execute(_query(Payment.token).where(GiftCard.buyer_member_id == member_id,
                                          GiftCard.status != CardStatus.CANCELLED)
                           .order_by(GiftCard.id.desc())).all()
    balances = _balances(session, [card for card, _token in rows])
    return [Gift(card=card, token=token, balance=balances.get((card.id, card.currency), 0),
                 state=cards.state(card)) for card, token in rows]


def gift(session: Session, card: GiftCard, token: str) -> Gift:
    """The gift's page: its balance and history, oldest first, stores by name."""
    rows = session.execute(
        select(GiftCardTransaction, Store.name)
        .outerjoin(Store, Store.id == GiftCardTransaction.store_id)
        .where(GiftCardTransaction.card_id == card.id,
               GiftCardTransaction.kind.in_([str(k) for k in EVENTS]))
        .order_by(GiftCardTransaction.id).limit(HISTORY_LIMIT)).all()
    events = [Event(kind=EVENTS[TransactionKind(tx.kind)], at=tx.created_at,
                    amount_minor=tx.amount_minor, balance_after=tx.balance_after,
                    store=store) for tx, store in rows]
    events += [Event(kind=kind, at=at) for kind, at in (("sent", card.sent_at),
                                                       ("claimed", card.claimed_at)) if at]
    state = cards.state(card)
    if state == "expired":
        events.append(Event(kind="expired", at=card.expires_at))
    # Stable: a link sent in the same second as the payment still reads after "bought".
    events.sort(key=lambda e: e.at)
    balance = cards.balance(session, card) if card.activated_at else 0
    return Gift(card=card, token=token, balance=balance, state=state, events=events)


# --- the buyer's way back: the payment result and the receipt --------------------------------

def result_url(session: Session, payment: Payment) -> str | None:
    """Where the payer goes once the payment is confirmed: a gift's page, or a member's own
    card. A guest's own card went to their e-mail or mobile."""
    card = session.get(GiftCard, payment.purpose_id)
    if card is None:
        return None
    if card.recipient_name is not None:
        return url_for("giftcards.sent", token=payment.token)
    if card.holder_member_id is not None:
        return url_for("giftcards.mine", card_id=card.id)
    return None


def page_url(token: str) -> str:
    """The gift's page from the public address, also outside a request."""
    path = current_app.url_map.bind("localhost").build("giftcards.sent", {"token": token})
    return current_app.config["PUBLIC_URL"].rstrip("/") + path


def send_receipt(session: Session, card: GiftCard, payment: Payment) -> None:
    """The buyer's receipt with the link back to their gift, to the e-mail and/or mobile
    they gave, in the caller's transaction. The caller runs once per card (fulfilment
    activates a card once), so the receipt goes once."""
    from portal.notifications import services as notifications
    from portal.notifications.models import Channel
    from portal.web.filters import money

    if card.recipient_name is None or not (card.buyer_email or card.buyer_phone):
        return
    with force_locale(current_app.config["BABEL_DEFAULT_LOCALE"]):
        amount = money(card.face_minor, card.currency)
        subject = _("Your gift card for %(name)s", name=card.recipient_name)
        body = _("Thank you for your %(amount)s gift card for %(name)s. See when it is sent, "
                 "claimed and used: %(link)s", amount=amount, name=card.recipient_name,
                 link=page_url(payment.token))
    if card.buyer_email:
        notifications.queue(session, channel=Channel.EMAIL, recipient=card.buyer_email,
                            template="giftcard_receipt", subject=subject, body=body)
    if card.buyer_phone:
        notifications.queue(session, channel=Channel.SMS, recipient=card.buyer_phone,
                            template="giftcard_receipt", body=f"{subject}. {body}")


def can_resend(card: GiftCard) -> bool:
    """The buyer may send the friend's link again: sent, not claimed, still active."""
    return card.sent_at is not None and card.claimed_at is None and \
        card.status == CardStatus.ACTIVE
