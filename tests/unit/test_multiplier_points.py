"""Multiplier benefits on real earning: recorded orders earn the quote's multiplied points."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from portal import clock, ledger
from portal.benefits.models import Benefit
from portal.db import db
from portal.ledger import AccountKind
from portal.loyalty import services as loyalty
from portal.loyalty.models import EarningRule

FRIDAY_NOON = datetime(2026, 3, 6, 4, 0, tzinfo=UTC)       # Friday 12:00 in Shanghai
SATURDAY_NOON = datetime(2026, 3, 7, 4, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _shanghai():
    clock.set_timezone("Asia/Shanghai")
    clock.freeze(FRIDAY_NOON)
    yield
    clock.set_timezone("UTC")


@pytest.fixture
def rule(plan):
    r = EarningRule(plan_id=plan.id, points_amount=10, points_per_minor=1000,
                    experience_amount=1, experience_per_minor=100)
    db.session.add(r)
    db.session.commit()
    return r


@pytest.fixture
def friday_double(plan):
    b = Benefit(kind="member_day", name="Friday", currency="CNY", multiplier_bp=20000,
                channels=["POS"], schedule={"frequency": "weekly", "days": [4],
                                            "times": "window", "window": ["10:00", "22:00"]})
    db.session.add(b)
    db.session.commit()
    return b


def _order(member, store, at, channel="POS", external_id="A1"):
    card = db.session.merge(member).cards[0]
    order, _created = loyalty.record_order(
        db.session, store_id=store.id, client_id=None, channel=channel,
        external_id=external_id, card_no=card.number, occurred_at=at, currency="CNY",
        lines=[loyalty.OrderLine("1", 2900)], payments=[])
    return order


def test_member_day_doubles_points_at_a_store(member, store, rule, friday_double):
    order = _order(member, store, FRIDAY_NOON)
    assert order.points_earned == 40
    assert ledger.balance(db.session, AccountKind.POINTS, "member", member.id) == 40


def test_member_day_multiplier_not_outside_its_window(member, store, rule, friday_double):
    assert _order(member, store, SATURDAY_NOON).points_earned == 20


def test_member_day_multiplier_follows_the_orders_time_not_the_clock(member, store, rule,
                                                                     friday_double):
    clock.freeze(SATURDAY_NOON)
    assert _order(member, store, FRIDAY_NOON).points_earned == 40


def test_multiplier_not_on_another_channel(member, store, rule, friday_double):
    assert _order(member, store, FRIDAY_NOON, channel="ONLINE").points_earned == 20


def test_experience_is_not_multiplied(member, store, rule, friday_double):
    assert _order(member, store, FRIDAY_NOON).experience_earned == 29


def test_only_the_best_multiplier_applies(member, store, rule, friday_double):
    db.session.add(Benefit(kind="multiplier", name="x3", currency="CNY", multiplier_bp=30000))
    db.session.commit()
    assert _order(member, store, FRIDAY_NOON).points_earned == 60


def test_refund_takes_back_the_multiplied_points(member, store, rule, friday_double):
    _order(member, store, FRIDAY_NOON)
    loyalty.refund_order(db.session, store_id=store.id, external_id="A1", refund_id="R1",
                         lines=None)
    assert ledger.balance(db.session, AccountKind.POINTS, "member", member.id) == 0
