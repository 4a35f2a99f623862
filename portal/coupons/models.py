"""Coupon templates and packages, the coupons issued from them, claim links."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal import clock
from portal.db import Base, UTCDateTime
from portal.members.models import RegistrationPage

MAX_INVENTORY = 9_999_999_999


class CouponKind(StrEnum):
    CASH = "cash"            # an amount off
    DISCOUNT = "discount"    # a percentage off, optionally capped
    GIFT = "gift"            # a named free item


class ValidityKind(StrEnum):
    FIXED = "fixed"          # from one local date to another, both inclusive
    RELATIVE = "relative"    # starts N days after receipt, lasts M days


class TemplateStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    INACTIVE = "inactive"


class CouponTemplate(Base):
    __tablename__ = "coupon_templates"
    __table_args__ = (
        CheckConstraint("inventory_left IS NULL OR inventory_left >= 0",
                        name="inventory_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    internal_name: Mapped[str] = mapped_column(String(120))
    title: Mapped[str] = mapped_column(String(120))
    subtitle: Mapped[str] = mapped_column(String(200), default="")
    instructions: Mapped[str] = mapped_column(Text, default="")
    theme: Mapped[str] = mapped_column(String(16), default="teal")
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int | None]                      # cash
    percent_off: Mapped[int | None]                       # discount, in basis points
    cap_minor: Mapped[int | None]                         # discount, optional
    gift_item: Mapped[str | None] = mapped_column(String(120))  # gift
    min_spend_minor: Mapped[int | None]
    validity_kind: Mapped[str] = mapped_column(String(10))
    valid_from_on: Mapped[date | None]
    valid_until_on: Mapped[date | None]
    starts_after_days: Mapped[int | None]
    valid_days: Mapped[int | None]
    # None: unlimited. inventory_left only ever changes by conditional UPDATEs.
    inventory_total: Mapped[int | None] = mapped_column(BigInteger)
    inventory_left: Mapped[int | None] = mapped_column(BigInteger)
    per_member_limit: Mapped[int | None]
    product_ids: Mapped[list] = mapped_column(JSON, default=list)
    extra_fields: Mapped[dict] = mapped_column(JSON, default=dict)
    # Where it can be used: ["POS"], ["ONLINE"] or both.
    channels: Mapped[list] = mapped_column(JSON, default=lambda: ["POS", "ONLINE"])
    online_url: Mapped[str | None] = mapped_column(String(500))
    external_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10), default=TemplateStatus.DRAFT)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    @property
    def is_active(self) -> bool:
        return self.status == TemplateStatus.ACTIVE


class CouponPackage(Base):
    """A named bundle of templates × quantities, issued as one unit."""

    __tablename__ = "coupon_packages"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(10), default=TemplateStatus.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    items: Mapped[list[PackageItem]] = relationship(
        back_populates="package", order_by="PackageItem.id", cascade="all, delete-orphan")


class PackageItem(Base):
    __tablename__ = "coupon_package_items"
    __table_args__ = (UniqueConstraint("package_id", "template_id"),
                      CheckConstraint("quantity > 0", name="quantity_positive"))

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("coupon_packages.id"), index=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_templates.id"))
    quantity: Mapped[int]

    package: Mapped[CouponPackage] = relationship(back_populates="items")
    template: Mapped[CouponTemplate] = relationship()


class IssueBatch(Base):
    """One call of issue(): its idempotency key, what it gave and why."""

    __tablename__ = "coupon_issue_batches"
    # An activity's performance counts its coupons by source.
    __table_args__ = (Index("ix_coupon_issue_batches_source", "source", "source_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    template_id: Mapped[int | None] = mapped_column(ForeignKey("coupon_templates.id"))
    package_id: Mapped[int | None] = mapped_column(ForeignKey("coupon_packages.id"))
    quantity: Mapped[int]
    source: Mapped[str] = mapped_column(String(16))   # admin, claim, campaign, api, ...
    source_ref: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(255))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class MemberTemplateCount(Base):
    """How many coupons of a template a member has ever been given: the per-member limit
    is one conditional UPDATE on this row, so parallel claims cannot pass it."""

    __tablename__ = "coupon_member_counts"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_templates.id"),
                                             primary_key=True)
    issued: Mapped[int] = mapped_column(default=0)


class CouponStatus(StrEnum):
    AVAILABLE = "available"
    USED = "used"
    EXPIRED = "expired"


class Coupon(Base):
    __tablename__ = "coupons"
    __table_args__ = (
        Index("ix_coupons_wallet", "member_id", "status", "valid_until"),
        Index("ix_coupons_template_status", "template_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_templates.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    batch_id: Mapped[int] = mapped_column(ForeignKey("coupon_issue_batches.id"), index=True)
    status: Mapped[str] = mapped_column(String(10), default=CouponStatus.AVAILABLE)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime())  # exclusive
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    template: Mapped[CouponTemplate] = relationship()

    def state(self, at: datetime | None = None) -> str:
        """available, not_yet_valid, used or expired: what the member sees right now,
        whether or not the nightly job has marked it yet."""
        at = at or clock.now()
        if self.status == CouponStatus.USED:
            return CouponStatus.USED
        if self.status == CouponStatus.EXPIRED or self.valid_until <= at:
            return CouponStatus.EXPIRED
        if self.valid_from > at:
            return "not_yet_valid"
        return CouponStatus.AVAILABLE

    @property
    def last_valid_at(self) -> datetime:
        """The last instant it can be used (valid_until is exclusive): show this date."""
        return self.valid_until - timedelta(microseconds=1)

    @property
    def grouped_code(self) -> str:
        return "-".join(self.code[i:i + 4] for i in range(0, len(self.code), 4))


class Redemption(Base):
    """A coupon used on an order, at a till or in a shop. One per coupon while it stands;
    a rollback (a refund) makes the coupon available again."""

    __tablename__ = "coupon_redemptions"
    __table_args__ = (Index("ix_coupon_redemptions_order", "coupon_id", "order_external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id"), index=True)
    order_external_id: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    channel: Mapped[str] = mapped_column(String(8))
    discount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    lines: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    rolled_back_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    coupon: Mapped[Coupon] = relationship()


class ClaimLink(Base):
    """A public link a member opens to claim one coupon of a template."""

    __tablename__ = "coupon_claim_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(32), unique=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_templates.id"), index=True)
    # Where a visitor who is not a member yet signs up before claiming (spec 7.2).
    registration_page_id: Mapped[int | None] = mapped_column(
        ForeignKey("registration_pages.id"))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    template: Mapped[CouponTemplate] = relationship()
    registration_page: Mapped[RegistrationPage | None] = relationship()
