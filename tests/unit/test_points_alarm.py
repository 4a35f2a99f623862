"""The abnormal-points alarm (spec 3.3)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from portal import clock, jobs, ledger
from portal.db import db
from portal.ledger import AccountKind
from portal.loyalty import alarm
from portal.loyalty import services as loyalty
from portal.loyalty.errors import LoyaltyError, LoyaltyErrorCode
from portal.loyalty.models import EarningRule
from portal.members.models import Member
from portal.notifications.models import OutboxMessage


@pytest.fixture(autouse=True)
def _shanghai():
    clock.set_timezone("Asia/Shanghai")
    clock.freeze(datetime(2026, 3, 10, 4, 0, tzinfo=UTC))


@pytest.fixture
def rules(session, plan, owner):
    session.add(EarningRule(plan_id=plan.id, points_amount=1, points_per_minor=100))
    session.commit()
    return alarm.save(session, daily_threshold=100, block_earning=True, block_redeeming=True,
                      emails=["ops@example.com"], operator_id=owner.id)


def _order(session, member, store, external_id, amount):
    card = session.merge(member).cards[0]
    return loyalty.record_order(session, store_id=store.id, client_id=None, channel="POS",
                                external_id=external_id, card_no=card.number,
                                occurred_at=clock.now(), currency="CNY",
                                lines=[loyalty.OrderLine("1", amount)], payments=[])[0]


def _status(member):
    db.session.expire_all()
    return db.session.get(Member, member.id).status


def test_passing_the_daily_threshold_marks_the_member_and_blocks(session, member, store, rules):
    _order(session, member, store, "a", 6000)     # 60 points
    assert _status(member) == "normal"
    _order(session, member, store, "b", 5000)     # 110 today: abnormal
    assert _status(member) == "abnormal"
    third = _order(session, member, store, "c", 5000)
    assert third.points_earned == 0               # earning is blocked
    card = session.merge(member).cards[0]
    with pytest.raises(LoyaltyError) as e:
        loyalty.redeem_points(session, card_no=card.number, points=1, reference="r",
                              store_id=store.id)
    assert e.value.code == LoyaltyErrorCode.MEMBER_ABNORMAL


def test_the_day_is_the_merchants_day(session, member, store, rules):
    clock.freeze(datetime(2026, 3, 10, 15, 50, tzinfo=UTC))   # 23:50 local
    _order(session, member, store, "a", 9000)
    clock.advance(timedelta(minutes=20))                       # 0:10 the next local day
    _order(session, member, store, "b", 9000)
    assert _status(member) == "normal"


def test_the_report_goes_out_once_after_local_midnight(session, member, store, rules):
    _order(session, member, store, "a", 20000)
    assert jobs.run_tick()["abnormal_points_report"] == 0        # still the same day
    clock.freeze(datetime(2026, 3, 10, 16, 1, tzinfo=UTC))       # 0:01 on 11 March local
    assert jobs.run_tick()["abnormal_points_report"] == 1
    assert jobs.run_tick()["abnormal_points_report"] == 0
    mail = session.query(OutboxMessage).filter_by(template="abnormal_points").one()
    assert mail.recipient == "ops@example.com" and "2026-03-10" in mail.subject


def test_staff_clear_the_mark(session, member, store, rules, owner):
    _order(session, member, store, "a", 20000)
    alarm.set_normal(session, member.id, operator_id=owner.id)
    assert _status(member) == "normal"


def test_bad_settings_are_refused(session, owner):
    with pytest.raises(LoyaltyError) as e:
        alarm.save(session, daily_threshold=0, block_earning=False, block_redeeming=False,
                   emails=["not-mail"], operator_id=owner.id)
    assert set(e.value.details["errors"]) == {"daily_threshold", "emails"}


def test_off_by_default(session, member, store, plan):
    session.add(EarningRule(plan_id=plan.id, points_amount=1, points_per_minor=1))
    session.commit()
    _order(session, member, store, "a", 100000)
    assert _status(member) == "normal"
    assert ledger.balance(session, AccountKind.POINTS, "member", member.id) == 100000


def test_missed_reports_are_caught_up(session, member, store, rules):
    _order(session, member, store, "a", 20000)                    # abnormal on 10 March
    clock.freeze(datetime(2026, 3, 12, 16, 1, tzinfo=UTC))       # 13 March: worker was down
    assert jobs.run_tick()["abnormal_points_report"] == 1
    assert session.query(OutboxMessage).filter_by(template="abnormal_points").count() == 1
