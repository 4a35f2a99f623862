"""Validity periods in the merchant's time zone: fixed dates and days after issue, month
ends, leap years, and days that do not start at midnight (DST changes at 0:00)."""
from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

from hypothesis import example, given
from hypothesis import strategies as st

from portal import clock
from portal.coupons.models import ValidityKind
from portal.coupons.services import validity
from portal.loyalty.services import points_expiry
from portal.loyalty.tiers import add_months, tier_until
from portal.students.services import valid_until
from tests.properties.conftest import PURE

# Half-hour and 45-minute offsets, DST at midnight (Santiago, Havana), none at all.
ZONES = ["UTC", "Asia/Shanghai", "America/New_York", "America/Santiago", "America/Havana",
         "Australia/Lord_Howe", "Pacific/Chatham", "Asia/Tehran", "Europe/London"]
zones = st.sampled_from(ZONES)
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2060, 12, 31))
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2060, 12, 31),
                       timezones=st.just(UTC))
TICK = timedelta(microseconds=1)


def _is_start_of(moment: datetime, day: date) -> bool:
    """`moment` is the first instant of the local `day`."""
    return clock.local(moment).date() == day and clock.local(moment - TICK).date() < day


@PURE
@given(zone=zones, day=days)
@example(zone="America/Santiago", day=date(2026, 9, 6))   # clocks jump from 0:00 to 1:00
def test_a_local_day_starts_at_its_first_instant(zone, day):
    clock.set_timezone(zone)
    assert _is_start_of(clock.start_of_local_day(day), day)


@PURE
@given(day=days, months=st.integers(-240, 240))
@example(day=date(2024, 2, 29), months=12)
@example(day=date(2026, 1, 31), months=1)
def test_adding_months_keeps_the_day_or_takes_the_months_last(day, months):
    later = add_months(day, months)
    assert (later.year * 12 + later.month) - (day.year * 12 + day.month) == months
    last = calendar.monthrange(later.year, later.month)[1]
    assert later.day == min(day.day, last)


def _template(**fields):
    return SimpleNamespace(**{"validity_kind": ValidityKind.RELATIVE, "starts_after_days": 0,
                              "valid_days": 1, "valid_from_on": None, "valid_until_on": None,
                              **fields})


@PURE
@given(zone=zones, received=moments, after=st.integers(0, 365), lasting=st.integers(1, 3650))
def test_days_after_issue_count_whole_local_days(zone, received, after, lasting):
    clock.set_timezone(zone)
    start, end = validity(_template(starts_after_days=after, valid_days=lasting), received)
    received_on = clock.local(received).date()
    if after:
        assert _is_start_of(start, received_on + timedelta(days=after))
    else:
        assert start == received  # usable at once
    assert _is_start_of(end, received_on + timedelta(days=after + lasting))
    assert received <= start < end


@PURE
@given(zone=zones, first=days, length=st.integers(0, 400), received=moments)
def test_fixed_dates_cover_both_days_whole(zone, first, length, received):
    clock.set_timezone(zone)
    last = first + timedelta(days=length)
    start, end = validity(_template(validity_kind=ValidityKind.FIXED, valid_from_on=first,
                                    valid_until_on=last), received)
    assert _is_start_of(start, first) and _is_start_of(end, last + timedelta(days=1))


@PURE
@given(zone=zones, earned=moments, years=st.integers(0, 10), later=st.timedeltas(
    min_value=timedelta(0), max_value=timedelta(days=800)))
@example(zone="Asia/Shanghai", earned=datetime(2026, 12, 31, 16, tzinfo=UTC), years=0,
         later=timedelta(0))  # already 1 January in Shanghai: lapses a year later
def test_points_lapse_on_1_january_after_n_years_and_later_points_no_sooner(
        zone, earned, years, later):
    clock.set_timezone(zone)
    rule = SimpleNamespace(points_expiry_years=years)
    lapse = points_expiry(rule, earned)
    year = clock.local(earned).year + years + 1
    assert _is_start_of(lapse, date(year, 1, 1)) and lapse > earned
    assert points_expiry(rule, earned + later) >= lapse


@PURE
@given(zone=zones, since=moments, months=st.integers(1, 36),
       validity_kind=st.sampled_from(["months", "month_end"]))
def test_a_tier_lapses_at_a_local_midnight_after_it_was_reached(zone, since, months,
                                                                validity_kind):
    clock.set_timezone(zone)
    settings = SimpleNamespace(validity=validity_kind, validity_months=months)
    tier = SimpleNamespace(rank=1, rule="window")
    until = tier_until(settings, tier, since)
    reached_on = clock.local(since).date()
    end = add_months(reached_on, months)
    if validity_kind == "months":
        assert _is_start_of(until, end + timedelta(days=1))
    else:  # through the end of that month
        first_of_next = (end.replace(day=1) + timedelta(days=32)).replace(day=1)
        assert _is_start_of(until, first_of_next)
    assert until > since


@PURE
@given(approved=days, months=st.integers(1, 48), graduation=days)
def test_student_status_ends_by_graduation(approved, months, graduation):
    last = valid_until(approved, months, graduation)
    assert last <= graduation and last <= add_months(approved, months)
    assert last in (graduation, add_months(approved, months))
