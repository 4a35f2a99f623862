"""The till's member centre (spec 2.2.1): find a member by what the customer shows (the
card, its QR code, which holds the card number, or a mobile number) and read everything a
cashier needs about them in a fixed number of queries."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from portal import clock, ledger
from portal.ledger import AccountKind
from portal.members.attributes import normalize_mobile
from portal.members.cards import CardRow, rows_for
from portal.members.errors import MemberError
from portal.members.models import Member, MemberCard

EXPIRING_DAYS = 30


@dataclass
class Lookup:
    """What the search box was read as, and what it found."""

    member: Member | None
    card_number: str | None = None
    mobile: str | None = None     # E.164, when the box held a valid mobile number


@dataclass
class GiftCardHeld:
    card: object
    balance: int


@dataclass
class MemberCentre:
    member: Member
    cards: list[CardRow]
    progress: dict | None
    points_expiring: int
    points_expiring_at: datetime | None
    coupons: list = field(default_factory=list)
    gift_cards: list[GiftCardHeld] = field(default_factory=list)

    @property
    def points(self) -> int:
        return self.cards[0].points if self.cards else 0


def find(session: Session, text: str) -> Lookup:
    """A card number (typed, scanned from the card's QR code, spaces and dashes ignored)
    or a mobile number."""
    raw = (text or "").strip()
    digits = re.sub(r"[\s-]", "", raw)
    if digits.isdecimal() and len(digits) == 16:
        card = session.scalar(select(MemberCard).where(MemberCard.number == digits))
        if card is not None:
            return Lookup(session.get(Member, card.member_id), card_number=digits)
    try:
        mobile = normalize_mobile(raw, current_app.config["DEFAULT_REGION"])
    except MemberError:
        return Lookup(None)
    return Lookup(session.scalar(select(Member).where(Member.mobile == mobile)), mobile=mobile)


def centre(session: Session, member_id: int) -> MemberCentre | None:
    """The member's cards with balances, tier progress, points expiring within 30 days,
    available coupons and the gift cards they hold."""
    from portal.coupons.services import wallet
    from portal.giftcards.models import CardStatus as GiftCardStatus
    from portal.giftcards.models import GiftCard
    from portal.loyalty.tiers import progress

    member = session.scalar(select(Member).options(
        selectinload(Member.cards).selectinload(MemberCard.plan),
        selectinload(Member.cards).selectinload(MemberCard.tier)).where(Member.id == member_id))
    if member is None:
        return None
    soon = clock.now() + timedelta(days=EXPIRING_DAYS)
    expiring, expiring_at = session.execute(
        select(func.coalesce(func.sum(ledger.Entry.open_amount), 0),
               func.min(ledger.Entry.expires_at))
        .join(ledger.Account, ledger.Account.id == ledger.Entry.account_id)
        .where(ledger.Account.kind == AccountKind.POINTS, ledger.Account.owner_type == "member",
               ledger.Account.owner_id == member.id, ledger.Entry.open_amount > 0,
               ledger.Entry.expires_at.is_not(None), ledger.Entry.expires_at <= soon)).one()
    coupons, _counts = wallet(session, member.id, "available")
    held = list(session.scalars(select(GiftCard).where(
        GiftCard.holder_member_id == member.id,
        GiftCard.status.in_([GiftCardStatus.ACTIVE, GiftCardStatus.FROZEN]))
        .order_by(GiftCard.id.desc())))
    balances = {owner_id: amount for owner_id, amount in session.execute(
        select(ledger.Account.owner_id, ledger.Account.balance).where(
            ledger.Account.kind == AccountKind.GIFT_CARD,
            ledger.Account.owner_type == "gift_card",
            ledger.Account.owner_id.in_({g.id for g in held})))} if held else {}
    return MemberCentre(
        member=member, cards=rows_for(session, member.cards),
        progress=progress(session, member.id) if member.cards else None,
        points_expiring=int(expiring or 0), points_expiring_at=expiring_at,
        coupons=coupons, gift_cards=[GiftCardHeld(g, balances.get(g.id, 0)) for g in held])
