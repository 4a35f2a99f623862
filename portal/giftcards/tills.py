"""Selling a physical gift card at a till (spec 2.5: POS sales, physical cards).

The merchant imports the numbers (and printed PINs) of their physical cards; they wait in
stock (IN_STOCK) until a till sells one. The sale gives the card its value (the printed
value, or the amount the customer chose where nothing is printed), its buyer, and starts
its validity. The till collects the price (the product's purchase discount applies) and
tells us; no payment goes through Tessera.

Once per (card, idempotency key): the same key again answers the first sale with
`.replayed`; a card already sold by another key is refused (NOT_NOW). The card's ledger
account row lock makes two tills selling one card take turns.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.db import transaction
from portal.giftcards import cards, products
from portal.giftcards.errors import GiftCardError
from portal.giftcards.errors import GiftCardErrorCode as Code
from portal.giftcards.models import (
    CardStatus,
    GiftCard,
    GiftCardProduct,
    GiftCardTransaction,
    ProductStatus,
)
from portal.giftcards.spending import check_key, lock, owns_transaction
from portal.members.errors import MemberError
from portal.members.models import MemberCard


@dataclass
class Buyer:
    name: str = ""
    phone: str = ""
    email: str = ""
    member_card_no: str = ""


@dataclass
class Sale:
    card: GiftCard
    activation: GiftCardTransaction
    replayed: bool


def _sold_by(session: Session, card: GiftCard, key: str) -> GiftCardTransaction | None:
    return session.scalar(select(GiftCardTransaction).where(
        GiftCardTransaction.card_id == card.id, GiftCardTransaction.key == f"activation:{key}"))


def _replay(card: GiftCard, row: GiftCardTransaction, amount_minor: int | None) -> Sale:
    if amount_minor is not None and amount_minor != row.amount_minor:
        raise GiftCardError(Code.IDEMPOTENCY_CONFLICT,
                            _("This idempotency key was used for another amount."))
    return Sale(card=card, activation=row, replayed=True)


def _face(product: GiftCardProduct, card: GiftCard, amount_minor: int | None) -> int:
    if card.face_minor:
        if amount_minor is not None and amount_minor != card.face_minor:
            raise GiftCardError(Code.INVALID, _("This card's value is printed on it: "
                                                "%(n)d (minor units).", n=card.face_minor),
                                field="amount")
        return card.face_minor
    if amount_minor is None:
        raise GiftCardError(Code.INVALID, _("Give the card's amount."), field="amount")
    try:
        return products.check_amount(product, amount_minor)
    except GiftCardError as e:
        e.details["field"] = "amount"
        raise


def _buyer(session: Session, product: GiftCardProduct, buyer: Buyer) -> dict:
    """The buyer's details the product asks for, checked (INVALID naming the field)."""
    from portal.members.attributes import normalize_mobile

    wanted = product.buyer_fields or {}
    given = {"name": buyer.name.strip(), "phone": buyer.phone.strip(),
             "email": buyer.email.strip(), "card_number": buyer.member_card_no.strip()}
    required = {"name": _("The buyer's name is required."),
                "phone": _("The buyer's mobile number is required."),
                "email": _("The buyer's email is required."),
                "card_number": _("The buyer's member card number is required.")}
    for name, value in given.items():
        if wanted.get(name) == "required" and not value:
            raise GiftCardError(Code.INVALID, required[name], field=f"buyer_{name}")
    out = {"buyer_name": given["name"][:120] or None, "buyer_phone": None,
           "buyer_email": None, "buyer_member_id": None}
    if given["phone"]:
        try:
            out["buyer_phone"] = normalize_mobile(given["phone"],
                                                  current_app.config["DEFAULT_REGION"])
        except MemberError as e:
            raise GiftCardError(Code.INVALID, str(e), field="buyer_phone") from None
    if given["email"]:
        from email_validator import EmailNotValidError, validate_email

        try:
            out["buyer_email"] = validate_email(given["email"],
                                                check_deliverability=False).normalized
        except EmailNotValidError:
            raise GiftCardError(Code.INVALID, _("Enter a valid email address."),
                                field="buyer_email") from None
    if given["card_number"]:
        digits = "".join(ch for ch in given["card_number"] if ch not in " -")
        member_id = session.scalar(select(MemberCard.member_id)
                                   .where(MemberCard.number == digits))
        if member_id is None:
            raise GiftCardError(Code.INVALID, _("There is no member card with this number."),
                                field="buyer_card_number")
        out["buyer_member_id"] = member_id
    return out


def sell(session: Session, *, number: str, amount_minor: int | None, currency: str,
         idempotency_key: str, store_id: int | None, buyer: Buyer,
         client_id: int | None = None) -> Sale:
    """Sell an in-stock physical card at a till (see the module's rules)."""
    if amount_minor is not None and (type(amount_minor) is not int or amount_minor <= 0):
        raise GiftCardError(Code.INVALID, _("Enter an amount above zero, in minor units."),
                            field="amount")
    check_key(idempotency_key, "idempotency_key")
    key = f"sale:{idempotency_key}"
    owns = owns_transaction(session)
    try:
        with transaction(session):
            card = cards.by_number(session, number)
            if card is None:
                raise GiftCardError(Code.NOT_FOUND, _("There is no gift card with this number."))
            lock(session, card)
            if (done := _sold_by(session, card, key)) is not None:
                return _replay(card, done, amount_minor)
            if card.status != CardStatus.IN_STOCK:
                raise GiftCardError(Code.NOT_NOW, _("This gift card is already sold."),
                                    card_status=cards.state(card))
            product = session.get(GiftCardProduct, card.product_id)
            if product.status != ProductStatus.ACTIVE or "POS" not in (product.channels or []):
                raise GiftCardError(Code.INACTIVE, _("This gift card is not on sale at tills."))
            if product.store_ids and store_id not in product.store_ids:
                raise GiftCardError(Code.WRONG_STORE,
                                    _("This gift card cannot be sold at this store."))
            if currency != card.currency:
                raise GiftCardError(Code.INVALID, _("The gift card's currency is %(currency)s.",
                                                    currency=card.currency), field="currency")
            face = _face(product, card, amount_minor)
            for name, value in _buyer(session, product, buyer).items():
                setattr(card, name, value)
            card.face_minor, card.price_minor = face, products.price_minor(product, face)
            card.holder_member_id = card.buyer_member_id
            cards.activate(session, card, key=key, store_id=store_id, client_id=client_id)
            return Sale(card=card, activation=_sold_by(session, card, key), replayed=False)
    except IntegrityError:
        if not owns:
            raise
        session.rollback()
        card = cards.by_number(session, number)
        done = card and _sold_by(session, card, key)
        if not done:
            raise
        return _replay(card, done, amount_minor)
