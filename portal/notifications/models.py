"""The outbox: every SMS and email is a row first, delivered by the job queue."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal import clock
from portal.db import Base, UTCDateTime


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class MessageKind(StrEnum):
    COUPON_ARRIVED = "coupon_arrived"
    GIFT_DELIVERED = "gift_delivered"
    TIER_CHANGED = "tier_changed"
    POINTS_EXPIRING = "points_expiring"
    STUDENT_APPROVED = "student_approved"
    STUDENT_REJECTED = "student_rejected"
    STUDENT_EXPIRING = "student_expiring"
    STUDENT_EXPIRED = "student_expired"


class MessageSetting(Base):
    """The merchant's switch for one kind of member message (no row: on, e-mail on)."""

    __tablename__ = "message_settings"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    email: Mapped[bool] = mapped_column(default=True)
    # Points expiring: how many days ahead members are told.
    lead_days: Mapped[int] = mapped_column(default=30)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class InboxMessage(Base):
    """A message in the member's in-portal inbox. A message of a known `kind` is worded
    when shown, from `params`, in the reader's language; `title` and `body` are kept as
    written for the rest. `dedupe_key` makes a message that must go once go once."""

    __tablename__ = "inbox_messages"
    __table_args__ = (Index("ix_inbox_messages_member", "member_id", "id"),
                      UniqueConstraint("member_id", "dedupe_key"))

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(String(32), default="notice")
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    dedupe_key: Mapped[str | None] = mapped_column(String(120))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OutboxMessage(Base):
    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_messages_pending", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str] = mapped_column(String(254), index=True)
    subject: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text)
    # What kind of message, for tests and the dev banner ("otp", ...).
    template: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(8), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
