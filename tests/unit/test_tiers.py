"""Tiers: levels, validity, release, real-time changes, expiry and the calendar day."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from portal import clock, jobs
from portal.db import transaction
from portal.loyalty import tiers
from portal.loyalty.errors import LoyaltyError
from portal.loyalty.models import TierSettings
from portal.members.models import MemberCard, Tier
from tests.fixtures import add_experience

TZ_NOON = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


@pytest.fixture(autouse=True)
def _shanghai():
    clock.set_timezone("Asia/Shanghai")
    clock.freeze(TZ_NOON)


@pytest.mark.parametrize("start,months,expected", [
    (date(2026, 1, 31), 1, date(2026, 2, 28)),
    (date(2028, 1, 31), 1, date(2028, 2, 29)),     # a leap year
    (date(2026, 8, 31), 6, date(2027, 2, 28)),
    (date(2026, 11, 15), 2, date(2027, 1, 15)),    # across the new year
])
def test_add_months_keeps_the_day_or_the_months_last(start, months, expected):
    assert tiers.add_months(start, months) == expected


def _local(y, m, d):
    return clock.start_of_local_day(date(y, m, d))


def test_validity_the_day_after_x_months_and_month_end():
    gold = Tier(rank=1, rule="window", window_months=12, threshold=100)
    settings = TierSettings(validity="months", validity_months=6)
    assert tiers.tier_until(settings, gold, TZ_NOON) == _local(2026, 9, 11)
    settings.validity = "month_end"
    assert tiers.tier_until(settings, gold, TZ_NOON) == _local(2026, 10, 1)
    settings.validity = "permanent"
    assert tiers.tier_until(settings, gold, TZ_NOON) is None
    settings.validity = "months"
    lifetime = Tier(rank=1, rule="accumulated", threshold=100)
    assert tiers.tier_until(settings, lifetime, TZ_NOON) is None   # accumulated: for good


def test_a_local_late_night_counts_as_that_local_day():
    gold = Tier(rank=1, rule="window", window_months=1, threshold=1)
    settings = TierSettings(validity="months", validity_months=1)
    late = datetime(2026, 1, 31, 15, 30, tzinfo=UTC)   # 23:30 on 31 Jan in Shanghai
    assert tiers.tier_until(settings, gold, late) == _local(2026, 3, 1)  # kept through 28 Feb


def test_levels_are_matched_from_high_to_low():
    levels = [tiers.Level(3, 2, 500, "window", 12),          # Gold, high to low
              tiers.Level(2, 1, 100, "accumulated", None),   # Silver
              tiers.Level(1, 0, None, None, None)]           # Member
    assert tiers._best(levels, 150, {12: {7: 600}}, 7).id == 3
    assert tiers._best(levels, 150, {12: {7: 10}}, 7).id == 2
    assert tiers._best(levels, 50, {12: {7: 10}}, 7).id == 1


def _tier(session, member):
    session.expire_all()
    card = session.query(MemberCard).filter_by(member_id=member.id).one()
    return card.tier.name, card.tier_until_at


def test_release_recalculates_everyone_with_progress(session, tiered, member, other_member,
                                                     owner):
    with transaction(session):
        session.query(TierSettings).update({"on_change": "none"})
    add_experience(session, member, owner, 350, "a")
    add_experience(session, other_member, owner, 120, "b")
    assert _tier(session, member)[0] == "Classic"          # not computed yet
    settings = tiers.release(session, tiered.id, operator_id=owner.id)
    session.expire_all()
    settings = session.get(TierSettings, settings.id)
    assert (settings.recalc_done, settings.recalc_total) == (2, 2)
    assert settings.recalc_finished_at is not None
    assert _tier(session, member) == ("Gold", _local(2026, 9, 11))
    assert _tier(session, other_member) == ("Silver", None)   # accumulated: permanent


def test_real_time_upgrade_and_downgrade(session, tiered, member, owner):
    tiers.release(session, tiered.id, operator_id=owner.id)
    add_experience(session, member, owner, 310, "a")
    assert _tier(session, member)[0] == "Gold"
    add_experience(session, member, owner, -250, "b")
    assert _tier(session, member)[0] == "Classic"


def test_upgrade_only_never_moves_down(session, tiered, member, owner):
    tiers.release(session, tiered.id, operator_id=owner.id)
    with transaction(session):
        session.query(TierSettings).update({"on_change": "upgrade_only"})
    add_experience(session, member, owner, 310, "a")
    add_experience(session, member, owner, -300, "b")
    assert _tier(session, member)[0] == "Gold"


def test_at_expiry_the_tier_is_recalculated_by_the_window(session, tiered, member, owner):
    tiers.release(session, tiered.id, operator_id=owner.id)
    with transaction(session):
        session.query(TierSettings).update({"on_change": "upgrade_only"})
    add_experience(session, member, owner, 310, "a")
    assert _tier(session, member) == ("Gold", _local(2026, 9, 11))
    clock.freeze(_local(2026, 9, 10) + timedelta(hours=23, minutes=59))
    jobs.run_tick()
    assert _tier(session, member)[0] == "Gold"              # still 10 Sep locally
    clock.freeze(_local(2027, 3, 12))                        # the window no longer holds 310
    jobs.run_tick()
    assert _tier(session, member)[0] == "Silver"             # accumulated 310 ≥ 100


def test_since_upgrade_counts_only_experience_after_the_upgrade(session, tiered, member,
                                                                owner):
    tiers.release(session, tiered.id, operator_id=owner.id)
    with transaction(session):
        session.query(TierSettings).update({"on_change": "upgrade_only",
                                            "after_expiry": "since_upgrade"})
    add_experience(session, member, owner, 310, "a")
    clock.freeze(_local(2026, 9, 12))
    add_experience(session, member, owner, 120, "b")
    jobs.run_tick()
    assert _tier(session, member)[0] == "Silver"    # 120 since the upgrade: Silver only


def test_calendar_day_upgrades_those_who_qualify(session, tiered, member, owner):
    tiers.release(session, tiered.id, operator_id=owner.id)
    with transaction(session):
        session.query(TierSettings).update({"on_change": "none", "recalc_day": 15})
    add_experience(session, member, owner, 150, "a")
    assert _tier(session, member)[0] == "Classic"
    clock.freeze(_local(2026, 3, 14) + timedelta(hours=12))
    jobs.run_tick()
    assert _tier(session, member)[0] == "Classic"
    clock.freeze(_local(2026, 3, 15) + timedelta(minutes=5))
    jobs.run_tick()
    assert _tier(session, member)[0] == "Silver"


def test_the_switch_stays_on_once_released(session, tiered, owner):
    tiers.release(session, tiered.id, operator_id=owner.id)
    with pytest.raises(LoyaltyError) as e:
        tiers.save_settings(session, tiered.id, {"enabled": False, "on_change": "realtime",
                                                 "validity": "permanent",
                                                 "after_expiry": "rule"}, operator_id=owner.id)
    assert "enabled" in e.value.details["errors"]


@pytest.mark.parametrize("threshold,rule,months", [(0, "accumulated", None),
                                                   (300, "accumulated", None),   # duplicate
                                                   (200, "accumulated", None),   # out of order
                                                   (500, "window", None)])
def test_bad_levels_are_refused(session, tiered, owner, threshold, rule, months):
    with pytest.raises(LoyaltyError):
        tiers.save_level(session, tiered.id, name="Platinum", threshold=threshold, rule=rule,
                         window_months=months, operator_id=owner.id)
    assert session.query(Tier).filter_by(plan_id=tiered.id).count() == 3


def test_progress_says_how_much_is_left(session, tiered, member, owner):
    tiers.release(session, tiered.id, operator_id=owner.id)
    add_experience(session, member, owner, 40, "a")
    p = tiers.progress(session, member.id)
    assert p["next"].name == "Silver" and p["needed"] == 60


def test_computed_tiers_move_only_once_released(session, tiered, member, owner):
    add_experience(session, member, owner, 350, "a")
    assert _tier(session, member)[0] == "Classic"
    tiers.release(session, tiered.id, operator_id=owner.id)
    assert _tier(session, member)[0] == "Gold"


def test_a_tier_lapses_at_local_midnight(session, tiered, member, owner):
    tiers.release(session, tiered.id, operator_id=owner.id)
    add_experience(session, member, owner, 310, "a")
    assert _tier(session, member) == ("Gold", _local(2026, 9, 11))
    clock.freeze(_local(2026, 9, 11) - timedelta(minutes=1))    # 23:59 on the last day
    jobs.run_tick()
    assert _tier(session, member) == ("Gold", _local(2026, 9, 11))
    clock.freeze(_local(2026, 9, 11) + timedelta(minutes=1))    # 0:01: lapsed, recalculated
    jobs.run_tick()
    assert _tier(session, member) == ("Gold", _local(2027, 3, 12))  # still earned: renewed


def test_release_moves_cards_without_experience_to_the_lowest_level(session, tiered, member,
                                                                     other_member, owner):
    gold = session.query(Tier).filter_by(plan_id=tiered.id, name="Gold").one()
    with transaction(session):
        session.query(MemberCard).update({"tier_id": gold.id})   # recorded by hand earlier
    add_experience(session, other_member, owner, 120, "b")
    tiers.release(session, tiered.id, operator_id=owner.id)
    assert _tier(session, member)[0] == "Classic"                 # no experience at all
    assert _tier(session, other_member) == ("Silver", None)
