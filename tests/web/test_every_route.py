"""Every GET route renders as a whole page, and as a fragment (no <html>) for HTMX."""
from __future__ import annotations

import pytest

from portal.db import db
from tests.fixtures import sign_in_as

PUBLIC = ["/", "/sign-in", "/admin/sign-in", "/r/{slug}"]
MEMBER = ["/card", "/cards/{card_id}", "/me", "/me/edit", "/me/mobile", "/wallet",
          "/wallet?tab=used", "/inbox", "/points", "/activities/PROFILE"]
STAFF = ["/admin/", "/admin/members", "/admin/members/new", "/admin/members/{member_id}",
         "/admin/coupons", "/admin/coupons/new", "/admin/coupon-packages",
         "/admin/api-clients", "/admin/loyalty", "/admin/loyalty/{plan_id}",
         "/admin/loyalty/{plan_id}/tiers", "/admin/loyalty/alarm",
         "/admin/loyalty/events",
         "/admin/attributes", "/admin/messages",
         "/admin/segments", "/admin/segments/new", "/admin/segments/{segment_id}",
         "/admin/activities", "/admin/activities/new/profile_completion",
         "/admin/activities/new/reengagement", "/admin/activities/{activity_id}",
         "/admin/activities/{activity_id}/performance",
         "/admin/pages", "/admin/pages/new", "/admin/pages/{page_id}", "/admin/audit",
         "/admin/links/{link_id}"]


@pytest.fixture
def ids(member, link):
    from datetime import timedelta

    from portal import clock
    from portal.campaigns.models import Activity

    activity = Activity(kind="profile_completion", name="Profile", code="PROFILE",
                        starts_at=clock.now() - timedelta(days=1),
                        ends_at=clock.now() + timedelta(days=1), status="active",
                        required_fields=["full_name"], points=10)
    db.session.add(activity)
    db.session.commit()
    card = db.session.merge(member).cards[0]
    from portal.members.models import Segment

    segment = Segment(name="On the plan", match="all",
                      rules=[{"field": "plan", "op": "in", "value": [card.plan_id]}])
    db.session.add(segment)
    db.session.commit()
    return {"slug": link.page.slug, "card_id": card.id, "member_id": member.id,
            "page_id": link.page_id, "link_id": link.id, "plan_id": card.plan_id,
            "segment_id": segment.id, "activity_id": activity.id}


def _check(client, url):
    full = client.get(url)
    assert full.status_code == 200, url
    assert "<html" in full.get_data(as_text=True)
    fragment = client.get(url, headers={"HX-Request": "true"})
    assert fragment.status_code == 200, url
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and body.strip(), url
    assert "HX-Request" in fragment.headers.get("Vary", "")


@pytest.mark.parametrize("path", PUBLIC)
def test_public_pages(client, ids, path):
    _check(client, path.format(**ids))


@pytest.mark.parametrize("path", MEMBER)
def test_member_pages(client, member, ids, path):
    sign_in_as(client, member)
    _check(client, path.format(**ids))


@pytest.mark.parametrize("path", STAFF)
def test_staff_pages(client, owner, ids, path):
    sign_in_as(client, owner)
    _check(client, path.format(**ids))


def test_boosted_navigation_gets_the_whole_page(owner_client, ids):
    r = owner_client.get("/admin/members", headers={"HX-Request": "true",
                                                    "HX-Boosted": "true"})
    assert "<html" in r.get_data(as_text=True)


def test_printable_qr_page(owner_client, ids):
    assert "<svg" in owner_client.get(f"/admin/links/{ids['link_id']}/print") \
        .get_data(as_text=True)


def test_verify_pages_need_a_pending_code(client, member_client):
    assert client.get("/verify").status_code == 303
    assert member_client.get("/me/mobile/verify").status_code == 303
