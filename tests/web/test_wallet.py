"""The coupon wallet, one coupon, claim links and the inbox over HTTP."""
from __future__ import annotations

import secrets
from datetime import timedelta

import pytest

from portal import clock
from portal.coupons import services as coupons
from portal.coupons.models import ClaimLink, Coupon
from portal.db import db
from portal.members.models import Member
from tests.factories import CouponTemplateFactory
from tests.fixtures import count_queries, last_code, sign_in_as


def _give(member, template, key="k", quantity=1):
    return coupons.issue(db.session, member_id=member.id, template_id=template.id,
                         quantity=quantity, source=coupons.Source("test"), key=key)


@pytest.fixture
def template():
    return CouponTemplateFactory(title="Free refill", kind="gift", gift_item="Free refill",
                                 amount_minor=None, min_spend_minor=2000,
                                 instructions="Show at the till.")


def test_wallet_tabs_count_and_list_coupons(member_client, member, template):
    _give(member, template, quantity=2)
    body = member_client.get("/wallet").get_data(as_text=True)
    assert body.count('class="ticket ') == 2 and "Free refill" in body
    assert "With a spend of ¥20.00 or more" in body
    used = member_client.get("/wallet?tab=used").get_data(as_text=True)
    assert 'class="ticket ' not in used


def test_wallet_tab_switch_returns_only_the_coupons_block(member_client, member, template):
    _give(member, template)
    r = member_client.get("/wallet?tab=expired", headers={"HX-Request": "true",
                                                          "HX-Target": "coupons"})
    body = r.get_data(as_text=True)
    assert body.startswith('\n<div id="coupons">') or body.lstrip().startswith(
        '<div id="coupons">')
    assert "<html" not in body


def test_expiring_soon_badge(member_client, member):
    _give(member, CouponTemplateFactory(valid_days=2))
    assert "Expires in" in member_client.get("/wallet").get_data(as_text=True)


def test_coupon_page_shows_qr_and_barcode_of_the_code(member_client, member, template):
    (coupon,) = _give(member, template)
    body = member_client.get(f"/wallet/{coupon.id}").get_data(as_text=True)
    assert 'class="qr"' in body and 'class="barcode"' in body
    assert coupon.grouped_code in body and "Show at the till." in body


def test_expired_coupon_shows_no_code(member_client, member, template):
    (coupon,) = _give(member, template)
    clock.freeze(clock.now() + timedelta(days=40))
    body = member_client.get(f"/wallet/{coupon.id}").get_data(as_text=True)
    assert "expired" in body and 'class="qr"' not in body


def test_another_members_coupon_is_404(client, member, other_member, template):
    (coupon,) = _give(other_member, template)
    sign_in_as(client, member)
    assert client.get(f"/wallet/{coupon.id}").status_code == 404


def test_card_page_counts_available_coupons(member_client, member, template):
    _give(member, template, quantity=3)
    body = member_client.get("/card").get_data(as_text=True)
    assert '<span class="stat__value">3</span>' in body


def test_inbox_shows_the_coupon_message_and_reads_it(member_client, member, template):
    _give(member, template)
    assert 'class="badge"' in member_client.get("/card").get_data(as_text=True)
    body = member_client.get("/inbox").get_data(as_text=True)
    assert "New coupon in your wallet" in body
    assert 'class="badge"' not in member_client.get("/card").get_data(as_text=True)


def _claim_link(template, page=None):
    link = ClaimLink(token=secrets.token_urlsafe(8), template_id=template.id,
                     registration_page_id=page.id if page else None)
    db.session.add(link)
    db.session.commit()
    return link


def test_member_claims_in_one_tap_once(member_client, member):
    link = _claim_link(CouponTemplateFactory())
    assert member_client.get(f"/c/{link.token}").status_code == 200
    r = member_client.post(f"/c/{link.token}")
    assert r.status_code == 303 and "/wallet/" in r.headers["Location"]
    member_client.post(f"/c/{link.token}")
    assert db.session.query(Coupon).count() == 1


def test_claim_refusal_is_shown_in_place(member_client, member):
    link = _claim_link(CouponTemplateFactory(inventory_total=0, inventory_left=0))
    r = member_client.post(f"/c/{link.token}", headers={"HX-Request": "true",
                                                        "HX-Target": "result"})
    assert r.status_code == 409 and "all gone" in r.get_data(as_text=True)


def test_visitor_signs_up_then_comes_straight_back_to_claim(client, page):
    link = _claim_link(CouponTemplateFactory(), page)
    r = client.get(f"/c/{link.token}")
    assert r.headers["Location"].endswith(f"/r/{page.slug}")
    client.post(f"/r/{page.slug}", data={"mobile": "13912346666", "full_name": "New"})
    r = client.post("/verify", data={"code": last_code("+8613912346666")})
    assert r.headers["Location"].endswith(f"/c/{link.token}")
    client.post(f"/c/{link.token}")
    member = db.session.query(Member).filter_by(mobile="+8613912346666").one()
    assert db.session.query(Coupon).filter_by(member_id=member.id).count() == 1


def test_unknown_claim_link_is_404(client):
    assert client.get("/c/nope").status_code == 404


def test_wallet_query_count_does_not_grow_with_coupons(member_client, member):
    _give(member, CouponTemplateFactory(), key="a", quantity=2)
    few = count_queries(member_client, "/wallet")
    for i in range(4):
        _give(member, CouponTemplateFactory(), key=f"b{i}", quantity=10)
    assert count_queries(member_client, "/wallet") == few


def test_coupon_dates_are_the_merchants_days(member_client, member):
    from datetime import date

    clock.freeze(clock.start_of_local_day(date(2026, 4, 20)) + timedelta(hours=10))
    t = CouponTemplateFactory(validity_kind="fixed", valid_from_on=date(2026, 5, 1),
                              valid_until_on=date(2026, 5, 10))
    (coupon,) = _give(member, t)
    body = member_client.get(f"/wallet/{coupon.id}").get_data(as_text=True)
    assert "May 1, 2026 – May 10, 2026" in body


def test_turned_off_claim_link_says_so_at_once(client, member):
    link = _claim_link(CouponTemplateFactory())
    link.is_active = False
    db.session.commit()
    r = client.get(f"/c/{link.token}")
    assert r.status_code == 410 and "not available" in r.get_data(as_text=True)
    assert 'type="submit">Claim' not in r.get_data(as_text=True)


def test_a_paused_coupon_shows_no_code(member_client, member, template):
    (coupon,) = _give(member, template)
    template.status = "inactive"
    db.session.commit()
    body = member_client.get(f"/wallet/{coupon.id}").get_data(as_text=True)
    assert "paused" in body and 'class="qr"' not in body
    assert "Paused by the shop" in member_client.get("/wallet").get_data(as_text=True)
