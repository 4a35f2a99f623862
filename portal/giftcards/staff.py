"""What staff read about sold gift cards (spec 2.5.4–2.5.5): the list of cards sold with
their balances, one card with its history, and the transactions of all cards. Each list
runs a fixed number of queries whatever its length."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, joinedload

from portal import clock, ledger
from portal.giftcards import cards
from portal.giftcards.models import (
    CardStatus,
    GiftCard,
    GiftCardTransaction,
    TransactionKind,
)
from portal.ledger import AccountKind
from portal.members.attributes import normalize_mobile
from portal.members.errors import MemberError
from portal.members.models import Member, Store
from portal.staff.models import StaffUser

# What the sold list filters on; "expired" is an active card whose validity has passed;
# "in_stock": imported physical cards not sold yet, shown only when asked for.
STATES = ("active", "frozen", "expired", "refunded", "in_stock")
HIDDEN = (CardStatus.PENDING, CardStatus.CANCELLED, CardStatus.IN_STOCK)


@dataclass
class SoldCard:
    card: GiftCard
    balance: int
    state: str
    holder: Member | None = None


@dataclass
class TransactionRow:
    tx: GiftCardTransaction
    number: str
    currency: str
    store: str | None = None
    operator: str | None = None


@dataclass
class CardDetail:
    card: GiftCard
    balance: int
    state: str
    buyer: Member | None
    holder: Member | None
    transactions: list[TransactionRow] = field(default_factory=list)


def digits(value: str | None) -> str:
    return "".join(ch for ch in str(value or "") if ch.isdecimal())


def _number_filter(query, number: str | None):
    """Exact digits, or the last 4 when only 4 are given. None: no filter; "": nothing."""
    if number is None or not str(number).strip():
        return query
    wanted = digits(number)
    if not wanted:
        return query.where(False)
    if len(wanted) == 4:
        return query.where(GiftCard.number.like(f"%{wanted}"))
    return query.where(GiftCard.number == wanted)


def _balances(session: Session, found: list[GiftCard]) -> dict[tuple[int, str], int]:
    if not found:
        return {}
    rows = session.execute(select(ledger.Account.owner_id, ledger.Account.currency,
                                  ledger.Account.balance).where(
        ledger.Account.kind == AccountKind.GIFT_CARD, ledger.Account.owner_type == cards.OWNER,
        ledger.Account.owner_id.in_({c.id for c in found})))
    return {(owner_id, currency): balance for owner_id, currency, balance in rows}


def _members(session: Session, ids) -> dict[int, Member]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return {m.id: m for m in session.scalars(select(Member).where(Member.id.in_(ids)))}


def sold_cards(session: Session, *, number: str | None = None, phone: str | None = None,
               status: str | None = None, before_id: int | None = None,
               limit: int = 50) -> list[SoldCard]:
    """Cards sold (not pending nor cancelled), newest first, with balance and holder; the
    cards in stock instead when `status` is "in_stock"."""
    shown = GiftCard.status == CardStatus.IN_STOCK if status == "in_stock" \
        else GiftCard.status.not_in([str(s) for s in HIDDEN])
    query = (select(GiftCard).options(joinedload(GiftCard.product)).where(shown)
             .order_by(GiftCard.id.desc()).limit(limit))
    query = _number_filter(query, number)
    if phone is not None and str(phone).strip():
        try:
            mobile = normalize_mobile(phone, current_app.config["DEFAULT_REGION"])
        except MemberError:
            return []
        query = query.where(GiftCard.buyer_phone == mobile)
    now = clock.now()
    if status == "active":
        query = query.where(GiftCard.status == CardStatus.ACTIVE,
                            or_(GiftCard.expires_at.is_(None), GiftCard.expires_at > now))
    elif status == "expired":
        query = query.where(and_(GiftCard.status == CardStatus.ACTIVE,
                                 GiftCard.expires_at.is_not(None), GiftCard.expires_at <= now))
    elif status in ("frozen", "refunded"):
        query = query.where(GiftCard.status == status)
    if before_id:
        query = query.where(GiftCard.id < before_id)
    found = list(session.scalars(query).unique())
    balances = _balances(session, found)
    holders = _members(session, (c.holder_member_id for c in found))
    return [SoldCard(card=c, balance=balances.get((c.id, c.currency), 0),
                     state=cards.state(c), holder=holders.get(c.holder_member_id))
            for c in found]


def _transaction_query():
    return (select(GiftCardTransaction, GiftCard.number, GiftCard.currency, Store.name,
                   StaffUser.name)
            .join(GiftCard, GiftCard.id == GiftCardTransaction.card_id)
            .outerjoin(Store, Store.id == GiftCardTransaction.store_id)
            .outerjoin(StaffUser, StaffUser.id == GiftCardTransaction.operator_id))


def _rows(session: Session, query) -> list[TransactionRow]:
    return [TransactionRow(tx=tx, number=number, currency=currency, store=store,
                           operator=operator)
            for tx, number, currency, store, operator in session.execute(query)]


def transactions(session: Session, *, kind: str | None = None, number: str | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 before_id: int | None = None, limit: int = 50) -> list[TransactionRow]:
    """All cards' transactions, newest first, with each card's number, store and operator
    in the same query. `since` inclusive, `until` exclusive."""
    query = _transaction_query().order_by(GiftCardTransaction.id.desc()).limit(limit)
    if kind:
        if kind not in set(TransactionKind):
            return []
        query = query.where(GiftCardTransaction.kind == kind)
    query = _number_filter(query, number)
    if since is not None:
        query = query.where(GiftCardTransaction.created_at >= since)
    if until is not None:
        query = query.where(GiftCardTransaction.created_at < until)
    if before_id:
        query = query.where(GiftCardTransaction.id < before_id)
    return _rows(session, query)


def card_detail(session: Session, card_id: int) -> CardDetail | None:
    """One sold card: balance, state, buyer, holder and its whole history (newest first)."""
    card = session.scalar(select(GiftCard).options(joinedload(GiftCard.product))
                          .where(GiftCard.id == card_id))
    if card is None:
        return None
    people = _members(session, (card.buyer_member_id, card.holder_member_id))
    history = _rows(session, _transaction_query()
                    .where(GiftCardTransaction.card_id == card.id)
                    .order_by(GiftCardTransaction.id.desc()))
    return CardDetail(card=card, balance=cards.balance(session, card), state=cards.state(card),
                      buyer=people.get(card.buyer_member_id),
                      holder=people.get(card.holder_member_id), transactions=history)
