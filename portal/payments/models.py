"""Payments: one row per checkout, the provider events that moved it, and its refunds."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal import clock
from portal.db import Base, UTCDateTime

if TYPE_CHECKING:
    from portal.members.models import Member


class PaymentStatus(StrEnum):
    OPEN = "open"                # checkout started; the member has not paid (yet)
    PROCESSING = "processing"    # paid by a delayed method; waiting for it to clear
    PAID = "paid"                # money in and the purpose fulfilled (one transaction)
    FAILED = "failed"            # a delayed method failed
    EXPIRED = "expired"          # abandoned or cancelled: reservations released
    REFUNDED = "refunded"        # all of it given back (a part: `refunded_minor`)
    REVIEW = "review"            # paid, but not what we asked: staff look (nothing given)


class Payment(Base):
    """Created before the member is sent to pay. `purpose` names the fulfiller (top-up,
    gift card, package) and `purpose_id` its own row."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("provider", "provider_session_id"),
        Index("ix_payments_status_created", "status", "created_at"),
        CheckConstraint("refunded_minor >= 0 AND refunded_minor <= amount_minor",
                        name="refund_within_amount"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # In URLs (return page, demo checkout): not guessable, unlike the id.
    token: Mapped[str] = mapped_column(String(32), unique=True)
    purpose: Mapped[str] = mapped_column(String(20))
    purpose_id: Mapped[int]
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12), default=PaymentStatus.OPEN)
    provider: Mapped[str] = mapped_column(String(10))
    provider_session_id: Mapped[str | None] = mapped_column(String(255))
    provider_payment_id: Mapped[str | None] = mapped_column(String(255))
    checkout_url: Mapped[str | None] = mapped_column(String(1000))
    refunded_minor: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    refunds: Mapped[list[PaymentRefund]] = relationship(back_populates="payment",
                                                        order_by="PaymentRefund.id")
    member: Mapped[Member | None] = relationship()

    @property
    def refundable_minor(self) -> int:
        return self.amount_minor - self.refunded_minor if self.status in (
            PaymentStatus.PAID, PaymentStatus.REFUNDED) else 0


class PaymentEvent(Base):
    """A provider event handled once: its id is unique, stored in the transaction that
    acted on it, so a replay finds it and changes nothing."""

    __tablename__ = "payment_events"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(10))
    event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(64))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), index=True)
    outcome: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class PaymentRefund(Base):
    __tablename__ = "payment_refunds"

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    amount_minor: Mapped[int]
    reason: Mapped[str] = mapped_column(String(200))
    # What the purpose took back (e.g. the balance a top-up credited), for the record.
    reversal: Mapped[dict] = mapped_column(JSON, default=dict)
    provider_refund_id: Mapped[str | None] = mapped_column(String(255))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    payment: Mapped[Payment] = relationship(back_populates="refunds")
