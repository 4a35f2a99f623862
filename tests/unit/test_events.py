"""Interaction events with daily, monthly and total caps (spec 2.22)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from portal import clock, ledger
from portal.ledger import AccountKind
from portal.loyalty import events
from portal.loyalty.errors import LoyaltyError


@pytest.fixture(autouse=True)
def _shanghai():
    clock.set_timezone("Asia/Shanghai")
    clock.freeze(datetime(2026, 1, 30, 4, 0, tzinfo=UTC))


@pytest.fixture
def check_in(session, owner):
    return events.save_event(session, key="check_in", name="Check-in", points=5, experience=1,
                             daily_cap=1, monthly_cap=2, total_cap=3, operator_id=owner.id)


def _reward(session, member, ref):
    return events.reward(session, event_key="check_in", member_id=member.id, reference=ref)


def _points(session, member):
    return ledger.balance(session, AccountKind.POINTS, "member", member.id)


def test_caps_per_day_month_and_ever(session, member, check_in):
    assert _reward(session, member, "d1") is not None
    assert _reward(session, member, "d1b") is None                 # 1 a day
    clock.advance(timedelta(days=1))
    assert _reward(session, member, "d2") is not None               # 31 Jan
    clock.advance(timedelta(days=1))
    assert _reward(session, member, "d3") is not None               # 1 Feb: a new month
    clock.advance(timedelta(days=1))
    assert _reward(session, member, "d4") is None                   # 3 ever
    assert _points(session, member) == 15


def test_the_same_reference_rewards_once(session, member, check_in):
    first = _reward(session, member, "x")
    again = _reward(session, member, "x")
    assert first.id == again.id and _points(session, member) == 5


def test_bad_events_are_refused(session, owner, check_in):
    with pytest.raises(LoyaltyError) as e:
        events.save_event(session, key="check_in", name="", points=0, experience=0,
                          daily_cap=0, monthly_cap=None, total_cap=None, operator_id=owner.id)
    assert {"key", "name", "points", "daily_cap"} <= set(e.value.details["errors"])


def test_unknown_events_are_refused(session, member):
    with pytest.raises(LoyaltyError):
        events.reward(session, event_key="nope", member_id=member.id, reference="r")


def test_a_reference_belongs_to_one_member(session, member, other_member, check_in):
    _reward(session, member, "shared")
    with pytest.raises(LoyaltyError) as e:
        _reward(session, other_member, "shared")
    assert e.value.code == "reference_used"
