"""Stores, card plans and tiers, customers and members, cards, registration pages."""
from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal import clock
from portal.db import Base, UTCDateTime


class Store(Base):
    __tablename__ = "stores"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    code: Mapped[str] = mapped_column(String(32), unique=True)
    organisation: Mapped[str] = mapped_column(String(120), default="")
    store_group: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class CardPlan(Base):
    __tablename__ = "card_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    currency: Mapped[str] = mapped_column(String(3))
    # None: the card never expires; otherwise it expires this many days after issue.
    validity_days: Mapped[int | None]
    color: Mapped[str] = mapped_column(String(7), default="#0f766e")
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    tiers: Mapped[list[Tier]] = relationship(back_populates="plan", order_by="Tier.rank")

    @property
    def default_tier(self) -> Tier:
        return self.tiers[0]


class Tier(Base):
    __tablename__ = "tiers"
    __table_args__ = (UniqueConstraint("plan_id", "rank"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("card_plans.id"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    # 0 is the lowest tier, the one every new card starts in.
    rank: Mapped[int] = mapped_column(default=0)
    # Higher tiers: the experience that reaches them, and how it is counted ("window":
    # earned in the last `window_months`; "accumulated": all of it, and then permanent).
    threshold: Mapped[int | None]
    rule: Mapped[str | None] = mapped_column(String(12))
    window_months: Mapped[int | None]

    plan: Mapped[CardPlan] = relationship(back_populates="tiers")


class Gender(StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNDISCLOSED = "undisclosed"


class MemberStatus(StrEnum):
    NORMAL = "normal"
    ABNORMAL = "abnormal"


member_tags = Table(
    "member_tags",
    Base.metadata,
    Column("member_id", ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
)


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)


class Segment(Base):
    """Saved rules over member attributes (see portal.members.segments), matched all or
    any, compiled to one SQL condition."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    match: Mapped[str] = mapped_column(String(3), default="all")     # all, any
    rules: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AttributeKind(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"


class CustomAttribute(Base):
    """A member attribute the merchant defines (spec 7.1: up to 48; text, number or date).
    Values live in Member.custom under `key`."""

    __tablename__ = "custom_attributes"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(60))
    kind: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class Member(Base):
    """A customer; a member once a card has been issued (`became_member_at` is set)."""

    __tablename__ = "members"
    __table_args__ = (
        Index("ix_members_enrollment", "enroll_page_id", "enroll_link_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    full_name: Mapped[str] = mapped_column(String(120), default="")
    mobile: Mapped[str | None] = mapped_column(String(20), unique=True)  # E.164
    mobile_verified: Mapped[bool] = mapped_column(default=False)
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    born_on: Mapped[date | None]
    gender: Mapped[str | None] = mapped_column(String(12))
    address: Mapped[str | None] = mapped_column(String(255))
    id_number: Mapped[str | None] = mapped_column(String(32))
    locale: Mapped[str | None] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10), default=MemberStatus.NORMAL)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now, index=True)
    became_member_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Where the customer came from: first touch, kept as given.
    enroll_page_id: Mapped[int | None] = mapped_column(ForeignKey("registration_pages.id"))
    enroll_link_id: Mapped[int | None] = mapped_column(ForeignKey("tracking_links.id"))
    enroll_campaign: Mapped[str | None] = mapped_column(String(64), index=True)
    enroll_source: Mapped[str | None] = mapped_column(String(64), index=True)
    enroll_content: Mapped[str | None] = mapped_column(String(64), index=True)
    enroll_store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    # The latest order from a till or shop (re-engagement looks at it).
    last_purchase_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Values of the merchant's custom attributes, by key (text, number as text, ISO date).
    custom: Mapped[dict] = mapped_column(JSON, default=dict)
    # Bumped on sign-out: every session issued before it stops working.
    session_version: Mapped[int] = mapped_column(default=1)
    # Set when the account is closed (portal.rights): personal fields are erased then.
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    cards: Mapped[list[MemberCard]] = relationship(
        back_populates="member", order_by="MemberCard.id"
    )
    tags: Mapped[list[Tag]] = relationship(secondary=member_tags, order_by="Tag.name")
    enroll_page: Mapped[RegistrationPage | None] = relationship()

    @property
    def is_member(self) -> bool:
        return self.became_member_at is not None

    @property
    def masked_id_number(self) -> str:
        return mask(self.id_number)

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None

    @property
    def display_name(self) -> str:
        return self.full_name or self.mobile or f"#{self.id}"


def mask(value: str | None, keep_start: int = 3, keep_end: int = 4) -> str:
    """Hide the middle of an identifier: 110101********1234."""
    if not value:
        return ""
    if len(value) <= keep_start + keep_end:
        return "*" * len(value)
    return value[:keep_start] + "*" * (len(value) - keep_start - keep_end) + value[-keep_end:]


class CardStatus(StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"
    EXPIRED = "expired"


class MemberCard(Base):
    __tablename__ = "member_cards"
    __table_args__ = (UniqueConstraint("member_id", "plan_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("card_plans.id"))
    tier_id: Mapped[int] = mapped_column(ForeignKey("tiers.id"))
    status: Mapped[str] = mapped_column(String(10), default=CardStatus.ACTIVE)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the card reached its tier, and until when it keeps it (None: for good).
    tier_since_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    tier_until_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)

    member: Mapped[Member] = relationship(back_populates="cards")
    plan: Mapped[CardPlan] = relationship()
    tier: Mapped[Tier] = relationship()

    @property
    def masked_number(self) -> str:
        return "•••• " + self.number[-4:]

    @property
    def grouped_number(self) -> str:
        return " ".join(self.number[i:i + 4] for i in range(0, len(self.number), 4))

    def current_status(self, at: datetime | None = None) -> str:
        at = at or clock.now()
        if self.status == CardStatus.ACTIVE and self.expires_at and self.expires_at <= at:
            return CardStatus.EXPIRED
        return self.status


class PageStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


class RegistrationPage(Base):
    __tablename__ = "registration_pages"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    title: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    intro: Mapped[str] = mapped_column(Text, default="")
    banner_path: Mapped[str | None] = mapped_column(String(255))
    plan_id: Mapped[int] = mapped_column(ForeignKey("card_plans.id"))
    after_submit_url: Mapped[str | None] = mapped_column(String(500))
    existing_member_url: Mapped[str | None] = mapped_column(String(500))
    share_title: Mapped[str | None] = mapped_column(String(120))
    share_summary: Mapped[str | None] = mapped_column(String(255))
    share_image_path: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(10), default=PageStatus.DRAFT)
    visit_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    plan: Mapped[CardPlan] = relationship()
    fields: Mapped[list[RegistrationField]] = relationship(
        back_populates="page", order_by="RegistrationField.position",
        cascade="all, delete-orphan",
    )
    links: Mapped[list[TrackingLink]] = relationship(
        back_populates="page", order_by="TrackingLink.id"
    )

    @property
    def is_published(self) -> bool:
        return self.status == PageStatus.PUBLISHED


class RegistrationField(Base):
    """One member attribute on a registration form; mobile is always there and not listed."""

    __tablename__ = "registration_fields"
    __table_args__ = (UniqueConstraint("page_id", "attribute"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("registration_pages.id"), index=True)
    attribute: Mapped[str] = mapped_column(String(32))
    required: Mapped[bool] = mapped_column(default=False)
    position: Mapped[int] = mapped_column(default=0)

    page: Mapped[RegistrationPage] = relationship(back_populates="fields")


class TrackingLink(Base):
    __tablename__ = "tracking_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("registration_pages.id"), index=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    campaign: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(String(64), default="")
    content: Mapped[str] = mapped_column(String(64), default="")
    visit_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    page: Mapped[RegistrationPage] = relationship(back_populates="links")


class CodePurpose(StrEnum):
    SIGN_IN = "sign_in"          # sign in, or sign up when the number is new
    REGISTER = "register"        # a registration page form waiting for its code
    CHANGE_MOBILE = "change_mobile"


class OneTimeCode(Base):
    """A 6-digit code sent to a mobile number; only its keyed hash is stored."""

    __tablename__ = "one_time_codes"
    __table_args__ = (Index("ix_one_time_codes_mobile_created", "mobile", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mobile: Mapped[str] = mapped_column(String(20))
    purpose: Mapped[str] = mapped_column(String(16))
    code_hash: Mapped[str] = mapped_column(String(64))
    # What to do once verified: the registration form, or the member changing number.
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
