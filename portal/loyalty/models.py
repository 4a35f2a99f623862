"""Earning rules, orders from tills and shops, and their refunds."""
from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal import clock
from portal.db import Base, UTCDateTime


class ProductFilter(StrEnum):
    NONE = "none"
    WHITELIST = "whitelist"   # only matching lines earn
    BLACKLIST = "blacklist"   # matching lines earn nothing


class EarningRule(Base):
    """How a card plan's members earn points and experience from spend (one per plan)."""

    __tablename__ = "earning_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("card_plans.id"), unique=True)
    # P points / E experience for every N minor units paid (integer floor per order).
    points_amount: Mapped[int] = mapped_column(default=0)
    points_per_minor: Mapped[int] = mapped_column(default=100)
    experience_amount: Mapped[int] = mapped_column(default=0)
    experience_per_minor: Mapped[int] = mapped_column(default=100)
    product_filter: Mapped[str] = mapped_column(String(10), default=ProductFilter.NONE)
    filter_product_ids: Mapped[list] = mapped_column(JSON, default=list)
    filter_names: Mapped[list] = mapped_column(JSON, default=list)
    # None: points never expire; N: they expire on 1 January after N years (local time).
    points_expiry_years: Mapped[int | None]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("store_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"))
    external_id: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    channel: Mapped[str] = mapped_column(String(8))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    currency: Mapped[str] = mapped_column(String(3))
    total_minor: Mapped[int]
    # What earns: eligible lines' paid amounts, less the share paid with points.
    earn_base_minor: Mapped[int]
    points_earned: Mapped[int] = mapped_column(default=0)
    experience_earned: Mapped[int] = mapped_column(default=0)
    lines: Mapped[list] = mapped_column(JSON, default=list)
    payments: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    refunds: Mapped[list[OrderRefund]] = relationship(back_populates="order",
                                                      order_by="OrderRefund.id")


class OrderRefund(Base):
    __tablename__ = "order_refunds"
    __table_args__ = (UniqueConstraint("order_id", "refund_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    refund_id: Mapped[str] = mapped_column(String(64))
    lines: Mapped[list] = mapped_column(JSON, default=list)   # [{line_id, amount}]
    amount_minor: Mapped[int]
    points_reversed: Mapped[int] = mapped_column(default=0)
    experience_reversed: Mapped[int] = mapped_column(default=0)
    # Due back but already spent: written off, so no later refund takes it elsewhere.
    points_written_off: Mapped[int] = mapped_column(default=0)
    experience_written_off: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    order: Mapped[Order] = relationship(back_populates="refunds")


class TierSettings(Base):
    """How a card plan's tiers are decided. Off: tiers are only recorded (staff, API)."""

    __tablename__ = "tier_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("card_plans.id"), unique=True)
    enabled: Mapped[bool] = mapped_column(default=False)
    # Once computed tiers are released they cannot be switched off again (spec 2.1).
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    recalc_day: Mapped[int | None]                  # day of the month, at 0:00 local
    on_change: Mapped[str] = mapped_column(String(12), default="realtime")
    validity: Mapped[str] = mapped_column(String(12), default="permanent")
    validity_months: Mapped[int | None]
    after_expiry: Mapped[str] = mapped_column(String(14), default="rule")
    # A release recalculates everyone in the background; settings wait for it.
    recalc_total: Mapped[int] = mapped_column(default=0)
    recalc_done: Mapped[int] = mapped_column(default=0)
    recalc_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    recalc_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_periodic_on: Mapped[date | None]

    @property
    def is_running(self) -> bool:
        return self.recalc_started_at is not None and self.recalc_finished_at is None


class PointsAlarm(Base):
    """The abnormal-points alarm (spec 3.3), one row for the merchant."""

    __tablename__ = "points_alarm"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Points earned in one local day above this mark the member abnormal (None: off).
    daily_threshold: Mapped[int | None]
    block_earning: Mapped[bool] = mapped_column(default=False)
    block_redeeming: Mapped[bool] = mapped_column(default=False)
    emails: Mapped[list] = mapped_column(JSON, default=list)
    last_report_on: Mapped[date | None]


class AbnormalEvent(Base):
    """A member crossing the daily threshold: what the 0:00 report lists."""

    __tablename__ = "abnormal_points_events"
    __table_args__ = (UniqueConstraint("member_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    day: Mapped[date] = mapped_column(index=True)
    points_that_day: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class InteractionEvent(Base):
    """An event type the merchant rewards (check-in, review, ...), with caps per member."""

    __tablename__ = "interaction_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(60))
    points: Mapped[int] = mapped_column(default=0)
    experience: Mapped[int] = mapped_column(default=0)
    daily_cap: Mapped[int | None]
    monthly_cap: Mapped[int | None]
    total_cap: Mapped[int | None]
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class InteractionRecord(Base):
    """One rewarded occurrence of an event for a member (the caps count these)."""

    __tablename__ = "interaction_records"
    __table_args__ = (UniqueConstraint("event_id", "reference"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("interaction_events.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    reference: Mapped[str] = mapped_column(String(64))
    day: Mapped[date]
    points: Mapped[int] = mapped_column(default=0)
    experience: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class LoyaltySettings(Base):
    """Merchant-wide loyalty options (one row)."""

    __tablename__ = "loyalty_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Spec 7.2: record experience changes on the member's timeline (their admin page).
    experience_on_timeline: Mapped[bool] = mapped_column(default=True)
