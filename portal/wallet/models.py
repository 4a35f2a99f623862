"""The prepaid wallet: top-up plans (fixed, range, custom), smart top-up plans and their
tiers, top-ups, recharge codes, and charges against a card's prepaid balance.

Percentages and multipliers are integers in basis points (1% = 100, 1.2× = 12000): no
floats, and a Decimal only where a formula is worked out."""
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


class PlanKind(StrEnum):
    FIXED = "fixed"
    RANGE = "range"
    CUSTOM = "custom"


class PlanStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    INACTIVE = "inactive"
    ARCHIVED = "archived"


class TopupPlan(Base):
    """A way to top up (spec 2.3.2). Fixed: one amount with its bonus and points. Range:
    any amount in [min, max], bonus and points a percentage of it. Custom: any amount in
    [min, max], bonus and points scaled linearly across their own ranges."""

    __tablename__ = "topup_plans"
    __table_args__ = (
        CheckConstraint("stock_left IS NULL OR stock_left >= 0", name="stock_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(120))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10), default=PlanStatus.DRAFT)
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When in the validity period: {"frequency": "daily"|"weekly"|"monthly", "days": [...],
    # "times": "all_day"|"window"|"per_date", "window": ["10:00", "22:00"],
    # "per_date": {"1": ["09:00", "12:00"]}}; see portal.wallet.schedule.
    schedule: Mapped[dict] = mapped_column(JSON, default=dict)
    # {"mode": "all"|"include"|"exclude", "store_ids": [], "organisations": [],
    #  "groups": []}
    store_scope: Mapped[dict] = mapped_column(JSON, default=dict)
    plan_ids: Mapped[list] = mapped_column(JSON, default=list)
    tier_ids: Mapped[list] = mapped_column(JSON, default=list)
    segment_ids: Mapped[list] = mapped_column(JSON, default=list)
    tag_ids: Mapped[list] = mapped_column(JSON, default=list)
    upgrade_tier_id: Mapped[int | None] = mapped_column(ForeignKey("tiers.id"))
    # Fixed.
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    bonus_minor: Mapped[int | None] = mapped_column(BigInteger)
    bonus_points: Mapped[int | None]
    # Range and custom: the amounts a member may top up.
    min_minor: Mapped[int | None] = mapped_column(BigInteger)
    max_minor: Mapped[int | None] = mapped_column(BigInteger)
    # Range: bonus and points as basis points of the amount.
    bonus_bp: Mapped[int | None]
    points_bp: Mapped[int | None]
    # Custom: bonus and points at the bottom and the top of the amount range.
    bonus_min_minor: Mapped[int | None] = mapped_column(BigInteger)
    bonus_max_minor: Mapped[int | None] = mapped_column(BigInteger)
    points_min: Mapped[int | None]
    points_max: Mapped[int | None]
    gift_template_id: Mapped[int | None] = mapped_column(ForeignKey("coupon_templates.id"))
    gift_package_id: Mapped[int | None] = mapped_column(ForeignKey("coupon_packages.id"))
    # First top-up bonus: extra bonus and points (basis points of the amount) and a gift.
    first_bonus: Mapped[bool] = mapped_column(default=False)
    first_bonus_bp: Mapped[int] = mapped_column(default=0)
    first_points_bp: Mapped[int] = mapped_column(default=0)
    first_gift_template_id: Mapped[int | None] = mapped_column(
        ForeignKey("coupon_templates.id"))
    first_gift_package_id: Mapped[int | None] = mapped_column(
        ForeignKey("coupon_packages.id"))
    benefit_ids: Mapped[list] = mapped_column(JSON, default=list)
    cover_image: Mapped[str | None] = mapped_column(String(200))
    # Restrictions.
    first_topup_only: Mapped[bool] = mapped_column(default=False)
    stock_total: Mapped[int | None]
    stock_left: Mapped[int | None]
    visible: Mapped[bool] = mapped_column(default=True)
    channels: Mapped[list] = mapped_column(JSON, default=lambda: ["POS", "ONLINE"])
    spend_product_ids: Mapped[list] = mapped_column(JSON, default=list)   # empty: any
    per_member_limit: Mapped[int | None]
    # Custom: how much of a top-up may be spent on the day it is made.
    same_day_usable_bp: Mapped[int | None]          # of the principal; None: all
    bonus_locked_same_day: Mapped[bool] = mapped_column(default=False)
    agreement: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TopupStatus(StrEnum):
    PENDING = "pending"          # waiting for its payment
    CREDITED = "credited"        # balance, bonus, points and gifts given
    CANCELLED = "cancelled"      # the payment expired or failed: stock given back
    REFUNDED = "refunded"        # refunded in full (a part: `refunded_minor`)


class Topup(Base):
    """One top-up of a card: paid (a payment), free (a recharge code), or the top-up
    half of a smart top-up. What it gives is worked out when it is created and credited
    exactly once."""

    __tablename__ = "topups"
    __table_args__ = (Index("ix_topups_member_status", "member_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("topup_plans.id"), index=True)
    smart_tier_id: Mapped[int | None] = mapped_column(ForeignKey("smart_tiers.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    card_id: Mapped[int] = mapped_column(ForeignKey("member_cards.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    bonus_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    points: Mapped[int] = mapped_column(default=0)
    # The coupons to give: [{"template_id"|"package_id": id, "quantity": n}].
    gifts: Mapped[list] = mapped_column(JSON, default=list)
    first: Mapped[bool] = mapped_column(default=False)
    # Whether it holds a unit of its plan's stock (to give back if it is not paid).
    holds_stock: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(10), default=TopupStatus.PENDING)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    code_id: Mapped[int | None] = mapped_column(ForeignKey("recharge_codes.id"), unique=True)
    channel: Mapped[str] = mapped_column(String(8), default="ONLINE")
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    # A smart top-up also pays this bill from the balance, in the same step.
    bill_minor: Mapped[int | None] = mapped_column(BigInteger)
    bill_order_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    credited_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    plan: Mapped[TopupPlan | None] = relationship()


class RechargeCodeBatch(Base):
    """N single-use codes for a plan: each is a free top-up of `amount_minor` (the plan's
    own amount for a fixed plan)."""

    __tablename__ = "recharge_code_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("topup_plans.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    scenario: Mapped[str] = mapped_column(String(120))
    store_ids: Mapped[list] = mapped_column(JSON, default=list)     # empty: any store
    channels: Mapped[list] = mapped_column(JSON, default=lambda: ["POS", "ONLINE"])
    count: Mapped[int]
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class RechargeCode(Base):
    __tablename__ = "recharge_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("recharge_code_batches.id"), index=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    redeemed_by: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    batch: Mapped[RechargeCodeBatch] = relationship()


class SmartPlan(Base):
    """Smart top-up (spec 2.4): offered when a bill is larger than the balance."""

    __tablename__ = "smart_plans"
    __table_args__ = (
        CheckConstraint("stock_left IS NULL OR stock_left >= 0", name="stock_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10), default=PlanStatus.DRAFT)
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    store_scope: Mapped[dict] = mapped_column(JSON, default=dict)
    plan_ids: Mapped[list] = mapped_column(JSON, default=list)
    tier_ids: Mapped[list] = mapped_column(JSON, default=list)
    min_topup_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    # Top-up amounts are rounded up to a multiple of this many minor units (10 = 0.1).
    rounding_minor: Mapped[int] = mapped_column(default=100)
    first_bonus: Mapped[bool] = mapped_column(default=False)
    first_topup_only: Mapped[bool] = mapped_column(default=False)
    stock_total: Mapped[int | None]
    stock_left: Mapped[int | None]
    channels: Mapped[list] = mapped_column(JSON, default=lambda: ["POS", "ONLINE"])
    cover_image: Mapped[str | None] = mapped_column(String(200))
    agreement: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    tiers: Mapped[list[SmartTier]] = relationship(
        back_populates="plan", order_by="SmartTier.position", cascade="all, delete-orphan")


class SmartTier(Base):
    """One offer of a smart plan. discount: top up bill × multiplier, bonus bill × bonus;
    gift: the same, plus points = top-up × points and a gift; fixed: a set amount with
    its bonus, points and gift."""

    __tablename__ = "smart_tiers"
    __table_args__ = (UniqueConstraint("plan_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("smart_plans.id"))
    position: Mapped[int]
    kind: Mapped[str] = mapped_column(String(8))        # discount, gift, fixed
    multiplier_bp: Mapped[int | None]                   # 1.2× = 12000
    bonus_bp: Mapped[int | None]
    points_bp: Mapped[int | None]
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    bonus_minor: Mapped[int | None] = mapped_column(BigInteger)
    bonus_points: Mapped[int | None]
    gift_template_id: Mapped[int | None] = mapped_column(ForeignKey("coupon_templates.id"))
    # First top-up: a gift (discount and fixed tiers), or extra bonus and points (gift).
    first_gift_template_id: Mapped[int | None] = mapped_column(
        ForeignKey("coupon_templates.id"))
    first_bonus_bp: Mapped[int] = mapped_column(default=0)
    first_points_bp: Mapped[int] = mapped_column(default=0)

    plan: Mapped[SmartPlan] = relationship(back_populates="tiers")


class ChargeStatus(StrEnum):
    PAID = "paid"
    REFUNDED = "refunded"        # in full (a part: `refunded_minor`)


class Charge(Base):
    """A bill paid from a card's prepaid balance; the split says where it came from, so
    a refund puts it back exactly there."""

    __tablename__ = "charges"
    __table_args__ = (
        UniqueConstraint("card_id", "idempotency_key"),
        CheckConstraint("refunded_minor >= 0 AND refunded_minor <= amount_minor",
                        name="refund_within_amount"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("member_cards.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    principal_minor: Mapped[int] = mapped_column(BigInteger)
    bonus_minor: Mapped[int] = mapped_column(BigInteger)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_principal_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_bonus_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(10), default=ChargeStatus.PAID)
    order_external_id: Mapped[str | None] = mapped_column(String(64))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    channel: Mapped[str] = mapped_column(String(8))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    # A smart top-up that paid for this bill in the same step.
    topup_id: Mapped[int | None] = mapped_column(ForeignKey("topups.id"))
    # Which credits paid it: [{"entry", "kind", "topup", "amount", "refunded"}], so that a
    # refund puts money back where it came from, with its item restriction.
    lots: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class ChargeRefund(Base):
    __tablename__ = "charge_refunds"
    __table_args__ = (UniqueConstraint("charge_id", "refund_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    charge_id: Mapped[int] = mapped_column(ForeignKey("charges.id"), index=True)
    refund_key: Mapped[str] = mapped_column(String(128))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    principal_minor: Mapped[int] = mapped_column(BigInteger)
    bonus_minor: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
