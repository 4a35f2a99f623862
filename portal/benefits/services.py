"""Reading member benefits for other packages and the member's "My benefits" page.

Only active benefits are ever read here: deactivating one takes it from members at once.
The time rules (member days, birthday windows, tier perks) are `portal.benefits.rules`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from portal import clock
from portal.benefits import purchases, rules
from portal.benefits.models import Benefit, BenefitKind, BenefitStatus
from portal.members.models import CardPlan, CardStatus, Member, MemberCard, Tier


@dataclass(frozen=True)
class _Standing:
    """A card's plan and tier, real or hoped for (what the next tier would reach)."""

    plan_id: int
    tier_id: int


def active_benefits(session: Session) -> list[Benefit]:
    return list(session.scalars(select(Benefit).where(Benefit.status == BenefitStatus.ACTIVE)
                                .order_by(Benefit.id)))


def _reachable(benefits: list[Benefit], card, at: datetime | None = None,
               bought: set[int] = frozenset()) -> list[Benefit]:
    """In the card's plan and tier scope, or given by a running paid package (`bought`)."""
    if at is not None and card.current_status(at) != CardStatus.ACTIVE:
        return []
    return [b for b in benefits if b.id in bought or rules.in_scope(b, card)]


def benefits_for_card(session: Session, card: MemberCard, at: datetime) -> list[Benefit]:
    """The active benefits whose plan and tier scope includes the card; none while the card
    is frozen or expired at `at`."""
    return _reachable(active_benefits(session), card, at)


@dataclass(frozen=True)
class Held:
    """A benefit as this member's tier has it."""

    benefit: Benefit
    discount_bp: int
    multiplier_bp: int
    note: str = ""


@dataclass(frozen=True)
class Birthday:
    benefit: Benefit
    first: date
    last: date
    is_now: bool


@dataclass(frozen=True)
class MemberDayAhead:
    benefit: Benefit
    day: rules.MemberDay
    is_now: bool


@dataclass
class MyBenefits:
    member: Member
    card: MemberCard | None
    card_usable: bool = True
    held: list[Held] = field(default_factory=list)
    member_day: MemberDayAhead | None = None
    birthdays: list[Birthday] = field(default_factory=list)
    has_birthday_benefit: bool = False
    next_tier: Tier | None = None
    next_adds: list[Held] = field(default_factory=list)


def _held(benefit: Benefit, tier_id: int) -> Held:
    note = next((str(p.get("note") or "") for p in benefit.tier_perks or []
                 if str(p.get("tier_id")) == str(tier_id)), "")
    return Held(benefit, rules.discount_bp(benefit, tier_id),
                rules.multiplier_bp(benefit, tier_id), note)


def _gains(held: Held, now: Held) -> bool:
    return (held.discount_bp, held.multiplier_bp) > (now.discount_bp, now.multiplier_bp) \
        or (held.note and held.note != now.note)


def my_benefits(session: Session, member_id: int, at: datetime) -> MyBenefits:
    """What the member's (first) card and tier give at `at`, the next member day, the
    birthday window and what the next tier adds; a fixed number of queries."""
    member = session.get(Member, member_id)
    card = session.scalar(
        select(MemberCard).options(selectinload(MemberCard.plan).selectinload(CardPlan.tiers),
                                   selectinload(MemberCard.tier))
        .where(MemberCard.member_id == member_id).order_by(MemberCard.id).limit(1))
    mine = MyBenefits(member=member, card=card)
    if card is None:
        return mine
    benefits = active_benefits(session)
    mine.card_usable = card.current_status(at) == CardStatus.ACTIVE
    reached = _reachable(benefits, card, at,
                         purchases.active_package_benefit_ids(session, member_id, at))
    mine.held = [_held(b, card.tier_id) for b in reached]

    days = [MemberDayAhead(b, d, d.starts_at <= at < d.ends_at) for b in reached
            if b.kind == BenefitKind.MEMBER_DAY and (d := rules.next_member_day(b, at))]
    mine.member_day = min(days, key=lambda d: (d.day.starts_at, d.benefit.id), default=None)

    birthday = [b for b in reached if b.kind == BenefitKind.BIRTHDAY]
    mine.has_birthday_benefit = bool(birthday)
    if member.born_on is not None:
        today = clock.local(at).date()
        for b in birthday:
            first, last = rules.birthday_window(b, member.born_on, at)
            if last < today:   # this year's is over: show the coming one
                new_year = clock.start_of_local_day(date(today.year + 1, 1, 1))
                first, last = rules.birthday_window(b, member.born_on, new_year)
            mine.birthdays.append(Birthday(b, first, last, first <= today <= last))

    mine.next_tier = next((t for t in card.plan.tiers if t.rank > card.tier.rank), None)
    if mine.next_tier is not None:
        now = {h.benefit.id: h for h in mine.held}
        hoped = _Standing(card.plan_id, mine.next_tier.id)
        for b in _reachable(benefits, hoped):
            held = _held(b, mine.next_tier.id)
            if b.id not in now or _gains(held, now[b.id]):
                mine.next_adds.append(held)
    return mine


def held_benefit(session: Session, member_id: int, benefit_id: int, at: datetime) -> Held | None:
    """One benefit the member's card has now (None: not theirs, or not active)."""
    mine = my_benefits(session, member_id, at)
    return next((h for h in mine.held if h.benefit.id == benefit_id), None)
