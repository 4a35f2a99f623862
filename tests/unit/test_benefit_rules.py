"""Who has a benefit and when: scope, member days, birthday windows, tier perks."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest

from portal import clock
from portal.benefits import rules
from portal.benefits.models import Benefit

SHANGHAI = "Asia/Shanghai"


@pytest.fixture(autouse=True)
def _tz():
    clock.set_timezone(SHANGHAI)
    yield
    clock.set_timezone("UTC")


def local(*args) -> datetime:
    """A moment on the shop's wall clock (Shanghai is UTC+8)."""
    return datetime(*args, tzinfo=clock.timezone()).astimezone(UTC)


def benefit(kind="discount", **kw) -> Benefit:
    fields = {"plan_ids": [], "tier_ids": [], "channels": ["POS", "ONLINE"], "schedule": {},
              "tier_perks": [], "status": "active", **kw}
    return Benefit(kind=kind, name="B", currency="CNY", **fields)


def card(plan_id=1, tier_id=10):
    return SimpleNamespace(plan_id=plan_id, tier_id=tier_id)


# --- scope ---------------------------------------------------------------------------------

def test_in_scope_empty_lists_mean_every_plan_and_tier():
    assert rules.in_scope(benefit(), card())


def test_in_scope_needs_the_plan_and_the_tier():
    b = benefit(plan_ids=[1], tier_ids=[11, 12])
    assert rules.in_scope(b, card(1, 11))
    assert not rules.in_scope(b, card(1, 10))
    assert not rules.in_scope(b, card(2, 11))


def test_in_scope_reads_ids_stored_as_text():
    assert rules.in_scope(benefit(plan_ids=["1"], tier_ids=["10"]), card())


def test_channel_ok_is_case_blind():
    assert rules.channel_ok(benefit(channels=["POS"]), "pos")
    assert not rules.channel_ok(benefit(channels=["POS"]), "ONLINE")


# --- member days ---------------------------------------------------------------------------

FRIDAYS_10_22 = {"frequency": "weekly", "days": [4], "times": "window",
                 "window": ["10:00", "22:00"]}


def test_member_day_window_includes_its_start_and_excludes_its_end():
    b = benefit("member_day", schedule=FRIDAYS_10_22)
    assert not rules.member_day_open(b, local(2026, 3, 6, 9, 59))
    assert rules.member_day_open(b, local(2026, 3, 6, 10, 0))
    assert rules.member_day_open(b, local(2026, 3, 6, 21, 59))
    assert not rules.member_day_open(b, local(2026, 3, 6, 22, 0))
    assert not rules.member_day_open(b, local(2026, 3, 7, 12, 0))   # Saturday


def test_member_day_is_the_local_day_not_utc():
    b = benefit("member_day", schedule={"frequency": "weekly", "days": [4]})
    assert rules.member_day_open(b, datetime(2026, 3, 5, 16, 30, tzinfo=UTC))  # Fri 00:30


def test_member_day_without_schedule_is_never_open():
    b = benefit("member_day", schedule={})
    assert not rules.member_day_open(b, local(2026, 3, 6, 12, 0))
    assert rules.next_member_day(b, local(2026, 3, 6, 12, 0)) is None


def test_member_day_per_date_windows():
    b = benefit("member_day", schedule={
        "frequency": "monthly", "days": [5, "last"], "times": "per_date",
        "per_date": {"5": ["18:00", "22:00"], "last": ["00:00", "12:00"]}})
    assert rules.member_day_open(b, local(2026, 3, 5, 18, 0))
    assert not rules.member_day_open(b, local(2026, 3, 5, 12, 0))
    assert rules.member_day_open(b, local(2026, 3, 31, 11, 59))
    assert not rules.member_day_open(b, local(2026, 3, 31, 12, 0))


def test_member_day_monthly_last_is_the_months_last_day():
    b = benefit("member_day", schedule={"frequency": "monthly", "days": ["last"]})
    assert rules.member_day_open(b, local(2026, 2, 28, 8, 0))
    assert rules.member_day_open(b, local(2028, 2, 29, 8, 0))
    assert not rules.member_day_open(b, local(2028, 2, 28, 8, 0))


def test_next_member_day_is_todays_window_while_open():
    b = benefit("member_day", schedule=FRIDAYS_10_22)
    day = rules.next_member_day(b, local(2026, 3, 6, 21, 0))
    assert (day.on, day.start, day.end) == (date(2026, 3, 6), "10:00", "22:00")
    assert day.starts_at == local(2026, 3, 6, 10, 0) and day.ends_at == local(2026, 3, 6, 22, 0)


def test_next_member_day_after_todays_window_is_next_week():
    b = benefit("member_day", schedule=FRIDAYS_10_22)
    assert rules.next_member_day(b, local(2026, 3, 6, 22, 0)).on == date(2026, 3, 13)


def test_next_member_day_all_day_ends_at_midnight():
    b = benefit("member_day", schedule={"frequency": "monthly", "days": [31]})
    day = rules.next_member_day(b, local(2026, 4, 2, 9, 0))      # April has no 31st
    assert (day.on, day.start, day.end) == (date(2026, 5, 31), "00:00", "24:00")
    assert day.ends_at == local(2026, 6, 1, 0, 0)


# --- birthdays -----------------------------------------------------------------------------

def test_birthday_day_window_is_the_day():
    b = benefit("birthday", birthday_window="day")
    born = date(1990, 6, 15)
    assert rules.birthday_window(b, born, local(2026, 3, 1, 9)) == (date(2026, 6, 15),) * 2
    assert rules.birthday_open(b, born, local(2026, 6, 15, 0, 0))
    assert not rules.birthday_open(b, born, local(2026, 6, 14, 23, 59))
    assert not rules.birthday_open(b, born, local(2026, 6, 16, 0, 0))


def test_birthday_week_is_monday_to_sunday():
    b = benefit("birthday", birthday_window="week")
    born = date(1990, 6, 17)                              # Wednesday 17 June 2026
    assert rules.birthday_window(b, born, local(2026, 6, 1)) == (date(2026, 6, 15),
                                                                 date(2026, 6, 21))


def test_birthday_week_across_the_year_end():
    b = benefit("birthday", birthday_window="week")
    born = date(1990, 12, 31)                             # Wednesday 31 December 2025
    span = (date(2025, 12, 29), date(2026, 1, 4))
    assert rules.birthday_window(b, born, local(2025, 12, 29, 0, 0)) == span
    assert rules.birthday_window(b, born, local(2026, 1, 2, 12, 0)) == span
    assert rules.birthday_open(b, born, local(2026, 1, 4, 23, 59))
    assert not rules.birthday_open(b, born, local(2026, 1, 5, 0, 0))
    assert not rules.birthday_open(b, born, local(2025, 12, 28, 23, 59))


def test_birthday_week_of_new_year_starts_in_december():
    b = benefit("birthday", birthday_window="week")
    born = date(1990, 1, 1)                               # Thursday 1 January 2026
    assert rules.birthday_window(b, born, local(2025, 12, 29, 9)) == (date(2025, 12, 29),
                                                                     date(2026, 1, 4))


def test_birthday_month():
    b = benefit("birthday", birthday_window="month")
    born = date(1990, 2, 10)
    assert rules.birthday_window(b, born, local(2026, 2, 27)) == (date(2026, 2, 1),
                                                                 date(2026, 2, 28))
    assert not rules.birthday_open(b, born, local(2026, 3, 1, 0, 0))


def test_birthday_29_february_is_28_february_in_other_years():
    b = benefit("birthday", birthday_window="day")
    born = date(2000, 2, 29)
    assert rules.birthday_window(b, born, local(2026, 2, 28, 9)) == (date(2026, 2, 28),) * 2
    assert rules.birthday_window(b, born, local(2028, 2, 28, 9)) == (date(2028, 2, 29),) * 2


def test_birthday_unknown_is_never_open():
    b = benefit("birthday", birthday_window="month")
    assert rules.birthday_window(b, None, local(2026, 2, 1)) is None
    assert not rules.birthday_open(b, None, local(2026, 2, 1))


def test_birthday_is_the_local_date():
    b = benefit("birthday", birthday_window="day")
    born = date(1990, 6, 15)
    assert rules.birthday_open(b, born, datetime(2026, 6, 14, 16, 0, tzinfo=UTC))  # 00:00


# --- tier perks ----------------------------------------------------------------------------

def test_tier_perk_adds_to_the_benefits_own():
    b = benefit("member_day", discount_bp=1000, multiplier_bp=20000,
                tier_perks=[{"tier_id": 11, "discount_bp": 1000, "multiplier_bp": 10000}])
    assert rules.tier_perk(b, 11) == rules.Perk(1000, 10000)
    assert rules.tier_perk(b, 10) == rules.Perk()
    assert (rules.discount_bp(b, 11), rules.multiplier_bp(b, 11)) == (2000, 30000)
    assert (rules.discount_bp(b, 10), rules.multiplier_bp(b, 10)) == (1000, 20000)


def test_tier_perk_multiplier_on_a_benefit_without_one_counts_from_one():
    b = benefit("birthday", discount_bp=500,
                tier_perks=[{"tier_id": "11", "discount_bp": 0, "multiplier_bp": 5000}])
    assert rules.multiplier_bp(b, 11) == 15000 and rules.multiplier_bp(b, 10) == 10000


def test_discount_with_perks_stops_at_everything_off():
    b = benefit("member_day", discount_bp=6000,
                tier_perks=[{"tier_id": 11, "discount_bp": 6000}])
    assert rules.discount_bp(b, 11) == 10000


def test_plain_discount_ignores_tier_perks():
    b = benefit("discount", discount_bp=1000, tier_perks=[{"tier_id": 11, "discount_bp": 500}])
    assert rules.discount_bp(b, 11) == 1000


def test_next_member_day_is_found_from_the_end_of_a_window_minus_a_minute():
    b = benefit("member_day", schedule=FRIDAYS_10_22)
    at = local(2026, 3, 6, 22, 0) - timedelta(minutes=1)
    assert rules.next_member_day(b, at).on == date(2026, 3, 6)
