"""The admin dashboard's figures for a period of the merchant's local days.

Each figure is one aggregate query, whatever the period's length: the local midnights are
worked out here (they move with daylight saving), and a CASE over those UTC instants
gives every row its day number, which the query groups by. That works the same on
PostgreSQL and SQLite, which share no date-in-a-time-zone function.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from portal import clock
from portal.benefits.models import PackagePurchase, PurchaseStatus
from portal.coupons.models import Coupon
from portal.giftcards.models import CardStatus as GiftCardStatus
from portal.giftcards.models import GiftCard
from portal.members.models import CardPlan, CardStatus, Member, MemberCard, Tier
from portal.wallet.models import Topup, TopupStatus

MAX_DAYS = 366
PRESETS = (7, 30, 90)
# Sources beyond the busiest few are summed as one, so a chart stays readable.
TOP_SOURCES = 5
OTHER_SOURCE = "\x00other"


@dataclass(frozen=True)
class Period:
    first: date
    last: date          # inclusive
    preset: int | None  # 7, 30 or 90 when chosen as "the last n days"

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]


def last_days(n: int, today: date | None = None) -> Period:
    today = today or clock.today()
    return Period(today - timedelta(days=n - 1), today, n)


@dataclass(frozen=True)
class Sales:
    """Per day: how many and for how much (minor units), in one currency."""
    currency: str
    counts: list[int]
    amounts: list[int]


@dataclass(frozen=True)
class TierCount:
    plan: str
    tier: str
    members: int


@dataclass(frozen=True)
class Dashboard:
    period: Period
    registrations: dict[str | None, list[int]]   # by source, busiest first
    tiers: list[TierCount]
    coupons_issued: list[int]
    coupons_used: list[int]
    topups: list[Sales]
    giftcards: list[Sales]
    packages: list[Sales]

    @property
    def days(self) -> list[date]:
        return self.period.days

    @property
    def new_members(self) -> int:
        return sum(sum(v) for v in self.registrations.values())


def _edges(period: Period) -> list[datetime]:
    """The UTC instants at which each local day of the period starts, and the day after."""
    return [clock.start_of_local_day(period.first + timedelta(days=i))
            for i in range((period.last - period.first).days + 2)]


def _day(column, edges: list[datetime]) -> ColumnElement[int]:
    """The row's day number in the period (rows are already limited to the period)."""
    return case(*((column < edge, i) for i, edge in enumerate(edges[1:-1])),
                else_=len(edges) - 2)


def _within(column, edges: list[datetime]) -> ColumnElement[bool]:
    return (column >= edges[0]) & (column < edges[-1])


def _registrations(session: Session, edges: list[datetime], n: int) -> dict:
    day = _day(Member.became_member_at, edges)
    rows = session.execute(
        select(day, Member.enroll_source, func.count(Member.id))
        .where(_within(Member.became_member_at, edges))
        .group_by(day, Member.enroll_source)).all()
    by_source: dict[str | None, list[int]] = defaultdict(lambda: [0] * n)
    for i, source, count in rows:
        by_source[source][i] += count
    busiest = sorted(by_source, key=lambda s: (-sum(by_source[s]), s or ""))
    kept = {s: by_source[s] for s in busiest[:TOP_SOURCES]}
    if len(busiest) > TOP_SOURCES:
        kept[OTHER_SOURCE] = [sum(by_source[s][i] for s in busiest[TOP_SOURCES:])
                              for i in range(n)]
    return kept


def _tiers(session: Session) -> list[TierCount]:
    rows = session.execute(
        select(CardPlan.name, Tier.name, func.count(MemberCard.id))
        .select_from(Tier).join(CardPlan, Tier.plan_id == CardPlan.id)
        .outerjoin(MemberCard, (MemberCard.tier_id == Tier.id)
                   & (MemberCard.status == CardStatus.ACTIVE))
        .group_by(CardPlan.id, CardPlan.name, Tier.id, Tier.name, Tier.rank)
        .order_by(CardPlan.id, Tier.rank, Tier.id)).all()
    return [TierCount(plan, tier, count) for plan, tier, count in rows]


def _per_day(session: Session, column, edges: list[datetime], n: int, *where) -> list[int]:
    day = _day(column, edges)
    counts = [0] * n
    for i, count in session.execute(select(day, func.count()).where(
            _within(column, edges), *where).group_by(day)):
        counts[i] = count
    return counts


def _sales(session: Session, column, amount, currency, edges: list[datetime], n: int,
           *where) -> list[Sales]:
    day = _day(column, edges)
    found: dict[str, Sales] = {}
    for i, cur, count, total in session.execute(
            select(day, currency, func.count(), func.coalesce(func.sum(amount), 0))
            .where(_within(column, edges), *where).group_by(day, currency)):
        sales = found.setdefault(cur, Sales(cur, [0] * n, [0] * n))
        sales.counts[i], sales.amounts[i] = count, int(total)
    return [found[c] for c in sorted(found)]


def dashboard(session: Session, period: Period) -> Dashboard:
    """Registrations by source, members by tier now, coupons issued and used, top-ups,
    gift card and package sales, per local day of `period`: seven queries."""
    edges = _edges(period)
    n = len(edges) - 1
    return Dashboard(
        period=period,
        registrations=_registrations(session, edges, n),
        tiers=_tiers(session),
        coupons_issued=_per_day(session, Coupon.issued_at, edges, n),
        coupons_used=_per_day(session, Coupon.used_at, edges, n),
        # A refunded top-up was still paid on its day; the refund is the refunds' story.
        topups=_sales(session, Topup.credited_at, Topup.amount_minor, Topup.currency, edges,
                      n, Topup.status.in_((TopupStatus.CREDITED, TopupStatus.REFUNDED))),
        giftcards=_sales(session, GiftCard.activated_at, GiftCard.price_minor,
                         GiftCard.currency, edges, n,
                         GiftCard.status.not_in((GiftCardStatus.PENDING,
                                                 GiftCardStatus.CANCELLED,
                                                 GiftCardStatus.IN_STOCK))),
        packages=_sales(session, PackagePurchase.paid_at, PackagePurchase.price_minor,
                        PackagePurchase.currency, edges, n,
                        PackagePurchase.status.in_((PurchaseStatus.PAID,
                                                    PurchaseStatus.REFUNDED))),
    )
