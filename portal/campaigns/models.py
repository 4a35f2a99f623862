"""Marketing activities (profile completion gift, re-engagement gift), who took part, and
the gifts they are owed: delayed ones are grant rows with a due time."""
from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal import clock
from portal.db import Base, UTCDateTime


class ActivityStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"          # shown as scheduled / ended by its dates
    PAUSED = "paused"
    ARCHIVED = "archived"


class ActivityKind(StrEnum):
    PROFILE_COMPLETION = "profile_completion"
    REENGAGEMENT = "reengagement"


class Activity(Base):
    __tablename__ = "activities"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))      # profile_completion, reengagement
    name: Mapped[str] = mapped_column(String(120))
    code: Mapped[str] = mapped_column(String(40), unique=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())   # exclusive
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(10), default=ActivityStatus.DRAFT)
    # Profile completion: the fields to complete. Scope / audience: plans, tiers and (for
    # re-engagement) segments and tags; all empty means every member.
    required_fields: Mapped[list] = mapped_column(JSON, default=list)
    plan_ids: Mapped[list] = mapped_column(JSON, default=list)
    tier_ids: Mapped[list] = mapped_column(JSON, default=list)
    segment_ids: Mapped[list] = mapped_column(JSON, default=list)
    tag_ids: Mapped[list] = mapped_column(JSON, default=list)
    points: Mapped[int] = mapped_column(default=0)
    # Re-engagement: days since the last purchase (or joining) that make a member lapsed,
    # and the local day the daily scan last ran.
    lapse_days: Mapped[int | None]
    last_scan_on: Mapped[date | None]
    notify: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    gifts: Mapped[list[ActivityGift]] = relationship(
        back_populates="activity", order_by="ActivityGift.id", cascade="all, delete-orphan")

    def state(self, at: datetime | None = None) -> str:
        """What members and staff see: draft, scheduled, active, paused, ended, archived."""
        at = at or clock.now()
        if self.status != ActivityStatus.ACTIVE:
            return self.status
        if at < self.starts_at:
            return "scheduled"
        if at >= self.ends_at:
            return "ended"
        return "active"


class ActivityGift(Base):
    """A coupon gift of an activity: template or package × quantity, when, how long."""

    __tablename__ = "activity_gifts"

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id"), index=True)
    template_id: Mapped[int | None] = mapped_column(ForeignKey("coupon_templates.id"))
    package_id: Mapped[int | None] = mapped_column(ForeignKey("coupon_packages.id"))
    quantity: Mapped[int] = mapped_column(default=1)
    delay: Mapped[str] = mapped_column(String(8), default="instant")   # instant, hours, days
    delay_amount: Mapped[int] = mapped_column(default=0)
    # "template": the coupon's own validity; "relative": N days from receipt; "fixed".
    validity: Mapped[str] = mapped_column(String(10), default="template")
    valid_days: Mapped[int | None]
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime())
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime())

    activity: Mapped[Activity] = relationship(back_populates="gifts")


class Participation(Base):
    """A member took part in an activity: once each per occasion (the unique constraint
    decides). A profile completion gift has one occasion (""); a re-engagement gift one
    per lapse, named by the moment the member's lapse counts from."""

    __tablename__ = "activity_participations"
    __table_args__ = (UniqueConstraint("activity_id", "member_id", "occasion"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id"))
    # No index of its own: lookups go by activity first (the unique constraint's order),
    # and the daily scan inserts thousands of rows at once.
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    occasion: Mapped[str] = mapped_column(String(40), default="")
    points: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    grants: Mapped[list[Grant]] = relationship(back_populates="participation",
                                               order_by="Grant.id")


class Grant(Base):
    """A gift owed to a member: delivered by the minute tick once `due_at` has come."""

    __tablename__ = "grants"
    __table_args__ = (Index("ix_grants_pending", "delivered_at", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participation_id: Mapped[int] = mapped_column(ForeignKey("activity_participations.id"),
                                                  index=True)
    gift_id: Mapped[int] = mapped_column(ForeignKey("activity_gifts.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(255))

    participation: Mapped[Participation] = relationship(back_populates="grants")
    gift: Mapped[ActivityGift] = relationship()
