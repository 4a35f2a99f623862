"""The member's profile completion journey over HTTP."""
from __future__ import annotations

from datetime import timedelta

import pytest

from portal import clock
from portal.campaigns.models import Activity, ActivityGift, Participation
from portal.coupons.models import Coupon
from portal.db import db
from tests.factories import CouponTemplateFactory


@pytest.fixture
def activity(plan):
    t = CouponTemplateFactory(title="Welcome latte")
    a = Activity(kind="profile_completion", name="Complete your profile", code="PROFILE",
                 starts_at=clock.now() - timedelta(days=1),
                 ends_at=clock.now() + timedelta(days=30), status="active",
                 required_fields=["full_name", "born_on"], points=30,
                 gifts=[ActivityGift(template_id=t.id, quantity=1),
                        ActivityGift(template_id=t.id, quantity=1, delay="days",
                                     delay_amount=1)])
    db.session.add(a)
    db.session.commit()
    return a


def test_fill_missing_then_claim_once(member_client, member, activity):
    m = db.session.merge(member)
    m.born_on = None
    db.session.commit()
    page = member_client.get("/activities/PROFILE").get_data(as_text=True)
    assert "Welcome latte" in page and 'name="born_on"' in page and "Claim my gift" not in page
    r = member_client.post("/activities/PROFILE/profile", data={"born_on": "2999-01-01"})
    assert r.status_code == 422 and 'id="born_on-error"' in r.get_data(as_text=True)
    member_client.post("/activities/PROFILE/profile", data={"born_on": "1990-04-02"})
    page = member_client.get("/activities/PROFILE").get_data(as_text=True)
    assert "Claim my gift" in page
    assert member_client.post("/activities/PROFILE/claim").status_code == 303
    assert member_client.post("/activities/PROFILE/claim").status_code == 409
    assert db.session.query(Participation).count() == 1
    assert db.session.query(Coupon).count() == 1
    page = member_client.get("/activities/PROFILE").get_data(as_text=True)
    assert "in your wallet" in page and "arrives" in page


def test_a_paused_activity_says_so(member_client, activity):
    activity.status = "paused"
    db.session.commit()
    page = member_client.get("/activities/PROFILE").get_data(as_text=True)
    assert "not running" in page and "Claim my gift" not in page


def test_unknown_activity_is_404(member_client):
    assert member_client.get("/activities/NOPE").status_code == 404
