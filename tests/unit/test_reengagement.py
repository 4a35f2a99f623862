"""The re-engagement gift: the daily scan at local midnight, once per lapse, a purchase
re-arming it, the audience, and delivery through grants."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from portal import clock, jobs
from portal.campaigns import reengagement
from portal.campaigns import services as campaigns
from portal.campaigns.models import Activity, ActivityGift, Grant, Participation
from portal.coupons.models import Coupon
from portal.db import transaction
from portal.members.models import Member, Tag, member_tags
from tests.factories import CardPlanFactory, CouponTemplateFactory
from tests.fixtures import member_with_card

# 0:00 on 1 March 2026 in Shanghai.
MIDNIGHT = datetime(2026, 2, 28, 16, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _shanghai():
    clock.set_timezone("Asia/Shanghai")
    clock.freeze(MIDNIGHT - timedelta(days=60))


@pytest.fixture
def activity(session, plan):
    treat = CouponTemplateFactory(title="We miss you")
    a = Activity(kind="reengagement", name="Come back", code="BACK-30",
                 starts_at=MIDNIGHT - timedelta(days=90), ends_at=MIDNIGHT + timedelta(days=90),
                 status="active", lapse_days=30,
                 gifts=[ActivityGift(template_id=treat.id, quantity=1)])
    session.add(a)
    session.commit()
    return a


def _set(session, member, **values):
    with transaction(session):
        session.query(Member).filter_by(id=member.id).update(values)


def _coupons(session, member) -> int:
    session.expire_all()
    return session.query(Coupon).filter_by(member_id=member.id).count()


def _midnight_tick(day_offset: int = 0, minute: int = 0):
    """The tick at that minute and the next: the scan owes, the delivery gives (in
    whichever order the tick runs them)."""
    for extra in (0, 1):
        clock.freeze(MIDNIGHT + timedelta(days=day_offset, minutes=minute + extra))
        jobs.run_tick()


def test_lapsed_members_get_the_gift_at_local_midnight_once(session, activity, member,
                                                            other_member):
    # 0:00 on 30 January, local: 30 whole days before 1 March.
    _set(session, member, last_purchase_at=MIDNIGHT - timedelta(days=30))
    # 23:00 on 31 January, local: 29 whole days before 1 March (2 March counts 30).
    _set(session, other_member, last_purchase_at=MIDNIGHT - timedelta(days=28, hours=1))
    clock.freeze(MIDNIGHT - timedelta(minutes=1))                  # 23:59: not yet
    jobs.run_tick()
    assert _coupons(session, member) == 0
    _midnight_tick()
    assert _coupons(session, member) == 1
    assert _coupons(session, other_member) == 0
    _midnight_tick(minute=2)                                       # the same day again
    assert reengagement.scan(session, activity.id) == 0            # even forced
    assert _coupons(session, member) == 1


def test_never_bought_counts_from_joining(session, activity, member):
    _set(session, member, last_purchase_at=None,
         became_member_at=MIDNIGHT - timedelta(days=31))
    _midnight_tick()
    assert _coupons(session, member) == 1


def test_still_lapsed_next_day_gets_nothing_more(session, activity, member):
    _set(session, member, last_purchase_at=MIDNIGHT - timedelta(days=40))
    _midnight_tick()
    _midnight_tick(1)
    _midnight_tick(2)
    assert _coupons(session, member) == 1
    assert session.query(Participation).filter_by(member_id=member.id).count() == 1


def test_a_purchase_re_arms_the_gift(session, activity, member):
    _set(session, member, last_purchase_at=MIDNIGHT - timedelta(days=40))
    _midnight_tick()
    _set(session, member, last_purchase_at=MIDNIGHT + timedelta(days=2, hours=5))  # 3 March
    _midnight_tick(31)                      # 1 April: 29 days since
    assert _coupons(session, member) == 1
    _midnight_tick(32)                      # 2 April: 30 days since
    assert _coupons(session, member) == 2


def test_paused_or_ended_activities_give_nothing(session, activity, member):
    _set(session, member, last_purchase_at=MIDNIGHT - timedelta(days=40))
    with transaction(session):
        session.query(Activity).filter_by(id=activity.id).update({"status": "paused"})
    _midnight_tick()
    assert _coupons(session, member) == 0
    with transaction(session):
        session.query(Activity).filter_by(id=activity.id).update(
            {"status": "active", "ends_at": MIDNIGHT})
    _midnight_tick()
    assert _coupons(session, member) == 0


def test_the_audience_narrows_by_plan_and_tag(session, activity, member, other_member):
    elsewhere = member_with_card(CardPlanFactory(name="Other plan"))
    for m in (member, other_member, elsewhere):
        _set(session, m, last_purchase_at=MIDNIGHT - timedelta(days=40))
    with transaction(session):
        tag = Tag(name="regulars")
        session.add(tag)
        session.flush()
        session.execute(member_tags.insert(), [{"member_id": member.id, "tag_id": tag.id},
                                               {"member_id": elsewhere.id, "tag_id": tag.id}])
        session.query(Activity).filter_by(id=activity.id).update(
            {"plan_ids": [member.cards[0].plan_id] if member.cards else
             [session.merge(member).cards[0].plan_id], "tag_ids": [tag.id]})
    _midnight_tick()
    assert [_coupons(session, m) for m in (member, other_member, elsewhere)] == [1, 0, 0]


def test_two_scans_at_once_owe_each_member_once(session, activity, member):
    _set(session, member, last_purchase_at=MIDNIGHT - timedelta(days=40))
    clock.freeze(MIDNIGHT)
    assert reengagement.scan(session, activity.id) == 1
    with transaction(session):                 # a second worker that missed the first
        session.query(Activity).filter_by(id=activity.id).update({"last_scan_on": None})
    assert reengagement.scan(session, activity.id) == 0
    assert session.query(Grant).count() == 1


def test_a_gift_out_of_stock_is_retried_not_lost(session, activity, member):
    from portal.coupons.models import CouponTemplate

    _set(session, member, last_purchase_at=MIDNIGHT - timedelta(days=40))
    template_id = activity.gifts[0].template_id
    with transaction(session):
        session.query(CouponTemplate).filter_by(id=template_id).update(
            {"inventory_total": 1, "inventory_left": 0})
    _midnight_tick()
    grant = session.query(Grant).one()
    assert grant.delivered_at is None and grant.attempts >= 1
    with transaction(session):
        session.query(CouponTemplate).filter_by(id=template_id).update(
            {"inventory_total": 11, "inventory_left": 10})
    _midnight_tick(minute=5)
    assert _coupons(session, member) == 1


def _kinds(session, member):
    from portal.notifications.models import InboxMessage

    session.expire_all()
    return [m.kind for m in session.query(InboxMessage).filter_by(member_id=member.id)]


def test_coupon_arrived_is_sent_when_the_message_type_is_on(session, activity, member):
    _set(session, member, last_purchase_at=MIDNIGHT - timedelta(days=40))
    _midnight_tick()
    assert _kinds(session, member) == ["coupon_arrived"]


@pytest.mark.parametrize("switch", ["message_settings", "activity"])
def test_no_notice_when_switched_off(session, activity, member, switch):
    from portal.notifications.models import MessageSetting

    _set(session, member, last_purchase_at=MIDNIGHT - timedelta(days=40))
    with transaction(session):
        if switch == "activity":
            session.query(Activity).filter_by(id=activity.id).update({"notify": False})
        else:
            session.add(MessageSetting(kind="coupon_arrived", enabled=False))
    _midnight_tick()
    assert _coupons(session, member) == 1 and _kinds(session, member) == []


def test_a_delayed_gift_arrives_after_its_delay(session, activity, member):
    with transaction(session):
        session.query(ActivityGift).filter_by(activity_id=activity.id).update(
            {"delay": "hours", "delay_amount": 10})
    _set(session, member, last_purchase_at=MIDNIGHT - timedelta(days=40))
    _midnight_tick()
    assert _coupons(session, member) == 0
    assert session.query(Grant).one().due_at == MIDNIGHT + timedelta(hours=10)
    _midnight_tick(minute=10 * 60)
    assert _coupons(session, member) == 1


def test_a_gift_out_of_stock_at_midnight_arrives_when_restocked_in_the_morning(session,
                                                                             activity, member):
    from portal.coupons.models import CouponTemplate

    _set(session, member, last_purchase_at=MIDNIGHT - timedelta(days=40))
    template_id = activity.gifts[0].template_id
    with transaction(session):
        session.query(CouponTemplate).filter_by(id=template_id).update(
            {"inventory_total": 1, "inventory_left": 0})
    for minute in range(0, 9 * 60, 5):           # until 9:00, out of stock
        clock.freeze(MIDNIGHT + timedelta(minutes=minute))
        jobs.run_tick()
    assert session.query(Grant).one().attempts < 20   # backed off, not hammered
    with transaction(session):
        session.query(CouponTemplate).filter_by(id=template_id).update(
            {"inventory_total": 2, "inventory_left": 1})
    clock.freeze(MIDNIGHT + timedelta(hours=15))
    jobs.run_tick()
    assert _coupons(session, member) == 1


def test_a_gift_is_given_up_a_week_after_the_activity_ends(session, activity, member):
    from portal.coupons.models import CouponTemplate

    _set(session, member, last_purchase_at=MIDNIGHT - timedelta(days=40))
    with transaction(session):
        session.query(CouponTemplate).filter_by(id=activity.gifts[0].template_id).update(
            {"inventory_total": 1, "inventory_left": 0})
    _midnight_tick()
    clock.freeze(activity.ends_at + timedelta(days=8))
    jobs.run_tick()
    assert session.query(Grant).one().attempts == campaigns.MAX_ATTEMPTS
