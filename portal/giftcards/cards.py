"""Sold gift cards: numbers and PINs, the balance (a ledger account), activation, and the
transaction record every change of a card leaves."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import clock, ledger
from portal.giftcards.models import (
    CardStatus,
    GiftCard,
    GiftCardProduct,
    GiftCardTransaction,
    TransactionKind,
)
from portal.ledger import AccountKind

OWNER = "gift_card"
NUMBER_LENGTH = 16
PIN_LENGTH = 6


def new_number() -> str:
    """16 random digits, the first not 0 (read aloud and typed at tills)."""
    return str(secrets.randbelow(9) + 1) + "".join(
        str(secrets.randbelow(10)) for _ in range(NUMBER_LENGTH - 1))


def new_pin() -> str:
    """A PIN for a card whose PIN is printed (imported physical cards)."""
    return "".join(str(secrets.randbelow(10)) for _ in range(PIN_LENGTH))


def pin_for(number: str) -> str:
    """An online card's PIN: derived from its number with the app's secret, so the holder's
    page can show it and nothing readable is stored."""
    key = current_app.config["SECRET_KEY"].encode()
    digest = hmac.new(key, b"giftcard-pin-of:" + number.encode(), hashlib.sha256).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 10**PIN_LENGTH:0{PIN_LENGTH}d}"


def hash_pin(pin: str) -> str:
    """Keyed by the app's secret: a leaked table does not give the PINs away cheaply."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"giftcard-pin:" + pin.encode(), hashlib.sha256).hexdigest()


def pin_matches(card: GiftCard, pin: str) -> bool:
    return bool(card.pin_hash) and hmac.compare_digest(card.pin_hash, hash_pin(pin or ""))


def account(session: Session, card: GiftCard) -> ledger.Account:
    return ledger.account(session, AccountKind.GIFT_CARD, OWNER, card.id, card.currency)


def balance(session: Session, card: GiftCard) -> int:
    return ledger.balance(session, AccountKind.GIFT_CARD, OWNER, card.id, card.currency)


def by_number(session: Session, number: str) -> GiftCard | None:
    digits = "".join(ch for ch in str(number or "") if ch.isdecimal())
    return session.scalar(select(GiftCard).where(GiftCard.number == digits)) if digits \
        else None


def state(card: GiftCard) -> str:
    """What the card is now: its status, or "expired" once its validity has passed."""
    if card.status == CardStatus.ACTIVE and card.expires_at and card.expires_at <= clock.now():
        return "expired"
    return card.status


def record(session: Session, card: GiftCard, kind: TransactionKind, amount_minor: int, *,
           key: str, balance_after: int, **extra) -> GiftCardTransaction:
    """One line of the card's history, in the caller's transaction (once per key)."""
    found = session.scalar(select(GiftCardTransaction).where(
        GiftCardTransaction.card_id == card.id, GiftCardTransaction.key == key))
    if found is not None:
        return found
    row = GiftCardTransaction(card_id=card.id, kind=kind, amount_minor=amount_minor,
                              balance_after=balance_after, key=key, **extra)
    session.add(row)
    session.flush()
    return row


def activate(session: Session, card: GiftCard, *, key: str, operator_id: int | None = None,
             store_id: int | None = None, client_id: int | None = None) -> None:
    """Load the face value onto a card and start its validity, in the caller's transaction,
    once (the ledger key and the transaction key make a second call change nothing)."""
    if card.status == CardStatus.ACTIVE:
        return
    product = session.get(GiftCardProduct, card.product_id)
    entry = ledger.post(session, account(session, card), card.face_minor, reason="activation",
                        key=f"activation:{key}", source=("gift_card", card.id),
                        operator_id=operator_id)
    now = clock.now()
    card.status, card.activated_at = CardStatus.ACTIVE, now
    card.expires_at = now + timedelta(days=product.validity_days) \
        if product.validity_days else None
    record(session, card, TransactionKind.ACTIVATION, card.face_minor, key=f"activation:{key}",
           balance_after=entry.balance_after, operator_id=operator_id, store_id=store_id,
           client_id=client_id)
