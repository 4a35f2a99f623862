"""Every GET route renders as a whole page, and as a fragment (no <html>) for HTMX."""
from __future__ import annotations

import pytest

from portal.db import db
from tests.fixtures import sign_in_as

PUBLIC = ["/", "/sign-in", "/admin/sign-in", "/r/{slug}", "/giftcards", "/giftcards/balance",
          "/giftcards/buy/{giftcard_product_id}", "/giftcards/claim/{giftcard_token}"]
MEMBER = ["/card", "/cards/{card_id}", "/me", "/me/edit", "/me/mobile", "/wallet",
          "/wallet?tab=used", "/inbox", "/points", "/activities/PROFILE", "/balance",
          "/topup", "/topup/{topup_plan_id}?card={card_id}&amount=200", "/pay",
          "/pay?store=HQ01&amount=12.50", "/payments/{payment_token}",
          "/payments/demo/{payment_token}", "/giftcards/mine/{giftcard_id}", "/benefits",
          "/giftcards/sent/{giftcard_payment_token}", "/student", "/me/data", "/me/close"]
STAFF = ["/admin/", "/admin/?days=90", "/admin/?from=2026-01-01&to=2026-01-31",
         "/admin/preview/topup/{topup_plan_id}", "/admin/preview/student",
         "/admin/preview/activity/{activity_id}",
         "/admin/members", "/admin/members/new", "/admin/members/{member_id}",
         "/admin/students", "/admin/students/requests",
         "/admin/students/requests?status=all", "/admin/students/settings",
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
         "/admin/consistency", "/admin/data-requests",
         "/admin/data-requests?kind=closure&status=all&q=a",
         "/admin/data-requests/{data_request_id}",
         "/admin/links/{link_id}", "/admin/topups", "/admin/topups?status=archived",
         "/admin/topups/new/fixed", "/admin/topups/new/range", "/admin/topups/new/custom",
         "/admin/topups/{topup_plan_id}", "/admin/topups/{topup_plan_id}/details",
         "/admin/topups/{topup_plan_id}/codes", "/admin/payments",
         "/admin/payments?status=paid", "/admin/payments/{payment_id}",
         "/admin/smart-topups", "/admin/smart-topups?status=archived",
         "/admin/smart-topups/new", "/admin/smart-topups/{smart_plan_id}",
         "/admin/smart-topups/{smart_plan_id}?bill=100",
         "/admin/giftcards", "/admin/giftcards?status=active", "/admin/giftcards/new",
         "/admin/giftcards/{giftcard_product_id}", "/admin/giftcards/sold",
         "/admin/giftcards/sold?status=active&number=0000&phone=13800138000",
         "/admin/giftcards/sold/{giftcard_id}", "/admin/giftcards/transactions",
         "/admin/giftcards/transactions?kind=activation", "/admin/giftcards/import",
         "/admin/giftcards/exports", "/admin/members/import",
         "/admin/giftcards/sold?status=in_stock", "/admin/benefits/quote",
         "/admin/benefits", "/admin/benefits?q=gold&kind=discount&status=active",
         "/admin/benefits/new",
         "/admin/cards", "/admin/cards?status=frozen&number=1234&q=a", "/admin/cards/{card_id}",
         "/admin/till", "/admin/till?q={card_number}", "/admin/till?q=13800138000",
         "/admin/till/join",
         *[f"/admin/benefits/new/{k}" for k in (
             "marketing", "promotion", "member_price", "discount", "member_day", "birthday",
             "multiplier", "extension", "service", "custom")]]


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
    from portal.wallet.models import TopupPlan

    topup_plan = TopupPlan(kind="range", name="Any amount", currency="CNY", status="active",
                           min_minor=10_000, max_minor=50_000, bonus_bp=1000, points_bp=500)
    db.session.add(topup_plan)
    from portal.wallet.models import SmartPlan, SmartTier

    smart_plan = SmartPlan(name="Short? Top up", currency="CNY", status="active",
                           rounding_minor=10, tiers=[SmartTier(position=1, kind="discount",
                                                               multiplier_bp=12000,
                                                               bonus_bp=800)])
    db.session.add(smart_plan)
    from portal.giftcards.models import GiftCardProduct

    giftcard_product = GiftCardProduct(kind="electronic", name="Gift", currency="CNY",
                                       status="active", denominations=[10_000, 20_000],
                                       channels=["ONLINE"])
    db.session.add(giftcard_product)
    db.session.commit()
    from portal.db import transaction
    from portal.giftcards import cards as giftcards
    from portal.giftcards import purchase

    giftcard = purchase.buy(db.session, purchase.Order(
        product_id=giftcard_product.id, amount_minor=10_000, for_friend=True,
        recipient_name="Ada", recipient_email="ada@example.com"), member_id=member.id)
    with transaction(db.session):
        giftcards.activate(db.session, giftcard, key="route-test")
        giftcard.holder_member_id = member.id
    from portal.payments.models import Payment
    from portal.wallet import topups

    topup = topups.start(db.session, member_id=member.id, card_id=card.id,
                         plan_id=topup_plan.id, amount_minor=20_000)
    topup.payment = db.session.get(Payment, topup.payment_id)
    from portal.rights import services as rights

    closure = rights.request_closure(db.session, member.id, confirmation=member.mobile[-4:])
    return {"data_request_id": closure.id, "slug": link.page.slug, "card_id": card.id,
            "member_id": member.id,
            "card_number": card.number,
            "page_id": link.page_id, "link_id": link.id, "plan_id": card.plan_id,
            "segment_id": segment.id, "activity_id": activity.id,
            "topup_plan_id": topup_plan.id, "payment_token": topup.payment.token,
            "payment_id": topup.payment_id, "smart_plan_id": smart_plan.id,
            "giftcard_product_id": giftcard_product.id, "giftcard_id": giftcard.id,
            "giftcard_token": giftcard.claim_token,
            "giftcard_payment_token": db.session.get(Payment, giftcard.payment_id).token}


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
