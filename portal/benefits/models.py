"""Member benefits (spec 2.1) and paid benefit packages (spec 2.2).

A Benefit is what a card plan or tier gives its members: ten kinds, each with the fields
the merchant's form asks for; the kinds that change a bill (member prices, discounts,
member days, birthdays, promotions) and points (multipliers) are read by the basket quote
and by earning. A BenefitPackage is sold: its sales rules set duration and prices, its
items what a purchase gives, and each PackagePurchase is one member's paid period.
"""
from __future__ import annotations

from datetime import datetime
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


class BenefitKind(StrEnum):
    MARKETING = "marketing"          # linked to an activity (e.g. a profile gift)
    PROMOTION = "promotion"          # an order promotion: "20 off 100"
    MEMBER_PRICE = "member_price"    # per-product member prices
    DISCOUNT = "discount"            # a percentage off
    MEMBER_DAY = "member_day"        # weekly or monthly days, with tier perks
    BIRTHDAY = "birthday"            # the birthday, its calendar week or its month
    MULTIPLIER = "multiplier"        # points × N
    CARD_EXTENSION = "extension"     # relative-validity cards: + N days
    SERVICE = "service"              # exclusive services, with detail images
    CUSTOM = "custom"


class BenefitStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"            # members lose it at once


class Benefit(Base):
    __tablename__ = "benefits"
    __table_args__ = (
        Index("ix_benefits_kind_status", "kind", "status"),
        CheckConstraint("discount_bp IS NULL OR (discount_bp > 0 AND discount_bp < 10000)",
                        name="discount_below_100_percent"),
        CheckConstraint("multiplier_bp IS NULL OR multiplier_bp > 10000",
                        name="multiplier_above_one"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(80))
    brief: Mapped[str] = mapped_column(String(160), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    icon: Mapped[str | None] = mapped_column(String(200))        # an uploaded image's name
    status: Mapped[str] = mapped_column(String(10), default=BenefitStatus.ACTIVE)
    currency: Mapped[str] = mapped_column(String(3))
    # Who has it: card plans and tiers (empty: every plan / every tier of those plans).
    plan_ids: Mapped[list] = mapped_column(JSON, default=list)
    tier_ids: Mapped[list] = mapped_column(JSON, default=list)
    channels: Mapped[list] = mapped_column(JSON, default=lambda: ["POS", "ONLINE"])
    activity_id: Mapped[int | None] = mapped_column(ForeignKey("activities.id"))
    # Promotion: `off_minor` off an order of at least `threshold_minor` (its eligible lines).
    threshold_minor: Mapped[int | None] = mapped_column(BigInteger)
    off_minor: Mapped[int | None] = mapped_column(BigInteger)
    # Member pricing: [{"product_id": "SKU-1", "price_minor": 1800}, …]
    prices: Mapped[list] = mapped_column(JSON, default=list)
    # A percentage off, in basis points (2000: 20% off) — discounts, member days, birthdays.
    discount_bp: Mapped[int | None]
    # Points × N in basis points (20000: double) — multipliers, member days, birthdays.
    multiplier_bp: Mapped[int | None]
    # {"rule": "none" | "balance_below_amount" | "balance_below_due" |
    #  "balance_below_discounted_due", "amount_minor": n}
    restriction: Mapped[dict] = mapped_column(JSON, default=dict)
    # {"mode": "none" | "products" | "categories", "values": ["SKU-9", …]}
    exclusions: Mapped[dict] = mapped_column(JSON, default=dict)
    # Member day: the days and times (portal.wallet.schedule's shape; weekly or monthly).
    schedule: Mapped[dict] = mapped_column(JSON, default=dict)
    # Birthday: "day", "week" (the calendar week, Monday to Sunday) or "month".
    birthday_window: Mapped[str | None] = mapped_column(String(5))
    # Member day and birthday: extra perks per tier, added to the benefit's own:
    # [{"tier_id": 3, "discount_bp": 1000, "multiplier_bp": 0, "note": "…"}]
    tier_perks: Mapped[list] = mapped_column(JSON, default=list)
    extension_days: Mapped[int | None]
    images: Mapped[list] = mapped_column(JSON, default=list)      # exclusive services
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# --- paid benefit packages ------------------------------------------------------------------

class PackageStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    INACTIVE = "inactive"
    ARCHIVED = "archived"


class BenefitPackage(Base):
    __tablename__ = "benefit_packages"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    tags: Mapped[list] = mapped_column(JSON, default=list)           # labels, e.g. "Quarterly"
    cover: Mapped[str | None] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10), default=PackageStatus.DRAFT)
    # Who may buy it (each group filled narrows it; all empty: every member).
    plan_ids: Mapped[list] = mapped_column(JSON, default=list)
    tier_ids: Mapped[list] = mapped_column(JSON, default=list)
    segment_ids: Mapped[list] = mapped_column(JSON, default=list)
    tag_ids: Mapped[list] = mapped_column(JSON, default=list)
    # When it may be bought: portal.wallet.schedule's shape (daily / weekly / monthly).
    schedule: Mapped[dict] = mapped_column(JSON, default=dict)
    # The sales period: on sale from `starts_at` (included) to `ends_at` (excluded); None:
    # no bound. A sales rule's promotional window lies inside it.
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    channels: Mapped[list] = mapped_column(JSON, default=lambda: ["POS", "ONLINE"])
    # Only verified students see and buy it (portal.students.services.is_verified_student).
    students_only: Mapped[bool] = mapped_column(default=False)
    # Used coupons from the package make its order non-refundable online.
    refund_restricted: Mapped[bool] = mapped_column(default=True)
    agreement: Mapped[str] = mapped_column(Text, default="")
    terms: Mapped[str] = mapped_column(Text, default="")
    faq: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    rules: Mapped[list[PackageRule]] = relationship(
        order_by="PackageRule.position", cascade="all, delete-orphan")
    items: Mapped[list[BenefitPackageItem]] = relationship(
        order_by="BenefitPackageItem.position", cascade="all, delete-orphan")


class PackageRule(Base):
    """A sales rule (at most 5 a package): a duration and its prices. Prices that are None
    fall back to the original price."""

    __tablename__ = "benefit_package_rules"
    __table_args__ = (
        UniqueConstraint("package_id", "position"),
        CheckConstraint("duration_days > 0", name="positive_duration"),
        CheckConstraint("original_minor >= 0", name="price_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("benefit_packages.id"), index=True)
    position: Mapped[int]
    duration_days: Mapped[int]
    original_minor: Mapped[int] = mapped_column(BigInteger)
    first_minor: Mapped[int | None] = mapped_column(BigInteger)
    repeat_minor: Mapped[int | None] = mapped_column(BigInteger)
    renewal_minor: Mapped[int | None] = mapped_column(BigInteger)
    promo_minor: Mapped[int | None] = mapped_column(BigInteger)
    promo_starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    promo_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PackageItemKind(StrEnum):
    FIRST_GIFT = "first_gift"
    REPEAT_GIFT = "repeat_gift"
    RENEWAL_GIFT = "renewal_gift"
    MEMBER_PRICE = "member_price"
    DISCOUNT = "discount"
    MULTIPLIER = "multiplier"
    PROMOTION = "promotion"
    TIER_UPGRADE = "tier_upgrade"
    CARD_EXTENSION = "extension"


class BenefitPackageItem(Base):
    """One of the (up to 9 kinds of) benefits a package gives, for all its sales rules or
    the ones named."""

    __tablename__ = "benefit_package_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("benefit_packages.id"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(80), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    rule_positions: Mapped[list] = mapped_column(JSON, default=list)   # empty: every rule
    # Gifts: points and a coupon template or coupon package.
    points: Mapped[int] = mapped_column(default=0)
    coupon_template_id: Mapped[int | None] = mapped_column(ForeignKey("coupon_templates.id"))
    coupon_package_id: Mapped[int | None] = mapped_column(ForeignKey("coupon_packages.id"))
    # Early renewal gift: "immediate" or "on_start" (when the renewed period begins).
    distribution: Mapped[str | None] = mapped_column(String(10))
    # Member price, discount, multiplier, promotion, extension: an existing benefit.
    benefit_id: Mapped[int | None] = mapped_column(ForeignKey("benefits.id"))
    tier_id: Mapped[int | None] = mapped_column(ForeignKey("tiers.id"))


class PackageSettings(Base):
    """Merchant-wide: how a purchased period is counted (spec 2.2.2)."""

    __tablename__ = "benefit_package_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    # "immediate": from the payment; "purchase_day": from 0:00 of the purchase day;
    # "next_day": from 0:00 of the next day (all in the merchant's time zone).
    validity_mode: Mapped[str] = mapped_column(String(12), default="immediate")
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PurchaseStatus(StrEnum):
    PENDING = "pending"        # waiting for its payment
    PAID = "paid"              # its period is running or to come
    REFUNDED = "refunded"
    CANCELLED = "cancelled"    # never paid


class PackagePurchase(Base):
    """One member's purchase of a package under one sales rule: a paid period
    [starts_at, ends_at). An early renewal's period starts when the current one ends."""

    __tablename__ = "benefit_package_purchases"
    __table_args__ = (Index("ix_package_purchases_member", "member_id", "package_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("benefit_packages.id"))
    rule_id: Mapped[int] = mapped_column(ForeignKey("benefit_package_rules.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    status: Mapped[str] = mapped_column(String(10), default=PurchaseStatus.PENDING)
    # "original", "first", "repeat", "renewal" or "promo": which price applied.
    price_kind: Mapped[str] = mapped_column(String(10))
    price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    is_renewal: Mapped[bool] = mapped_column(default=False)
    # The member's first purchase of the package (decided under a lock on the member when
    # the purchase is made): it gets the first-purchase gift, later ones the repeat gift.
    is_first: Mapped[bool] = mapped_column(default=False)
    # What the grant gave: [{"item_id": 3, "name": "…", "points": 500, "given": true}, …]
    gifts: Mapped[list] = mapped_column(JSON, default=list)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    channel: Mapped[str] = mapped_column(String(8), default="ONLINE")
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The purchase's gifts (first / repeat / renewal) and its tier upgrade and card
    # extension: due at payment, or when a renewed period starts; given once by the
    # minute tick (a conditional UPDATE of `granted_at`).
    grants_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    granted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    package: Mapped[BenefitPackage] = relationship()
    rule: Mapped[PackageRule] = relationship()
