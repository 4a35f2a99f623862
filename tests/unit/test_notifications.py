"""Member messages: worded in the reader's language, switchable per kind, e-mailed through
the outbox to members with an address, sent once per dedupe key."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from flask_babel import force_locale

from portal import clock, jobs, ledger
from portal.coupons import services as coupons
from portal.db import db, transaction
from portal.ledger import AccountKind
from portal.loyalty import tiers
from portal.loyalty.models import TierSettings
from portal.notifications import services as notifications
from portal.notifications.messages import shown, word
from portal.notifications.models import (
    Channel,
    InboxMessage,
    MessageKind,
    MessageSetting,
    OutboxMessage,
)
from tests.conftest import is_postgres
from tests.factories import CouponTemplateFactory
from tests.fixtures import add_experience, member_with_card

NOON = datetime(2026, 12, 10, 4, 0, tzinfo=UTC)  # 12:00 on 10 December in Shanghai


@pytest.fixture(autouse=True)
def _shanghai():
    clock.set_timezone("Asia/Shanghai")
    clock.freeze(NOON)


def _send(session, kind, member_ids, params, **kw):
    with transaction(session):
        return notifications.send(session, kind, member_ids, params, **kw)


def _switch(session, kind, *, enabled=True, email=True, lead_days=30):
    with transaction(session):
        session.merge(MessageSetting(kind=str(kind), enabled=enabled, email=email,
                                     lead_days=lead_days))


def _inbox(session, member_id=None, kind=None):
    session.expire_all()
    q = session.query(InboxMessage)
    if member_id is not None:
        q = q.filter_by(member_id=member_id)
    if kind is not None:
        q = q.filter_by(kind=str(kind))
    return q.order_by(InboxMessage.id).all()


def _emails(session):
    session.expire_all()
    return session.query(OutboxMessage).filter_by(channel=Channel.EMAIL) \
        .order_by(OutboxMessage.id).all()


def _with(member, **values):
    m = db.session.merge(member)
    for k, v in values.items():
        setattr(m, k, v)
    db.session.commit()
    return m


# --- wording ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind,params,title,body,link", [
    (MessageKind.COUPON_ARRIVED, {"titles": ["¥10 off", "Free latte × 2"]},
     "New coupon in your wallet", "You received: ¥10 off and Free latte × 2.", "/wallet"),
    (MessageKind.GIFT_DELIVERED, {"activity": "Profile", "titles": ["¥10 off"], "points": 50},
     "Your gift from “Profile” has arrived", "50 points and ¥10 off are yours.", "/wallet"),
    (MessageKind.GIFT_DELIVERED, {"activity": "Profile", "titles": [], "points": 1},
     "Your gift from “Profile” has arrived", "1 point was added to your balance.", "/points"),
    (MessageKind.GIFT_DELIVERED, {"activity": "Profile", "titles": ["A", "B", "C"]},
     "Your gift from “Profile” has arrived", "In your wallet now: A, B, and C.", "/wallet"),
    (MessageKind.TIER_CHANGED, {"tier": "Gold", "plan": "Coffee club", "up": True},
     "Welcome to Gold", "Your Coffee club card moved up to Gold.", "/card"),
    (MessageKind.TIER_CHANGED, {"tier": "Classic", "plan": "Coffee club", "up": False},
     "Your tier is now Classic", "Your Coffee club card is now at Classic.", "/card"),
    (MessageKind.POINTS_EXPIRING, {"points": 1200, "on": "2027-01-01"},
     "Points expiring soon", "1,200 points expire on Jan 1, 2027. Spending uses them first.",
     "/points"),
])
def test_each_kind_is_worded_in_english(app, kind, params, title, body, link):
    with force_locale("en"):
        words = word(kind, params)
    assert (words.title, words.body, words.link) == (title, body, link)


@pytest.mark.parametrize("kind,params,title,body", [
    (MessageKind.COUPON_ARRIVED, {"titles": ["¥10 off", "拿铁 × 2"]},
     "您的卡包里有新的优惠券", "您收到了：¥10 off和拿铁 × 2。"),
    (MessageKind.POINTS_EXPIRING, {"points": 1200, "on": "2027-01-01"},
     None, "1,200 积分将于 2027年1月1日 过期，使用时优先扣除。"),
])
def test_kinds_are_worded_in_chinese(app, kind, params, title, body):
    with force_locale("zh_Hans"):
        words = word(kind, params)
    assert words.body == body
    assert title is None or words.title == title


def test_chinese_wording_lists_and_formats_the_chinese_way(app):
    """Kinds whose sentences the lead translates last: their parts are already Chinese."""
    with force_locale("zh_Hans"):
        gift = word(MessageKind.GIFT_DELIVERED, {"activity": "完善资料", "points": 1500,
                                                 "titles": ["A", "B", "C"]})
        tier = word(MessageKind.TIER_CHANGED, {"tier": "金卡", "plan": "咖啡会", "up": True})
    assert "完善资料" in gift.title and "1,500" in gift.body and "A、B和C" in gift.body
    assert "金卡" in tier.title and "咖啡会" in tier.body and "金卡" in tier.body


def test_the_same_message_reads_in_each_readers_language(app, session, member):
    _send(session, MessageKind.COUPON_ARRIVED, member.id, {"titles": ["¥10 off"]})
    message = _inbox(session, member.id)[0]
    with force_locale("en"):
        assert shown(message).title == "New coupon in your wallet"
    with force_locale("zh_Hans"):
        assert shown(message).title == "您的卡包里有新的优惠券"


def test_plain_notices_keep_their_stored_words(app, session, member):
    message = InboxMessage(member_id=member.id, title="Shop closed on Monday",
                           body="See you Tuesday.", link="/me")
    with force_locale("zh_Hans"):
        words = shown(message)
    assert (words.title, words.body, words.link) == ("Shop closed on Monday",
                                                     "See you Tuesday.", "/me")


# --- send --------------------------------------------------------------------------------

def test_send_puts_one_typed_message_in_each_inbox(session, member, other_member):
    assert _send(session, MessageKind.TIER_CHANGED, [member.id, other_member.id],
                 {"tier": "Gold", "plan": "Club", "up": True}) == 2
    rows = _inbox(session)
    assert {r.member_id for r in rows} == {member.id, other_member.id}
    assert all(r.kind == "tier_changed" and r.params["tier"] == "Gold" and r.read_at is None
               for r in rows)
    assert notifications.unread_count(session, member.id) == 1


def test_switched_off_kind_sends_nothing(session, member):
    _with(member, email="ann@example.com")
    _switch(session, MessageKind.COUPON_ARRIVED, enabled=False)
    assert _send(session, MessageKind.COUPON_ARRIVED, member.id, {"titles": ["x"]}) == 0
    assert _inbox(session) == [] and _emails(session) == []


def test_email_goes_only_to_members_with_an_address(session, member, other_member):
    _with(member, email="ann@example.com")
    _send(session, MessageKind.COUPON_ARRIVED, [member.id, other_member.id],
          {"titles": ["¥10 off"]})
    assert len(_inbox(session)) == 2
    emails = _emails(session)
    assert [(e.recipient, e.subject, e.template) for e in emails] == [
        ("ann@example.com", "New coupon in your wallet", "coupon_arrived")]
    assert emails[0].status == "sent"  # a few are woken at once, after the commit


def test_email_switch_off_keeps_the_inbox_message_only(session, member):
    _with(member, email="ann@example.com")
    _switch(session, MessageKind.COUPON_ARRIVED, email=False)
    assert _send(session, MessageKind.COUPON_ARRIVED, member.id, {"titles": ["x"]}) == 1
    assert len(_inbox(session)) == 1 and _emails(session) == []


def test_email_is_written_in_the_members_language(session, member, other_member):
    _with(member, email="ann@example.com", locale="zh_Hans")
    _with(other_member, email="bob@example.com", locale=None)
    _send(session, MessageKind.POINTS_EXPIRING, [member.id, other_member.id],
          {"points": 80, "on": "2027-01-01"})
    by_address = {e.recipient: e for e in _emails(session)}
    assert by_address["ann@example.com"].body == \
        "80 积分将于 2027年1月1日 过期，使用时优先扣除。"
    assert by_address["bob@example.com"].body == \
        "80 points expire on Jan 1, 2027. Spending uses them first."


def test_many_emails_wait_for_the_sweep_instead_of_a_task_each(session, plan):
    people = [member_with_card(plan) for _ in range(notifications.WAKE_AT_MOST + 1)]
    for i, m in enumerate(people):
        _with(m, email=f"m{i}@example.com")
    _send(session, MessageKind.COUPON_ARRIVED, [m.id for m in people], {"titles": ["x"]})
    assert {e.status for e in _emails(session)} == {"pending"}
    assert jobs.run_tick()["deliver_outbox"] == len(people)


def test_dedupe_key_sends_once_per_member(session, member, other_member):
    _with(member, email="ann@example.com")
    params = {"points": 10, "on": "2027-01-01"}
    key = "points_expiring:2027-01-01"
    assert _send(session, MessageKind.POINTS_EXPIRING, member.id, params, dedupe_key=key) == 1
    assert _send(session, MessageKind.POINTS_EXPIRING, [member.id, other_member.id], params,
                 dedupe_key=key) == 1   # only the member who had not had it
    assert len(_inbox(session, member.id)) == 1 and len(_inbox(session, other_member.id)) == 1
    assert len(_emails(session)) == 1


def test_duplicate_rows_are_skipped_by_the_unique_key_too(session, member):
    """What a parallel run that passed the pre-select meets: no error, no second row."""
    row = {"member_id": member.id, "kind": "points_expiring", "params": {},
           "dedupe_key": "k", "title": "t", "body": "", "created_at": clock.now()}
    with transaction(session):
        first = session.execute(notifications._insert_once(session)
                                .returning(InboxMessage.member_id), [row]).scalars().all()
    with transaction(session):
        again = session.execute(notifications._insert_once(session)
                                .returning(InboxMessage.member_id), [row]).scalars().all()
    assert (first, again) == ([member.id], [])
    assert len(_inbox(session)) == 1


@pytest.mark.postgres
@pytest.mark.skipif(not is_postgres(), reason="race tests need PostgreSQL")
def test_parallel_sends_with_one_key_give_one_message(app, session, member):
    from tests.concurrency.test_races import run_concurrently

    def go(s, _n):
        with transaction(s):
            return notifications.send(s, MessageKind.POINTS_EXPIRING, member.id,
                                      {"points": 5, "on": "2027-01-01"}, dedupe_key="race")

    results = run_concurrently(app, go, range(8))
    assert sorted(results) == [0] * 7 + [1]
    assert len(_inbox(session, member.id)) == 1


# --- coupons -------------------------------------------------------------------------------

def test_issued_coupons_say_coupon_arrived_unless_switched_off(session, member, other_member):
    t = CouponTemplateFactory(title="¥10 off")
    coupons.issue(session, member_id=member.id, template_id=t.id, quantity=2,
                  source=coupons.Source("test"), key="a")
    assert [(m.kind, m.params) for m in _inbox(session, member.id)] == [
        ("coupon_arrived", {"titles": ["¥10 off × 2"]})]
    _switch(session, MessageKind.COUPON_ARRIVED, enabled=False)
    coupons.issue(session, member_id=other_member.id, template_id=t.id,
                  source=coupons.Source("test"), key="b")
    coupons.issue_bulk(session, template_id=t.id, member_ids=[member.id, other_member.id],
                       source=coupons.Source("test"), key="bulk")
    assert len(_inbox(session)) == 1


# --- points expiring --------------------------------------------------------------------------

def _points(session, member, amount, expires_on: date, key):
    with transaction(session):
        account = ledger.account(session, AccountKind.POINTS, "member", member.id)
        ledger.post(session, account, amount, reason="test", key=key,
                    expires_at=clock.start_of_local_day(expires_on))


def test_points_expiring_tells_each_member_once_per_date(session, member, other_member):
    _with(member, email="ann@example.com")
    _points(session, member, 70, date(2027, 1, 1), "a")
    _points(session, member, 30, date(2027, 1, 1), "b")
    _points(session, member, 500, date(2028, 1, 1), "c")        # beyond the lead days
    _points(session, other_member, 40, date(2026, 12, 20), "d")
    assert "points_expiring" in jobs.DAILY_HANDLERS
    assert notifications.tell_points_expiring(session) == 2
    assert notifications.tell_points_expiring(session) == 0     # run twice: told once
    assert jobs.run_daily()["points_expiring"] == 0
    mine = _inbox(session, member.id, MessageKind.POINTS_EXPIRING)
    assert [(m.params, m.dedupe_key) for m in mine] == [
        ({"points": 100, "on": "2027-01-01"}, "points_expiring:2027-01-01")]
    assert _inbox(session, other_member.id)[0].params == {"points": 40, "on": "2026-12-20"}
    assert [e.recipient for e in _emails(session)] == ["ann@example.com"]


def test_points_expiring_waits_for_the_lead_days(session, member):
    _points(session, member, 70, date(2027, 1, 1), "a")
    _switch(session, MessageKind.POINTS_EXPIRING, lead_days=21)   # 22 days to go
    assert notifications.tell_points_expiring(session) == 0
    clock.advance(timedelta(days=1))                              # 11 Dec: 21 days to go
    assert notifications.tell_points_expiring(session) == 1


def test_points_expiring_ignores_spent_and_expired_points(session, member):
    _points(session, member, 70, date(2027, 1, 1), "a")
    with transaction(session):
        account = ledger.account(session, AccountKind.POINTS, "member", member.id)
        ledger.post(session, account, -70, reason="spent", key="spend")
    assert notifications.tell_points_expiring(session) == 0


def test_points_expiring_switched_off_tells_nobody(session, member):
    _points(session, member, 70, date(2027, 1, 1), "a")
    _switch(session, MessageKind.POINTS_EXPIRING, enabled=False)
    assert notifications.tell_points_expiring(session) == 0
    assert _inbox(session) == []


# --- tier changes -----------------------------------------------------------------------------

def test_tier_change_tells_the_member_but_the_first_release_does_not(session, tiered, member,
                                                                     other_member, owner):
    with transaction(session):
        session.query(TierSettings).update({"on_change": "none"})
    add_experience(session, other_member, owner, 120, "x")
    tiers.release(session, tiered.id, operator_id=owner.id)      # other_member → Silver
    assert _inbox(session, kind=MessageKind.TIER_CHANGED) == []
    with transaction(session):
        session.query(TierSettings).update({"on_change": "realtime"})
    add_experience(session, member, owner, 310, "a")
    add_experience(session, member, owner, -250, "b")
    told = _inbox(session, member.id, MessageKind.TIER_CHANGED)
    assert [m.params for m in told] == [
        {"tier": "Gold", "plan": tiered.name, "up": True},
        {"tier": "Classic", "plan": tiered.name, "up": False}]


def test_a_recalculation_tells_only_members_whose_tier_moved(session, tiered, member,
                                                            other_member, owner):
    tiers.release(session, tiered.id, operator_id=owner.id)
    with transaction(session):
        session.query(TierSettings).update({"on_change": "none"})
    add_experience(session, member, owner, 150, "a")
    assert tiers.recalculate(session, tiered.id, mode="rule") == 2   # both renewed
    told = _inbox(session, kind=MessageKind.TIER_CHANGED)
    assert [(m.member_id, m.params["tier"]) for m in told] == [(member.id, "Silver")]
