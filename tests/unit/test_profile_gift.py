"""The profile completion gift: eligibility, claiming once, instant and delayed gifts."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from portal import clock, jobs, ledger
from portal.campaigns import services as campaigns
from portal.campaigns.errors import CampaignError, CampaignErrorCode
from portal.campaigns.models import Activity, ActivityGift, Grant, Participation
from portal.coupons.models import Coupon
from portal.db import db
from portal.ledger import AccountKind
from tests.factories import CouponTemplateFactory

NOON = datetime(2026, 1, 31, 4, 0, tzinfo=UTC)  # 12:00 on 31 January in Shanghai


@pytest.fixture(autouse=True)
def _shanghai():
    clock.set_timezone("Asia/Shanghai")
    clock.freeze(NOON)


@pytest.fixture
def activity(session, plan):
    instant = CouponTemplateFactory(title="Welcome latte")
    later = CouponTemplateFactory(title="Come back treat")
    a = Activity(kind="profile_completion", name="Complete your profile", code="PROFILE-1",
                 starts_at=NOON - timedelta(days=1), ends_at=NOON + timedelta(days=30),
                 status="active", required_fields=["full_name", "born_on", "mobile"],
                 plan_ids=[plan.id], tier_ids=[], points=50,
                 gifts=[ActivityGift(template_id=instant.id, quantity=1),
                        ActivityGift(template_id=later.id, quantity=2, delay="hours",
                                     delay_amount=13, validity="relative", valid_days=7)])
    session.add(a)
    session.commit()
    return a


def _complete(session, member):
    m = session.merge(member)
    m.full_name, m.born_on = "Ada Lin", date(1990, 4, 2)
    session.commit()


def test_missing_fields_are_listed_and_nothing_is_given(session, member, activity):
    m = session.merge(member)
    m.born_on = None
    session.commit()
    with pytest.raises(CampaignError) as e:
        campaigns.claim(session, activity.id, member.id)
    assert e.value.code == CampaignErrorCode.INCOMPLETE and e.value.details["missing"] == \
        ["born_on"]
    assert session.query(Participation).count() == 0


def test_claim_gives_points_and_instant_coupons_and_schedules_the_rest(session, member,
                                                                        activity):
    _complete(session, member)
    campaigns.claim(session, activity.id, member.id)
    assert ledger.balance(session, AccountKind.POINTS, "member", member.id) == 50
    assert session.query(Coupon).count() == 1
    grant = session.query(Grant).filter(Grant.delivered_at.is_(None)).one()
    assert grant.due_at == NOON + timedelta(hours=13)          # 01:00 on 1 February, local


def test_a_second_claim_gives_nothing(session, member, activity):
    _complete(session, member)
    campaigns.claim(session, activity.id, member.id)
    with pytest.raises(CampaignError) as e:
        campaigns.claim(session, activity.id, member.id)
    assert e.value.code == CampaignErrorCode.ALREADY_CLAIMED
    assert ledger.balance(session, AccountKind.POINTS, "member", member.id) == 50


def test_delayed_gifts_arrive_once_across_midnight_and_month_end(session, member, activity):
    _complete(session, member)
    campaigns.claim(session, activity.id, member.id)
    clock.advance(timedelta(hours=12, minutes=59))
    assert jobs.run_tick()["deliver_grants"] == 0
    clock.advance(timedelta(minutes=1))                         # 1 Feb, 01:00 local
    assert jobs.run_tick()["deliver_grants"] == 1
    assert jobs.run_tick()["deliver_grants"] == 0               # run twice: once
    delayed = session.query(Coupon).filter(Coupon.batch_id.isnot(None)).all()
    assert len(delayed) == 3
    late = [c for c in delayed if c.valid_from == NOON + timedelta(hours=13)]
    assert len(late) == 2 and late[0].valid_until == late[0].valid_from + timedelta(days=7)


def test_an_instant_coupon_out_of_stock_fails_the_whole_claim(session, member, activity):
    from portal.coupons.errors import CouponError
    from portal.coupons.models import CouponTemplate

    _complete(session, member)
    first = activity.gifts[0]

    session.query(CouponTemplate).filter_by(id=first.template_id).update(
        {"inventory_total": 0, "inventory_left": 0})
    session.commit()
    with pytest.raises(CouponError):
        campaigns.claim(session, activity.id, member.id)
    assert session.query(Participation).count() == 0
    assert ledger.balance(session, AccountKind.POINTS, "member", member.id) == 0


@pytest.mark.parametrize("changes", [{"status": "paused"},
                                     {"starts_at": NOON + timedelta(hours=1)},
                                     {"ends_at": NOON}])
def test_not_running_activities_give_nothing(session, member, activity, changes):
    _complete(session, member)
    for k, v in changes.items():
        setattr(activity, k, v)
    session.commit()
    with pytest.raises(CampaignError) as e:
        campaigns.claim(session, activity.id, member.id)
    assert e.value.code == CampaignErrorCode.NOT_RUNNING


def test_members_of_other_plans_are_out_of_scope(session, activity, other_member):
    from tests.factories import CardPlanFactory
    from tests.fixtures import member_with_card

    outsider = member_with_card(CardPlanFactory())
    _complete(session, outsider)
    with pytest.raises(CampaignError) as e:
        campaigns.claim(session, activity.id, outsider.id)
    assert e.value.code == CampaignErrorCode.OUT_OF_SCOPE
    assert db.session.query(Participation).count() == 0


def _messages(session, member):
    from portal.notifications.models import InboxMessage

    session.expire_all()
    return [(m.kind, m.params) for m in session.query(InboxMessage)
            .filter_by(member_id=member.id).order_by(InboxMessage.id)]


def test_the_member_is_told_once_per_delivery_as_a_gift(session, member, activity):
    _complete(session, member)
    campaigns.claim(session, activity.id, member.id)
    assert _messages(session, member) == [("gift_delivered", {
        "activity": "Complete your profile", "points": 50, "titles": ["Welcome latte"]})]
    clock.advance(timedelta(hours=13))
    jobs.run_tick()
    assert _messages(session, member)[1:] == [("gift_delivered", {
        "activity": "Complete your profile", "points": 0,
        "titles": ["Come back treat × 2"]})]


def test_no_message_when_the_merchant_turned_gift_messages_off(session, member, activity):
    from portal.notifications.models import MessageSetting

    session.add(MessageSetting(kind="gift_delivered", enabled=False))
    session.commit()
    _complete(session, member)
    campaigns.claim(session, activity.id, member.id)
    assert _messages(session, member) == []
