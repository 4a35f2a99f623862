"""Student ID verification (spec 2.6): the merchant's settings and each member's requests.

A member is a verified student while one of their verifications is `approved` and its
`expires_at` lies ahead. The daily sweep turns a lapsed approval into `expired`; a newer
approval turns the older one into `replaced`, so a member has at most one approval.
"""
from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal import clock
from portal.db import Base, UTCDateTime
from portal.members.models import Member


class VerificationStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    REPLACED = "replaced"


class GiftKind(StrEnum):
    NONE = "none"
    COUPON = "coupon"
    PACKAGE = "package"


class GiftRule(StrEnum):
    FIRST = "first"    # the member's first approval only
    EACH = "each"      # every approval, re-verifications too


class StudentSettings(Base):
    """The merchant's one row (id 1): validity, tag and group, the page, the gift."""

    __tablename__ = "student_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    validity_months: Mapped[int] = mapped_column(default=12)
    tag_id: Mapped[int | None] = mapped_column(ForeignKey("tags.id", ondelete="SET NULL"))
    # The student group: a segment whose rule is "tagged with the student tag".
    segment_id: Mapped[int | None] = mapped_column(
        ForeignKey("segments.id", ondelete="SET NULL"))
    page_title: Mapped[str] = mapped_column(String(120), default="")
    page_intro: Mapped[str] = mapped_column(Text, default="")
    perks: Mapped[str] = mapped_column(Text, default="")          # one perk a line
    gift_kind: Mapped[str] = mapped_column(String(8), default=GiftKind.NONE)
    gift_template_id: Mapped[int | None] = mapped_column(ForeignKey("coupon_templates.id"))
    gift_package_id: Mapped[int | None] = mapped_column(ForeignKey("coupon_packages.id"))
    gift_rule: Mapped[str] = mapped_column(String(8), default=GiftRule.FIRST)
    reminder_days: Mapped[int] = mapped_column(default=14)
    photo_retention_days: Mapped[int] = mapped_column(default=30)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StudentVerification(Base):
    """One request: what the member gave, and what staff decided."""

    __tablename__ = "student_verifications"
    __table_args__ = (
        Index("ix_student_verifications_status", "status", "expires_at"),
        Index("ix_student_verifications_member", "member_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    # Set while pending, cleared on the decision: the unique index allows one open request
    # a member, also when two submissions race.
    pending_member_id: Mapped[int | None] = mapped_column(unique=True)
    school: Mapped[str] = mapped_column(String(120))
    student_number: Mapped[str] = mapped_column(String(40))
    graduation_on: Mapped[date]
    # The card photo's file name under UPLOAD_DIR/students; None once deleted.
    photo: Mapped[str | None] = mapped_column(String(80))
    consented_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(10), default=VerificationStatus.PENDING)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    reason: Mapped[str] = mapped_column(Text, default="")
    valid_until_on: Mapped[date | None]                  # the last day of student status
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # 0:00 the day after
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    photo_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The verification gift: the coupons' issue key when given, or why it could not be.
    gift_key: Mapped[str | None] = mapped_column(String(60))
    gift_error: Mapped[str | None] = mapped_column(String(200))

    member: Mapped[Member] = relationship()

    @property
    def is_decided(self) -> bool:
        return self.status != VerificationStatus.PENDING
