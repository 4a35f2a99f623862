"""Activities in the merchant area over HTTP: create both kinds, bad input, the edit
policy once running, pause / resume / archive, the filtered list and performance."""
from __future__ import annotations

from datetime import timedelta

import pytest

from portal import clock
from portal.campaigns import services as campaigns
from portal.campaigns.models import Activity, ActivityGift
from portal.db import db
from portal.staff.models import AuditEntry
from tests.factories import CouponTemplateFactory
from tests.fixtures import count_queries, sign_in_as


def _local(delta: timedelta) -> str:
    return clock.local(clock.now() + delta).strftime("%Y-%m-%dT%H:%M")


@pytest.fixture
def coupon():
    return CouponTemplateFactory(title="Welcome latte")


def _profile(coupon, **changes):
    data = {"name": "Complete your profile", "code": "PROFILE-1",
            "starts_at": _local(timedelta(days=-1)), "ends_at": _local(timedelta(days=30)),
            "description": "Fill in and claim.", "required_fields": ["full_name", "born_on"],
            "points": "20", "notify": "y", "action": "save",
            "gift-0-offer": f"t:{coupon.id}", "gift-0-quantity": "1",
            "gift-0-delay": "instant", "gift-0-validity": "template",
            "gift-1-offer": f"t:{coupon.id}", "gift-1-quantity": "2",
            "gift-1-delay": "days", "gift-1-delay_amount": "3",
            "gift-1-validity": "relative", "gift-1-valid_days": "7"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_create_a_profile_completion_gift_as_a_draft(owner_client, owner, coupon):
    r = owner_client.post("/admin/activities/new/profile_completion", data=_profile(coupon))
    assert r.status_code == 303
    a = db.session.query(Activity).one()
    assert (a.status, a.required_fields, a.points, a.notify) == \
        ("draft", ["full_name", "born_on"], 20, True)
    assert [(g.quantity, g.delay, g.delay_amount, g.validity, g.valid_days)
            for g in a.gifts] == [(1, "instant", 0, "template", None),
                                  (2, "days", 3, "relative", 7)]
    assert db.session.query(AuditEntry).filter_by(action="activity.create",
                                                  staff_id=owner.id).count() == 1
    page = owner_client.get(f"/admin/activities/{a.id}").get_data(as_text=True)
    assert "Complete your profile" in page and "/activities/PROFILE-1" in page


def test_save_and_launch_makes_it_active(owner_client, coupon):
    r = owner_client.post("/admin/activities/new/profile_completion",
                          data=_profile(coupon, action="launch"))
    assert r.status_code == 303
    assert db.session.query(Activity).one().state() == "active"


def test_a_fixed_window_is_whole_local_days(owner_client, coupon):
    owner_client.post("/admin/activities/new/profile_completion", data=_profile(
        coupon, **{"gift-1-validity": "fixed", "gift-1-valid_from": "2026-03-01",
                   "gift-1-valid_until": "2026-03-31"}))
    gift = db.session.query(ActivityGift).order_by(ActivityGift.id.desc()).first()
    assert clock.local(gift.valid_from).strftime("%Y-%m-%d %H:%M") == "2026-03-01 00:00"
    assert clock.local(gift.valid_until).strftime("%Y-%m-%d %H:%M") == "2026-04-01 00:00"


@pytest.mark.parametrize("changes,field_id", [
    ({"name": ""}, "name"),
    ({"required_fields": None}, "required_fields"),
    ({"ends_at": _local(timedelta(days=-2))}, "ends_at"),
    ({"starts_at": "tomorrow"}, "starts_at"),
    ({"code": "has space"}, "code"),
    ({"gift-1-delay_amount": "0"}, "gift-1-delay_amount"),
    ({"gift-1-delay_amount": "-3"}, "gift-1-delay_amount"),
    ({"gift-0-quantity": "0"}, "gift-0-quantity"),
    ({"gift-1-validity": "fixed", "gift-1-valid_from": "2026-05-10",
      "gift-1-valid_until": "2026-05-01"}, "gift-1-valid_until"),
])
def test_bad_input_is_refused_next_to_the_field(owner_client, coupon, changes, field_id):
    r = owner_client.post("/admin/activities/new/profile_completion",
                          data=_profile(coupon, **changes))
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    assert f'id="{field_id}' in page and "field-error" in page
    assert db.session.query(Activity).count() == 0


def test_no_gift_at_all_is_refused(owner_client, coupon):
    r = owner_client.post("/admin/activities/new/profile_completion", data=_profile(
        coupon, points="0", **{"gift-0-offer": "", "gift-1-offer": ""}))
    assert r.status_code == 422 and "Choose a gift" in r.get_data(as_text=True)
    assert db.session.query(Activity).count() == 0


def test_a_code_already_used_is_refused(owner_client, coupon):
    owner_client.post("/admin/activities/new/profile_completion", data=_profile(coupon))
    r = owner_client.post("/admin/activities/new/profile_completion",
                          data=_profile(coupon, code="profile-1"))
    assert r.status_code == 422 and "used by another activity" in r.get_data(as_text=True)
    assert db.session.query(Activity).count() == 1


def test_an_inactive_coupon_cannot_be_a_gift(owner_client):
    draft = CouponTemplateFactory(title="Not yet", status="draft")
    r = owner_client.post("/admin/activities/new/profile_completion",
                          data=_profile(draft))
    assert r.status_code == 422 and "is not available" in r.get_data(as_text=True)
    assert db.session.query(Activity).count() == 0


def _reengagement(coupon, **changes):
    data = {"name": "We miss you", "code": "BACK-30", "starts_at": _local(timedelta(days=-1)),
            "ends_at": _local(timedelta(days=60)), "lapse_days": "30", "notify": "y",
            "action": "launch", "gift-0-offer": f"t:{coupon.id}", "gift-0-quantity": "1",
            "gift-0-delay": "instant", "gift-0-validity": "template"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_create_a_re_engagement_gift_with_an_audience(owner_client, coupon, plan):
    r = owner_client.post("/admin/activities/new/reengagement",
                          data=_reengagement(coupon, plan_ids=[str(plan.id)]))
    assert r.status_code == 303
    a = db.session.query(Activity).one()
    assert (a.kind, a.lapse_days, a.plan_ids, a.points, a.required_fields) == \
        ("reengagement", 30, [plan.id], 0, [])


@pytest.mark.parametrize("changes,message", [
    ({"lapse_days": ""}, "days since the last purchase"),
    ({"lapse_days": "0"}, "days since the last purchase"),
    ({"gift-0-offer": ""}, "at least one coupon"),
])
def test_re_engagement_bad_input(owner_client, coupon, changes, message):
    r = owner_client.post("/admin/activities/new/reengagement",
                          data=_reengagement(coupon, **changes))
    assert r.status_code == 422 and message in r.get_data(as_text=True)
    assert db.session.query(Activity).count() == 0


def _launched(owner_client, coupon) -> Activity:
    owner_client.post("/admin/activities/new/profile_completion",
                      data=_profile(coupon, action="launch"))
    return db.session.query(Activity).one()


def test_once_started_only_name_description_and_a_later_end_may_change(owner_client, coupon):
    a = _launched(owner_client, coupon)
    r = owner_client.post(f"/admin/activities/{a.id}", data=_profile(
        coupon, name="Complete it", ends_at=_local(timedelta(days=40))))
    assert r.status_code == 303
    db.session.expire_all()
    assert db.session.get(Activity, a.id).name == "Complete it"
    r = owner_client.post(f"/admin/activities/{a.id}", data=_profile(
        coupon, name="Complete it", points="500"))
    assert r.status_code == 422 and "cannot change once the activity has started" in \
        r.get_data(as_text=True)
    r = owner_client.post(f"/admin/activities/{a.id}", data=_profile(
        coupon, name="Complete it", **{"gift-0-quantity": "5"}))
    assert r.status_code == 422
    db.session.expire_all()
    assert db.session.get(Activity, a.id).points == 20
    assert db.session.get(Activity, a.id).gifts[0].quantity == 1


def test_the_locked_form_resubmits_as_it_is(owner_client, coupon):
    """What the page shows for a running activity saves without tripping the policy."""
    import re

    a = _launched(owner_client, coupon)
    page = owner_client.get(f"/admin/activities/{a.id}").get_data(as_text=True)
    assert "the rest is locked" in page
    hidden = dict(re.findall(r'<input type="hidden" name="(gift-0-[a-z_]+)" value="([^"]*)"',
                             page))
    assert hidden["gift-0-offer"] == f"t:{coupon.id}" and hidden["gift-0-quantity"] == "1"


def test_pause_resume_archive(owner_client, owner, coupon, member):
    a = _launched(owner_client, coupon)
    owner_client.post(f"/admin/activities/{a.id}/status", data={"action": "pause"})
    db.session.expire_all()
    assert db.session.get(Activity, a.id).state() == "paused"
    assert campaigns.eligibility(db.session, db.session.get(Activity, a.id),
                                 db.session.merge(member)).reason == "not_running"
    owner_client.post(f"/admin/activities/{a.id}/status", data={"action": "resume"})
    owner_client.post(f"/admin/activities/{a.id}/status", data={"action": "archive"})
    db.session.expire_all()
    assert db.session.get(Activity, a.id).status == "archived"
    r = owner_client.post(f"/admin/activities/{a.id}/status", data={"action": "resume"},
                          follow_redirects=True)
    assert "cannot do that now" in r.get_data(as_text=True)
    assert [e.action for e in db.session.query(AuditEntry).filter(
        AuditEntry.action.like("activity.%"), AuditEntry.staff_id == owner.id)
        .order_by(AuditEntry.id)] == ["activity.create", "activity.pause", "activity.resume",
                                      "activity.archive"]


def test_the_list_filters_by_type_and_status(owner_client, coupon):
    _launched(owner_client, coupon)
    owner_client.post("/admin/activities/new/reengagement",
                      data=_reengagement(coupon, action="save"))
    page = owner_client.get("/admin/activities").get_data(as_text=True)
    assert "Complete your profile" in page and "We miss you" in page
    page = owner_client.get("/admin/activities?kind=reengagement").get_data(as_text=True)
    assert "Complete your profile" not in page and "We miss you" in page
    r = owner_client.get("/admin/activities?state=active", headers={
        "HX-Request": "true", "HX-Target": "results"})
    fragment = r.get_data(as_text=True)
    assert fragment.startswith('<div id="results"') or fragment.lstrip().startswith(
        '<div id="results"')
    assert "Complete your profile" in fragment and "We miss you" not in fragment


def test_the_list_does_not_grow_queries_with_rows(owner_client, coupon):
    _launched(owner_client, coupon)
    few = count_queries(owner_client, "/admin/activities")
    for i in range(5):
        owner_client.post("/admin/activities/new/profile_completion",
                          data=_profile(coupon, code=f"MORE-{i}"))
    assert count_queries(owner_client, "/admin/activities") == few


def test_performance_counts_participants_gifts_and_revenue(owner_client, coupon, member):
    a = _launched(owner_client, coupon)
    m = db.session.merge(member)
    m.full_name, m.born_on = "Ada Lin", clock.today().replace(year=1990)
    db.session.commit()
    campaigns.claim(db.session, a.id, member.id)
    page = owner_client.get(f"/admin/activities/{a.id}/performance").get_data(as_text=True)
    assert "Participants" in page and ">1<" in page.replace(" ", "")


def test_clerks_cannot_manage_activities(client, clerk):
    sign_in_as(client, clerk)
    assert client.get("/admin/activities").status_code == 403
    assert client.get("/admin/activities/new/reengagement").status_code == 403


def test_a_running_activity_can_be_renamed_after_its_coupon_was_deactivated(owner_client,
                                                                           coupon):
    a = _launched(owner_client, coupon)
    coupon = db.session.merge(coupon)
    coupon.status = "inactive"
    db.session.commit()
    r = owner_client.post(f"/admin/activities/{a.id}", data=_profile(coupon, name="Renamed"))
    assert r.status_code == 303
    db.session.expire_all()
    assert db.session.get(Activity, a.id).name == "Renamed"


def test_revenue_counts_orders_since_taking_part_less_refunds(owner_client, coupon, member,
                                                              store):
    from portal.campaigns import manage
    from portal.loyalty.models import Order, OrderRefund

    a = _launched(owner_client, coupon)
    m = db.session.merge(member)
    m.full_name, m.born_on = "Ada Lin", clock.today().replace(year=1990)
    db.session.commit()

    def order(ref: str, when, total: int) -> Order:
        o = Order(store_id=store.id, external_id=ref, member_id=member.id, channel="POS",
                  occurred_at=when, currency="CNY", total_minor=total, earn_base_minor=total)
        db.session.add(o)
        return o

    order("before", clock.now() - timedelta(hours=1), 9900)
    clock.freeze(clock.now() + timedelta(minutes=5))
    campaigns.claim(db.session, a.id, member.id)
    after = order("after", clock.now() + timedelta(hours=1), 5000)
    order("later", clock.now() + timedelta(days=2), 2500)
    db.session.flush()
    db.session.add(OrderRefund(order_id=after.id, refund_id="r1", amount_minor=1000))
    db.session.commit()
    figures = manage.performance(db.session, db.session.get(Activity, a.id))
    assert (figures.participants, figures.orders, figures.revenue) == (1, 2, {"CNY": 6500})
    assert (figures.gifts_delivered, figures.coupons_issued, figures.points_given) == (1, 1, 20)


def test_a_package_holding_an_inactive_coupon_cannot_be_a_gift_or_launch(owner_client, coupon):
    from portal.coupons.models import CouponPackage, PackageItem

    old = CouponTemplateFactory(title="Old", status="inactive")
    package = CouponPackage(name="Mixed", items=[PackageItem(template_id=coupon.id, quantity=1),
                                                 PackageItem(template_id=old.id, quantity=1)])
    db.session.add(package)
    db.session.commit()
    r = owner_client.post("/admin/activities/new/profile_completion", data=_profile(
        coupon, **{"gift-0-offer": f"p:{package.id}"}))
    assert r.status_code == 422 and "“Old” is not available" in r.get_data(as_text=True)


def test_saving_keeps_a_gift_whose_coupon_was_deactivated_and_says_so(owner_client, coupon):
    owner_client.post("/admin/activities/new/profile_completion", data=_profile(coupon))
    a = db.session.query(Activity).one()
    coupon = db.session.merge(coupon)
    coupon.status = "inactive"
    db.session.commit()
    page = owner_client.get(f"/admin/activities/{a.id}").get_data(as_text=True)
    assert "Welcome latte (no longer active)" in page
    r = owner_client.post(f"/admin/activities/{a.id}", data=_profile(coupon, name="Renamed"))
    assert r.status_code == 422 and "is not available" in r.get_data(as_text=True)
    r = owner_client.post(f"/admin/activities/{a.id}/status", data={"action": "launch"},
                          follow_redirects=True)
    assert "is not available" in r.get_data(as_text=True)
    db.session.expire_all()
    assert [g.template_id for g in db.session.get(Activity, a.id).gifts] == [coupon.id] * 2
    assert db.session.get(Activity, a.id).status == "draft"


def test_codes_are_unique_whatever_the_case(owner_client, coupon):
    owner_client.post("/admin/activities/new/profile_completion",
                      data=_profile(coupon, code="Spring"))
    assert db.session.query(Activity).one().code == "SPRING"
    r = owner_client.post("/admin/activities/new/profile_completion",
                          data=_profile(coupon, code="spring"))
    assert r.status_code == 422


def test_a_started_activity_with_seconds_in_its_start_can_be_renamed(owner_client, coupon):
    a = _launched(owner_client, coupon)
    a = db.session.get(Activity, a.id)
    a.starts_at = a.starts_at.replace(second=42)
    db.session.commit()
    r = owner_client.post(f"/admin/activities/{a.id}", data=_profile(coupon, name="Renamed"))
    assert r.status_code == 303


def test_the_new_form_opens_on_29_february(owner_client):
    from datetime import UTC, datetime

    clock.freeze(datetime(2028, 2, 29, 4, 0, tzinfo=UTC))
    assert owner_client.get("/admin/activities/new/reengagement").status_code == 200
