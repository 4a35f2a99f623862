"""Append-only ledgers: points, experience, prepaid principal and bonus, gift card balances.

An account keeps a cached balance that only `post()` changes, in the caller's transaction,
with a conditional UPDATE so it can never go below zero, even under concurrent spends.
Each entry carries an idempotency key unique per account: posting the same key twice
returns the first entry and changes nothing. Credits may expire; debits consume the
credits that expire first (credits without expiry last).
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal import clock
from portal.db import Base, UTCDateTime


class AccountKind(StrEnum):
    POINTS = "points"
    EXPERIENCE = "experience"
    PREPAID_PRINCIPAL = "prepaid_principal"
    PREPAID_BONUS = "prepaid_bonus"
    GIFT_CARD = "gift_card"


class LedgerError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class InsufficientBalance(LedgerError):
    def __init__(self, available: int, wanted: int):
        super().__init__("insufficient_balance", f"balance {available} is less than {wanted}")
        self.available = available
        self.wanted = wanted


class BalanceTooLarge(LedgerError):
    def __init__(self, balance: int, credit: int):
        super().__init__("balance_too_large",
                         f"balance {balance} plus {credit} is more than {MAX_BALANCE}")
        self.balance = balance
        self.credit = credit


# Balances are INTEGER columns: 32 bits on PostgreSQL. A credit past this is refused here,
# not by the database mid-transaction (SQLite would store it; the two must agree).
MAX_BALANCE = 2**31 - 1


class Account(Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint("kind", "owner_type", "owner_id", "currency"),
        CheckConstraint("balance >= 0", name="balance_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    owner_type: Mapped[str] = mapped_column(String(32))
    owner_id: Mapped[int]
    # Empty for unit-less balances (points, experience); an ISO code for money.
    currency: Mapped[str] = mapped_column(String(3), default="")
    balance: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class Entry(Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("account_id", "idempotency_key"),
        CheckConstraint("open_amount >= 0", name="open_amount_not_negative"),
        Index("ix_ledger_entries_open_lots", "account_id", "open_amount", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), index=True)
    delta: Mapped[int]
    balance_after: Mapped[int]
    reason: Mapped[str] = mapped_column(String(64))
    source_type: Mapped[str | None] = mapped_column(String(32))
    source_id: Mapped[str | None] = mapped_column(String(64))
    operator_id: Mapped[int | None]
    idempotency_key: Mapped[str] = mapped_column(String(128))
    # Credits only: when the credit lapses, and how much of it is still unspent.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    open_amount: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


def account(
    session: Session, kind: AccountKind, owner_type: str, owner_id: int, currency: str = ""
) -> Account:
    """The account, created on first use (safe when two requests create it at once)."""
    found = _find(session, kind, owner_type, owner_id, currency)
    if found is not None:
        return found
    try:
        with session.begin_nested():
            acc = Account(kind=kind, owner_type=owner_type, owner_id=owner_id, currency=currency)
            session.add(acc)
    except IntegrityError:
        acc = _find(session, kind, owner_type, owner_id, currency)
        assert acc is not None
    return acc


def _find(session, kind, owner_type, owner_id, currency) -> Account | None:
    return session.scalar(
        select(Account).filter_by(
            kind=kind, owner_type=owner_type, owner_id=owner_id, currency=currency
        )
    )


def balance(session: Session, kind: AccountKind, owner_type: str, owner_id: int,
            currency: str = "") -> int:
    acc = _find(session, kind, owner_type, owner_id, currency)
    return acc.balance if acc else 0


def post(
    session: Session,
    acc: Account,
    delta: int,
    *,
    reason: str,
    key: str,
    source: tuple[str, str | int] | None = None,
    operator_id: int | None = None,
    expires_at: datetime | None = None,
    lots: list[tuple[int, int]] | None = None,
    _closes_lot: bool = False,
) -> Entry:
    """Add `delta` to the account. Must run inside the caller's write transaction.

    A debit spends open credits soonest-expiring first, unless `lots` names which credits
    it spends, as (entry id, amount) adding up to the debit (a caller with rules of its
    own about which money may pay, such as the prepaid balance's item restrictions)."""
    if delta == 0:
        raise ValueError("a ledger entry moves something")
    if expires_at is not None and delta < 0:
        raise ValueError("only credits expire")
    existing = session.scalar(
        select(Entry).where(Entry.account_id == acc.id, Entry.idempotency_key == key)
    )
    if existing is not None:
        return existing
    # The conditional UPDATE is the guard: two spends of the last unit cannot both pass.
    # The bounds are compared with the balance as it is, never with `balance + delta`: on
    # PostgreSQL that sum can overflow INTEGER before the comparison is made.
    if abs(delta) > MAX_BALANCE:
        raise BalanceTooLarge(acc.balance, delta) if delta > 0 \
            else InsufficientBalance(acc.balance, -delta)
    within = Account.balance <= MAX_BALANCE - delta if delta > 0 else Account.balance >= -delta
    new_balance = session.execute(
        update(Account)
        .where(Account.id == acc.id, within)
        .values(balance=Account.balance + delta)
        .returning(Account.balance)
    ).scalar_one_or_none()
    if new_balance is None:
        session.refresh(acc)
        if delta > 0:
            raise BalanceTooLarge(acc.balance, delta)
        raise InsufficientBalance(acc.balance, -delta)
    acc.balance = new_balance
    entry = Entry(
        account_id=acc.id,
        delta=delta,
        balance_after=new_balance,
        reason=reason,
        source_type=source[0] if source else None,
        source_id=str(source[1]) if source else None,
        operator_id=operator_id,
        idempotency_key=key,
        expires_at=expires_at,
        open_amount=delta if delta > 0 else 0,
    )
    session.add(entry)
    if delta < 0 and lots is not None:
        _consume_named_lots(session, acc, lots, -delta)
    elif delta < 0 and not _closes_lot:
        _consume_lots(session, acc.id, -delta)
    session.flush()
    return entry


def _consume_named_lots(session: Session, acc: Account, lots: list[tuple[int, int]],
                        amount: int) -> None:
    if sum(n for _lot, n in lots) != amount or any(n <= 0 for _lot, n in lots):
        raise ValueError("the named lots must add up to the debit")
    for lot_id, n in lots:
        taken = session.execute(update(Entry).where(
            Entry.id == lot_id, Entry.account_id == acc.id, Entry.open_amount >= n)
            .values(open_amount=Entry.open_amount - n)).rowcount
        if not taken:
            raise InsufficientBalance(acc.balance, amount)


def _consume_lots(session: Session, account_id: int, amount: int) -> None:
    """Spend from open credits, soonest expiry first, then credits that never expire."""
    lots = session.scalars(
        select(Entry)
        .where(Entry.account_id == account_id, Entry.open_amount > 0)
        .order_by(Entry.expires_at.is_(None), Entry.expires_at, Entry.id)
        .with_for_update().execution_options(populate_existing=True)
    )
    for lot in lots:
        if amount == 0:
            break
        take = min(lot.open_amount, amount)
        lot.open_amount -= take
        amount -= take


def expire(session: Session, acc: Account, *, at: datetime | None = None) -> int:
    """Remove what is left of credits that lapsed by `at`; returns the amount expired.

    Idempotent: each lapsed lot is closed by one entry keyed on the lot.
    """
    at = at or clock.now()
    lapsed = session.scalars(
        select(Entry)
        .where(Entry.account_id == acc.id, Entry.open_amount > 0, Entry.expires_at <= at)
        .order_by(Entry.expires_at, Entry.id)
        .with_for_update().execution_options(populate_existing=True)
    ).all()
    total = 0
    for lot in lapsed:
        amount = lot.open_amount
        lot.open_amount = 0
        session.flush()
        post(session, acc, -amount, reason="expired", key=f"expire:{lot.id}",
             source=("ledger_entry", lot.id), _closes_lot=True)
        total += amount
    return total


def entries(session: Session, acc: Account, limit: int = 50) -> list[Entry]:
    return list(
        session.scalars(
            select(Entry).where(Entry.account_id == acc.id).order_by(Entry.id.desc()).limit(limit)
        )
    )
