"""Buying a gift card (members and guests), for oneself or for a friend; its payment;
sending the friend their link (now or on a date); claiming it into a wallet."""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import clock, jobs
from portal.db import transaction
from portal.giftcards import cards, gifts, products, refunds
from portal.giftcards.models import CardStatus, GiftCard, GiftCardProduct, ProductStatus
from portal.members.errors import MemberError
from portal.payments import services as payments

log = logging.getLogger(__name__)
MESSAGE_MAX = 500


class PurchaseError(Exception):
    def __init__(self, message: str, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.details = {"errors": errors or {}}


@dataclass
class Order:
    """What the buyer typed, already parsed (the view turns text into numbers and dates)."""

    product_id: int
    amount_minor: int | None
    for_friend: bool = False
    recipient_name: str = ""
    recipient_email: str = ""
    recipient_phone: str = ""
    message: str = ""
    send_at: datetime | None = None
    buyer_name: str = ""
    buyer_phone: str = ""
    buyer_email: str = ""
    errors: dict[str, str] = field(default_factory=dict)


def _mobile(raw: str) -> str:
    from portal.members.attributes import normalize_mobile

    return normalize_mobile(raw, current_app.config["DEFAULT_REGION"])


def _email(raw: str) -> str:
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        raise ValueError(raw) from None


def _check(session: Session, order: Order, product: GiftCardProduct | None,
           member_id: int | None = None) -> dict:
    errors = dict(order.errors)
    if product is None or product.status != ProductStatus.ACTIVE or \
            "ONLINE" not in (product.channels or []):
        errors["product"] = _("This gift card is not on sale.")
        return errors
    amount = order.amount_minor
    if amount is None:
        errors.setdefault("amount", _("Choose an amount."))
    elif amount not in (product.denominations or []):
        if not product.custom_amount:
            errors.setdefault("amount", _("Choose one of the amounts shown."))
        elif not (product.custom_min_minor or 1) <= amount <= (product.custom_max_minor or 0):
            errors.setdefault("amount", _("Choose an amount within the range shown."))
    fields = product.buyer_fields or {}
    for name, value in (("name", order.buyer_name), ("phone", order.buyer_phone),
                        ("email", order.buyer_email)):
        if fields.get(name) == "required" and not value.strip():
            errors.setdefault(f"buyer_{name}", _("This is required."))
    if order.buyer_phone.strip():
        try:
            order.buyer_phone = _mobile(order.buyer_phone)
        except MemberError as e:
            errors.setdefault("buyer_phone", str(e))
    if order.buyer_email.strip():
        try:
            order.buyer_email = _email(order.buyer_email)
        except ValueError:
            errors.setdefault("buyer_email", _("Enter a valid email address."))
    if not order.for_friend and member_id is None and \
            not (order.buyer_email.strip() or order.buyer_phone.strip()):
        # A guest's own card is sent to them: without a way to reach them it would be lost.
        errors.setdefault("buyer_email", _("Give your email or mobile number: we send you "
                                           "the card there."))
    if order.for_friend:
        if not order.recipient_name.strip():
            errors.setdefault("recipient_name", _("Whom is it for?"))
        if not (order.recipient_email.strip() or order.recipient_phone.strip()):
            errors.setdefault("recipient_email",
                              _("Give your friend's email or mobile number."))
        if order.recipient_email.strip():
            try:
                order.recipient_email = _email(order.recipient_email)
            except ValueError:
                errors.setdefault("recipient_email", _("Enter a valid email address."))
        if order.recipient_phone.strip():
            try:
                order.recipient_phone = _mobile(order.recipient_phone)
            except MemberError as e:
                errors.setdefault("recipient_phone", str(e))
        if order.send_at is not None and order.send_at < clock.now():
            errors.setdefault("send_at", _("Choose a moment from now on."))
        if len(order.message) > MESSAGE_MAX:
            errors.setdefault("message", _("At most %(n)d characters.", n=MESSAGE_MAX))
    return errors


def buy(session: Session, order: Order, *, member_id: int | None) -> GiftCard:
    """A pending card and its payment. The card gets its value only once paid."""
    with transaction(session):
        product = session.get(GiftCardProduct, order.product_id)
        errors = _check(session, order, product, member_id)
        if errors:
            raise PurchaseError(_("Please correct the marked fields."), errors)
        face = order.amount_minor
        number = cards.new_number()
        card = GiftCard(product_id=product.id, number=number,
                        pin_hash=cards.hash_pin(cards.pin_for(number)),
                        currency=product.currency,
                        face_minor=face, price_minor=products.price_minor(product, face),
                        physical=False, buyer_member_id=member_id,
                        buyer_name=order.buyer_name.strip() or None,
                        buyer_phone=order.buyer_phone or None,
                        buyer_email=order.buyer_email or None,
                        holder_member_id=member_id if not order.for_friend else None,
                        claim_token=secrets.token_urlsafe(24))
        if order.for_friend:
            card.recipient_name = order.recipient_name.strip()[:120]
            card.recipient_email = order.recipient_email or None
            card.recipient_phone = order.recipient_phone or None
            card.message = order.message.strip() or None
            card.send_at = order.send_at
        session.add(card)
        session.flush()
        payment = payments.create(session, purpose="giftcard", purpose_id=card.id,
                                  member_id=member_id, amount_minor=card.price_minor,
                                  currency=card.currency,
                                  description=_("Gift card: %(name)s", name=product.name))
        card.payment_id = payment.id
        return card


# --- the payment's purpose ------------------------------------------------------------------

def _locked_card(session: Session, payment) -> GiftCard:
    return session.scalar(select(GiftCard).where(GiftCard.id == payment.purpose_id)
                          .with_for_update().execution_options(populate_existing=True))


def _fulfil(session: Session, payment) -> None:
    card = _locked_card(session, payment)
    if card.status in (CardStatus.ACTIVE, CardStatus.FROZEN):
        return
    cards.activate(session, card, key=f"payment:{payment.id}")
    if card.recipient_name is None and card.holder_member_id is None:
        _send_link(session, card, to_buyer=True)   # a guest buying for themselves
    gifts.send_receipt(session, card, payment)     # a gift: the buyer's way back to it


def _release(session: Session, payment) -> None:
    card = _locked_card(session, payment)
    if card.status == CardStatus.PENDING:
        card.status = CardStatus.CANCELLED


payments.register("giftcard", label=_l("Gift card"), fulfil=_fulfil, release=_release,
                  refund=refunds.take_back, result_url=gifts.result_url)


# --- sending and claiming -------------------------------------------------------------------

def claim_url(card: GiftCard) -> str:
    """The friend's link. Built from the public address, also outside a request (the
    minute tick sends cards chosen for a date)."""
    path = current_app.url_map.bind("localhost").build("giftcards.claim",
                                                       {"token": card.claim_token})
    return current_app.config["PUBLIC_URL"].rstrip("/") + path


def _send_link(session: Session, card: GiftCard, *, to_buyer: bool = False) -> None:
    """The claim link, by e-mail and/or text message, in the outbox (in the caller's
    transaction). Worded in the merchant's default language: the friend is no member yet."""
    from portal.notifications import services as notifications
    from portal.notifications.models import Channel

    email = card.buyer_email if to_buyer else card.recipient_email
    phone = card.buyer_phone if to_buyer else card.recipient_phone
    sender = card.buyer_name or _("A friend")
    with force_locale(current_app.config["BABEL_DEFAULT_LOCALE"]):
        amount = _money(card.face_minor, card.currency)
        link = claim_url(card)
        subject = _("Your gift card") if to_buyer else \
            _("%(sender)s sent you a %(amount)s gift card", sender=sender, amount=amount)
        body = _("Open it and add it to your wallet: %(link)s", link=link)
        if card.message and not to_buyer:
            body = f"“{card.message}”\n\n{body}"
    if email:
        notifications.queue(session, channel=Channel.EMAIL, recipient=email,
                            template="giftcard", subject=subject, body=body)
    if phone:
        notifications.queue(session, channel=Channel.SMS, recipient=phone,
                            template="giftcard", body=f"{subject}. {body}")
    card.sent_at = clock.now()


def _money(minor: int, currency: str) -> str:
    from portal.web.filters import money

    return money(minor, currency)


@jobs.on_tick("giftcard_sends")
def send_due(session: Session, limit: int = 200) -> int:
    """Send the links of paid cards whose moment has come (now, or the chosen date)."""
    due = session.scalars(select(GiftCard.id).where(
        GiftCard.status == CardStatus.ACTIVE, GiftCard.recipient_name.is_not(None),
        GiftCard.sent_at.is_(None),
        (GiftCard.send_at.is_(None)) | (GiftCard.send_at <= clock.now()))
        .order_by(GiftCard.id).limit(limit)).all()
    session.rollback()
    sent = 0
    for card_id in due:
        with transaction(session):
            card = session.scalar(select(GiftCard).where(GiftCard.id == card_id,
                                                         GiftCard.sent_at.is_(None))
                                  .with_for_update(skip_locked=True)
                                  .execution_options(populate_existing=True))
            if card is None:
                continue
            _send_link(session, card)
            sent += 1
    return sent


def resend(session: Session, card_id: int, *, member_id: int | None = None,
           operator_id: int | None = None) -> GiftCard:
    """Send the friend's link again (the buyer, or staff); refused once claimed."""
    from portal.staff.services import record

    with transaction(session):
        card = session.scalar(select(GiftCard).where(GiftCard.id == card_id)
                              .with_for_update().execution_options(populate_existing=True))
        if card is None or (member_id is not None and card.buyer_member_id != member_id):
            raise PurchaseError(_("There is no such gift card."))
        if card.recipient_name is None or card.claimed_at is not None or \
                card.status != CardStatus.ACTIVE:
            raise PurchaseError(_("This card cannot be sent again."))
        _send_link(session, card)
        if operator_id is not None:
            record(session, operator_id, "giftcard.resend", ("giftcards", card.id))
        return card


def by_token(session: Session, token: str) -> GiftCard | None:
    return session.scalar(select(GiftCard).where(GiftCard.claim_token == token)) \
        if token else None


def claim(session: Session, token: str, member_id: int) -> GiftCard:
    """Put a sent card in the member's wallet, once (the first to claim it holds it)."""
    with transaction(session):
        card = session.scalar(select(GiftCard).where(GiftCard.claim_token == token)
                              .with_for_update().execution_options(populate_existing=True))
        if card is None or card.status not in (CardStatus.ACTIVE, CardStatus.FROZEN):
            raise PurchaseError(_("There is no such gift card."))
        if card.holder_member_id is not None:
            if card.holder_member_id == member_id:
                return card
            raise PurchaseError(_("This gift card has been claimed already."))
        card.holder_member_id, card.claimed_at = member_id, clock.now()
        return card


def member_cards(session: Session, member_id: int) -> tuple[list[GiftCard], list[gifts.Gift]]:
    """The cards the member holds, and the gifts they bought for others."""
    held = list(session.scalars(select(GiftCard).where(
        GiftCard.holder_member_id == member_id,
        GiftCard.status.in_([CardStatus.ACTIVE, CardStatus.FROZEN, CardStatus.REFUNDED]))
        .order_by(GiftCard.id.desc())))
    return held, gifts.sent_by(session, member_id)
