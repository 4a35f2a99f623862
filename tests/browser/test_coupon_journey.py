"""Claim link as a visitor → register → coupon in the wallet → shown at the till →
redeemed through the API → under Used."""
from __future__ import annotations

import secrets

from portal.api import services as api_clients
from portal.coupons.models import ClaimLink
from portal.db import db
from tests.factories import CouponTemplateFactory
from tests.fixtures import last_code


def test_claim_register_show_at_till_redeem(phone, app, page, store):
    template = CouponTemplateFactory(title="Welcome latte", kind="gift", gift_item="Latte",
                                     amount_minor=None)
    link = ClaimLink(token=secrets.token_urlsafe(8), template_id=template.id,
                     registration_page_id=page.id)
    db.session.add(link)
    db.session.commit()
    _client, key = api_clients.create_client(db.session, name="Till", store_code=store.code,
                                             channel="POS")

    phone.goto(f"/c/{link.token}")
    phone.wait_for_url(f"**/r/{page.slug}")
    phone.get_by_label("Mobile number").fill("13912347070")
    phone.get_by_label("Full name").fill("Visitor Vee")
    phone.get_by_role("button", name="Join and get my card").click()
    phone.wait_for_url("**/verify")
    phone.get_by_label("6-digit code").fill(last_code("+8613912347070"))
    phone.get_by_role("button", name="Continue").click()
    phone.wait_for_url(f"**/c/{link.token}")
    phone.get_by_role("button", name="Claim").click()
    phone.wait_for_url("**/wallet/*")
    assert phone.locator("svg.qr").is_visible() and phone.locator("svg.barcode").is_visible()
    code = phone.locator(".coupon-page__code").inner_text().strip()

    phone.goto("/wallet")
    assert "Welcome latte" in phone.locator(".tickets").inner_text()

    api = app.test_client()
    r = api.post("/api/v1/coupons/redeem", headers={"Authorization": f"Bearer {key}"},
                 json={"code": code, "store_code": store.code, "channel": "POS",
                       "order_external_id": "T-1001", "lines": [{"amount": 3200}]})
    assert r.status_code == 201, r.json

    phone.goto("/wallet")
    assert phone.locator(".tickets li").count() == 0
    phone.get_by_role("link", name="Used").click()
    phone.locator(".ticket--spent").wait_for()
    assert "Welcome latte" in phone.locator(".tickets").inner_text()
    assert phone.url.endswith("tab=used")  # htmx pushed the tab into the address
    assert phone.console.errors == []
