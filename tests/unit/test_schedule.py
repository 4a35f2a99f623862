"""Effective dates and times of a top-up plan, in the merchant's time zone."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from portal import clock
from portal.wallet.schedule import clean_schedule, is_open, is_scheduled, validate_schedule

SHANGHAI = "Asia/Shanghai"


@pytest.fixture(autouse=True)
def _tz():
    clock.set_timezone(SHANGHAI)
    yield
    clock.set_timezone("UTC")


def local(*args) -> datetime:
    """A moment given as the shop's wall clock (Shanghai is UTC+8)."""
    return datetime(*args, tzinfo=clock.timezone()).astimezone(UTC)


def plan(schedule=None, starts_at=None, ends_at=None):
    return SimpleNamespace(schedule=schedule or {}, starts_at=starts_at, ends_at=ends_at)


def test_an_empty_schedule_is_always_on():
    assert is_open(plan(), local(2026, 3, 1, 0, 0))


def test_the_validity_period_includes_its_start_and_excludes_its_end():
    start, end = local(2026, 3, 1, 10, 0), local(2026, 3, 31, 0, 0)
    p = plan(starts_at=start, ends_at=end)
    assert not is_open(p, start - timedelta(seconds=1))
    assert is_open(p, start)
    assert is_open(p, end - timedelta(seconds=1))
    assert not is_open(p, end)


def test_weekly_days_are_local_weekdays_across_midnight():
    fridays = {"frequency": "weekly", "days": [4]}
    # 16:30 UTC on Thursday 5 March 2026 is 00:30 on Friday 6 March in Shanghai.
    thursday_utc = datetime(2026, 3, 5, 16, 30, tzinfo=UTC)
    assert is_scheduled(fridays, thursday_utc)
    assert not is_scheduled(fridays, thursday_utc - timedelta(hours=1))   # 23:30 Thursday
    assert is_scheduled(fridays, local(2026, 3, 6, 23, 59))
    assert not is_scheduled(fridays, local(2026, 3, 7, 0, 0))


def test_a_window_starts_included_and_ends_excluded():
    s = {"frequency": "daily", "times": "window", "window": ["10:00", "22:00"]}
    assert not is_scheduled(s, local(2026, 3, 6, 9, 59))
    assert is_scheduled(s, local(2026, 3, 6, 10, 0))
    assert is_scheduled(s, local(2026, 3, 6, 21, 59))
    assert not is_scheduled(s, local(2026, 3, 6, 22, 0))


@pytest.mark.parametrize("end", ["24:00", "00:00"])
def test_a_window_ending_at_midnight_runs_to_the_end_of_the_day(end):
    s = {"frequency": "weekly", "days": [4], "times": "window", "window": ["22:00", end]}
    assert validate_schedule(s) == {}
    assert is_scheduled(s, local(2026, 3, 6, 23, 59))          # Friday
    assert not is_scheduled(s, local(2026, 3, 7, 0, 0))        # Saturday: another day
    assert not is_scheduled(s, local(2026, 3, 6, 0, 0))        # Friday's first minute


def test_the_31st_is_skipped_in_a_30_day_month():
    s = {"frequency": "monthly", "days": [31]}
    assert is_scheduled(s, local(2026, 3, 31, 12, 0))
    assert not any(is_scheduled(s, local(2026, 4, d, 12, 0)) for d in range(1, 31))


def test_last_is_every_month_s_last_day():
    s = {"frequency": "monthly", "days": ["last"]}
    assert is_scheduled(s, local(2026, 4, 30, 12, 0))
    assert is_scheduled(s, local(2026, 2, 28, 12, 0))
    assert is_scheduled(s, local(2028, 2, 29, 12, 0))     # a leap year
    assert not is_scheduled(s, local(2028, 2, 28, 12, 0))
    assert not is_scheduled(s, local(2026, 3, 30, 12, 0))


def test_monthly_1st_15th_and_last():
    s = {"frequency": "monthly", "days": [1, 15, "last"]}
    assert [d for d in range(1, 31) if is_scheduled(s, local(2026, 4, d, 8, 0))] == [1, 15, 30]


def test_per_date_times_each_day_its_own_hours():
    s = {"frequency": "weekly", "days": [0, 5], "times": "per_date",
         "per_date": {"0": ["09:00", "12:00"], "5": ["18:00", "22:00"]}}
    monday, saturday = (2026, 3, 2), (2026, 3, 7)
    assert is_scheduled(s, local(*monday, 9, 0))
    assert not is_scheduled(s, local(*monday, 18, 0))
    assert is_scheduled(s, local(*saturday, 18, 0))
    assert not is_scheduled(s, local(*saturday, 9, 0))


def test_the_last_day_and_the_31st_take_both_windows():
    s = {"frequency": "monthly", "days": [31, "last"], "times": "per_date",
         "per_date": {"31": ["09:00", "10:00"], "last": ["20:00", "21:00"]}}
    assert is_scheduled(s, local(2026, 3, 31, 9, 30))
    assert is_scheduled(s, local(2026, 3, 31, 20, 30))
    assert is_scheduled(s, local(2026, 4, 30, 20, 30))
    assert not is_scheduled(s, local(2026, 4, 30, 9, 30))


@pytest.mark.parametrize("schedule,key", [
    ({"frequency": "hourly"}, "frequency"),
    ({"frequency": "weekly", "days": []}, "days"),
    ({"frequency": "weekly", "days": [7]}, "days"),
    ({"frequency": "monthly", "days": [0]}, "days"),
    ({"frequency": "monthly", "days": [32]}, "days"),
    ({"frequency": "monthly", "days": ["first"]}, "days"),
    ({"frequency": "daily", "times": "sometimes"}, "times"),
    ({"frequency": "daily", "times": "window", "window": ["22:00", "10:00"]}, "window"),
    ({"frequency": "daily", "times": "window", "window": ["22:00", "02:00"]}, "window"),
    ({"frequency": "daily", "times": "window", "window": ["10:00", "10:00"]}, "window"),
    ({"frequency": "daily", "times": "window", "window": ["9", "10:00"]}, "window"),
    ({"frequency": "daily", "times": "window", "window": ["25:00", "26:00"]}, "window"),
    ({"frequency": "daily", "times": "window", "window": ["", ""]}, "window"),
    ({"frequency": "daily", "times": "window",
      "window": [["09:00", "12:00"], ["11:00", "14:00"]]}, "window"),
    ({"frequency": "daily", "times": "per_date", "per_date": {}}, "times"),
    ({"frequency": "weekly", "days": [1], "times": "per_date", "per_date": {}},
     "per_date-1"),
    ({"frequency": "weekly", "days": [1], "times": "per_date",
      "per_date": {"1": ["12:00", "09:00"]}}, "per_date-1"),
    ({"frequency": "weekly", "days": [1], "times": "per_date",
      "per_date": {"1": ["09:00", "12:00"], "2": ["09:00", "12:00"]}}, "per_date"),
])
def test_bad_schedules_are_refused_with_a_message(schedule, key):
    errors = validate_schedule(schedule)
    assert key in errors and errors[key]


def test_good_schedules_pass_and_are_stored_tidily():
    s = {"frequency": "monthly", "days": ["last", "15", 1, 15], "times": "window",
         "window": ["10:00", "22:00"], "per_date": {"x": 1}}
    assert validate_schedule(s) == {}
    assert clean_schedule(s) == {"frequency": "monthly", "days": [1, 15, "last"],
                                 "times": "window", "window": ["10:00", "22:00"]}
    assert validate_schedule({"frequency": "daily", "times": "window",
                              "window": [["09:00", "12:00"], ["12:00", "14:00"]]}) == {}
