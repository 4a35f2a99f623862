"""When and for whom a benefit holds: plan and tier scope, channels, member days, birthday
windows and tier perks. Pure functions of a benefit and plain values (no queries), shared by
the basket quote, earning (multiplier points) and the member's "My benefits" page.

Days are the merchant's (`portal.clock.local`): a member day or a birthday begins at 0:00
in the merchant's time zone, wherever the till is.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from portal import clock
from portal.benefits.models import BenefitKind, BenefitStatus
from portal.wallet import schedule as schedules

FULL = 10_000                      # basis points: 100%, or points × 1
LOOKAHEAD_DAYS = 400               # a monthly "31" can be two months away; a year is plenty


def _ids(values) -> set[int]:
    return {int(v) for v in values or [] if str(v).strip().lstrip("-").isdecimal()}


def is_active(benefit) -> bool:
    return benefit.status == BenefitStatus.ACTIVE


def in_scope(benefit, card) -> bool:
    """The card's plan and tier are among the benefit's (an empty list is every one)."""
    plans, tiers = _ids(benefit.plan_ids), _ids(benefit.tier_ids)
    return (not plans or card.plan_id in plans) and (not tiers or card.tier_id in tiers)


def channel_ok(benefit, channel: str) -> bool:
    channels = {str(c).upper() for c in benefit.channels or []}
    return not channels or channel.upper() in channels


# --- member days ---------------------------------------------------------------------------

@dataclass(frozen=True)
class MemberDay:
    """One member day: its local date and its time window (start included, end excluded)."""

    on: date
    start: str          # "HH:MM"
    end: str            # "HH:MM"; "24:00" is midnight at the end of the day

    @property
    def starts_at(self) -> datetime:
        return _instant(self.on, self.start)

    @property
    def ends_at(self) -> datetime:
        return _instant(self.on, self.end)


def _instant(day: date, hhmm: str) -> datetime:
    if hhmm == "24:00":
        return clock.start_of_local_day(day + timedelta(days=1))
    hours, minutes = (int(x) for x in hhmm.split(":"))
    local = datetime.combine(day, time(hours, minutes), tzinfo=clock.timezone())
    return local.astimezone(UTC)


def member_day_open(benefit, at: datetime) -> bool:
    """Whether `at` falls in one of the member day's windows. A benefit without a schedule
    has no member day (an empty schedule would otherwise mean every day)."""
    return bool(benefit.schedule) and schedules.is_scheduled(benefit.schedule, at)


def next_member_day(benefit, at: datetime) -> MemberDay | None:
    """The window open at `at`, or else the next one to open; None without a schedule."""
    if not benefit.schedule:
        return None
    local = clock.local(at)
    minute = local.hour * 60 + local.minute
    for offset in range(LOOKAHEAD_DAYS):
        day = local.date() + timedelta(days=offset)
        for start, end in schedules.windows_on(benefit.schedule, day):
            if offset == 0 and _minutes(end) <= minute:
                continue  # today's window is over
            return MemberDay(day, start, end)
    return None


def _minutes(hhmm: str) -> int:
    hours, minutes = (int(x) for x in hhmm.split(":"))
    return hours * 60 + minutes


# --- birthdays -----------------------------------------------------------------------------

def birthday_in(year: int, born_on: date) -> date:
    """The birthday in `year`; 29 February is kept on 28 February in other years."""
    if born_on.month == 2 and born_on.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return born_on.replace(year=year)


def _window_around(birthday: date, window: str) -> tuple[date, date]:
    if window == "week":           # the calendar week, Monday to Sunday
        monday = birthday - timedelta(days=birthday.weekday())
        return monday, monday + timedelta(days=6)
    if window == "month":
        last = calendar.monthrange(birthday.year, birthday.month)[1]
        return birthday.replace(day=1), birthday.replace(day=last)
    return birthday, birthday


def birthday_window(benefit, born_on: date | None, at: datetime) -> tuple[date, date] | None:
    """(first, last) local day of the birthday window that holds at `at`, or else of this
    year's. A week crosses year ends: a 31 December birthday on a Wednesday gives
    29 December to 4 January, so on 2 January last year's window still holds (and a
    1 January birthday's week can begin in December)."""
    if born_on is None:
        return None
    window = benefit.birthday_window or "day"
    today = clock.local(at).date()
    for year in (today.year, today.year - 1, today.year + 1):
        first, last = _window_around(birthday_in(year, born_on), window)
        if first <= today <= last:
            return first, last
    return _window_around(birthday_in(today.year, born_on), window)


def birthday_open(benefit, born_on: date | None, at: datetime) -> bool:
    span = birthday_window(benefit, born_on, at)
    return span is not None and span[0] <= clock.local(at).date() <= span[1]


# --- tier perks and what a benefit gives ---------------------------------------------------

@dataclass(frozen=True)
class Perk:
    discount_bp: int = 0
    multiplier_bp: int = 0


def tier_perk(benefit, tier_id: int | None) -> Perk:
    """The extra a tier gets on top of the benefit's own (nothing when none is set)."""
    for perk in benefit.tier_perks or []:
        if str(perk.get("tier_id")) == str(tier_id):
            return Perk(int(perk.get("discount_bp") or 0), int(perk.get("multiplier_bp") or 0))
    return Perk()


def discount_bp(benefit, tier_id: int | None) -> int:
    """The percentage off for this tier: the benefit's own plus its tier perk, at most 100%.
    Only discounts, member days and birthdays take a percentage off."""
    if benefit.kind not in (BenefitKind.DISCOUNT, BenefitKind.MEMBER_DAY, BenefitKind.BIRTHDAY):
        return 0
    extra = tier_perk(benefit, tier_id).discount_bp \
        if benefit.kind != BenefitKind.DISCOUNT else 0
    return max(0, min((benefit.discount_bp or 0) + extra, FULL))


def multiplier_bp(benefit, tier_id: int | None) -> int:
    """Points × N (basis points; 10,000 is × 1) for this tier: the benefit's own multiplier
    plus the tier's extra. Multipliers, member days and birthdays give one."""
    if benefit.kind not in (BenefitKind.MULTIPLIER, BenefitKind.MEMBER_DAY,
                            BenefitKind.BIRTHDAY):
        return FULL
    extra = tier_perk(benefit, tier_id).multiplier_bp \
        if benefit.kind != BenefitKind.MULTIPLIER else 0
    return max(FULL, (benefit.multiplier_bp or FULL) + extra)


def is_open(benefit, card, at: datetime) -> bool:
    """Within its time window: a member day's schedule, the member's birthday window; the
    other kinds have none."""
    if benefit.kind == BenefitKind.MEMBER_DAY:
        return member_day_open(benefit, at)
    if benefit.kind == BenefitKind.BIRTHDAY:
        return birthday_open(benefit, card.member.born_on, at)
    return True
