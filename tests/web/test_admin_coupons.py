"""Coupons in the merchant area over HTTP."""
from __future__ import annotations

import io
import re

import pytest

from portal.coupons import services as coupons
from portal.coupons.models import ClaimLink, Coupon, CouponPackage, CouponTemplate
from portal.db import db
from portal.staff.models import AuditEntry
from tests.factories import CouponTemplateFactory
from tests.fixtures import sign_in_as

BASE = {"kind": "cash", "internal_name": "Spring ¥10", "title": "¥10 off", "subtitle": "",
        "theme": "teal", "amount": "10", "percent": "", "cap": "", "gift_item": "",
        "min_spend": "50", "validity_kind": "relative", "starts_after_days": "0",
        "valid_days": "30", "valid_from_on": "", "valid_until_on": "",
        "inventory_total": "100", "per_member_limit": "2", "product_ids": "",
        "extra_fields": "", "instructions": "", "online_url": "", "external_id": "",
        "channels": ["POS", "ONLINE"]}


def _create(client, **changes):
    return client.post("/admin/coupons/new", data={**BASE, **changes})


def test_create_a_cash_voucher_as_a_draft(owner_client, owner):
    r = _create(owner_client, product_ids="SKU-1, SKU-2\nSKU-3",
                extra_fields="channel = POS\nbrand = Harbour")
    assert r.status_code == 303
    t = db.session.query(CouponTemplate).one()
    assert (t.amount_minor, t.min_spend_minor, t.inventory_left, t.status) == \
        (1000, 5000, 100, "draft")
    assert t.product_ids == ["SKU-1", "SKU-2", "SKU-3"]
    assert t.extra_fields == {"channel": "POS", "brand": "Harbour"}
    assert db.session.query(AuditEntry).filter_by(action="coupon_template.create",
                                                  staff_id=owner.id).count() == 1


def test_products_can_be_uploaded(owner_client):
    data = {**BASE, "products_file": (io.BytesIO(b"A1\nA2\n"), "skus.csv")}
    r = owner_client.post("/admin/coupons/new", data=data,
                          content_type="multipart/form-data")
    assert r.status_code == 303
    assert db.session.query(CouponTemplate).one().product_ids == ["A1", "A2"]


@pytest.mark.parametrize("changes,field", [
    ({"kind": "discount", "percent": "120"}, "percent"),
    ({"kind": "discount", "percent": "abc"}, "percent"),
    ({"amount": "0"}, "amount"),
    ({"amount": "1.234"}, "amount"),
    ({"validity_kind": "fixed", "valid_from_on": "2026-05-10",
      "valid_until_on": "2026-05-01"}, "valid_until_on"),
    ({"inventory_total": "10000000000"}, "inventory_total"),
    ({"per_member_limit": "0"}, "per_member_limit"),
    ({"product_ids": "x" * 65}, "product_ids"),
    ({"extra_fields": "no equals sign"}, "extra_fields"),
    ({"kind": "gift"}, "gift_item"),
    ({"online_url": "http://shop.example.com"}, "online_url"),
])
def test_bad_settings_are_refused_by_field(owner_client, changes, field):
    r = _create(owner_client, **changes)
    assert r.status_code == 422, field
    assert f'id="{field}-error"' in r.get_data(as_text=True)
    assert db.session.query(CouponTemplate).count() == 0


def test_terms_are_locked_once_coupons_are_issued(owner_client, member):
    t = CouponTemplateFactory(inventory_total=10, inventory_left=10)
    coupons.issue(db.session, member_id=member.id, template_id=t.id, quantity=3,
                  source=coupons.Source("test"), key="k")
    r = owner_client.post(f"/admin/coupons/{t.id}", data={
        **BASE, "amount": "20", "min_spend": "", "inventory_total": "10"})
    body = r.get_data(as_text=True)
    assert r.status_code == 422 and 'id="amount-error"' in body
    r = owner_client.post(f"/admin/coupons/{t.id}", data={
        **BASE, "min_spend": "", "inventory_total": "2", "per_member_limit": ""})
    assert r.status_code == 422 and 'id="inventory_total-error"' in r.get_data(as_text=True)
    r = owner_client.post(f"/admin/coupons/{t.id}", data={
        **BASE, "min_spend": "", "inventory_total": "50", "title": "New title",
        "per_member_limit": ""})
    assert r.status_code == 303
    db.session.expire_all()
    t = db.session.get(CouponTemplate, t.id)
    assert (t.title, t.inventory_total, t.inventory_left, t.amount_minor) == \
        ("New title", 50, 47, 1000)


def test_activate_then_stats_show_issued_and_rate(owner_client, member):
    t = CouponTemplateFactory(status="draft", internal_name="Refill")
    owner_client.post(f"/admin/coupons/{t.id}/status", data={"status": "active"})
    db.session.expire_all()
    issued = coupons.issue(db.session, member_id=member.id, template_id=t.id, quantity=4,
                           source=coupons.Source("test"), key="k")
    db.session.query(Coupon).filter_by(id=issued[0].id).update({"status": "used"})
    db.session.commit()
    body = owner_client.get("/admin/coupons").get_data(as_text=True)
    assert "Refill" in body and "25.0%" in body


def test_package_of_active_coupons(owner_client):
    a, b = CouponTemplateFactory(), CouponTemplateFactory()
    r = owner_client.post("/admin/coupon-packages", data={
        "name": "Welcome", f"qty-{a.id}": "2", f"qty-{b.id}": "1"})
    assert r.status_code == 303
    package = db.session.query(CouponPackage).one()
    assert sorted((i.template_id, i.quantity) for i in package.items) == [(a.id, 2), (b.id, 1)]


def test_empty_package_is_refused(owner_client):
    CouponTemplateFactory()
    r = owner_client.post("/admin/coupon-packages", data={"name": "Empty"})
    assert r.status_code == 422 and db.session.query(CouponPackage).count() == 0


def test_quick_issue_from_the_member_page_once_per_form(client, clerk, member):
    t = CouponTemplateFactory(title="Birthday cake")
    sign_in_as(client, clerk)
    page = client.get(f"/admin/members/{member.id}").get_data(as_text=True)
    nonce = re.search(r'name="nonce" type="hidden" value="([^"]+)"', page) or \
        re.search(r'id="nonce" name="nonce" type="hidden" value="([^"]+)"', page)
    data = {"offer": f"t:{t.id}", "quantity": "1", "reason": "Apology for a late order",
            "nonce": nonce.group(1)}
    client.post(f"/admin/members/{member.id}/coupons", data=data)
    client.post(f"/admin/members/{member.id}/coupons", data=data)  # a double click
    assert db.session.query(Coupon).count() == 1
    entry = db.session.query(AuditEntry).filter_by(action="coupon.issue").one()
    assert entry.staff_id == clerk.id and entry.after["reason"] == "Apology for a late order"
    assert "Birthday cake" in client.get(f"/admin/members/{member.id}").get_data(as_text=True)


def test_quick_issue_needs_a_reason(owner_client, member):
    t = CouponTemplateFactory()
    owner_client.post(f"/admin/members/{member.id}/coupons",
                      data={"offer": f"t:{t.id}", "quantity": "1", "reason": "", "nonce": "n"})
    assert db.session.query(Coupon).count() == 0


def test_claim_link_with_a_printable_qr(owner_client, page):
    t = CouponTemplateFactory()
    owner_client.post(f"/admin/coupons/{t.id}/claim-links",
                      data={"registration_page_id": page.id})
    link = db.session.query(ClaimLink).one()
    assert link.registration_page_id == page.id
    body = owner_client.get(f"/admin/claim-links/{link.id}/print").get_data(as_text=True)
    assert f"/c/{link.token}" in body and 'class="qr"' in body


@pytest.mark.parametrize("url", ["/admin/coupons", "/admin/coupons/new",
                                 "/admin/coupon-packages"])
def test_clerks_cannot_configure_coupons(client, clerk, url):
    sign_in_as(client, clerk)
    assert client.get(url).status_code == 403


def test_a_coupon_for_the_till_only(owner_client):
    assert _create(owner_client, channels=["POS"]).status_code == 303
    assert db.session.query(CouponTemplate).one().channels == ["POS"]


def test_a_coupon_must_be_usable_somewhere(owner_client):
    r = owner_client.post("/admin/coupons/new", data={
        k: v for k, v in BASE.items() if k != "channels"})
    assert r.status_code == 422 and "Choose where it can be used." in r.get_data(as_text=True)
    assert db.session.query(CouponTemplate).count() == 0


def _kind_radios(body: str) -> list[str]:
    return re.findall(r'<input[^>]*name="kind"[^>]*type="radio"[^>]*>', body)


def test_the_type_can_be_chosen_until_coupons_are_issued(owner_client, member):
    new = _kind_radios(owner_client.get("/admin/coupons/new").get_data(as_text=True))
    assert len(new) == 3 and not any("disabled" in r for r in new)
    t = CouponTemplateFactory()
    unused = _kind_radios(owner_client.get(f"/admin/coupons/{t.id}").get_data(as_text=True))
    assert not any("disabled" in r for r in unused)
    coupons.issue(db.session, member_id=member.id, template_id=t.id,
                  source=coupons.Source("test"), key="k")
    issued = _kind_radios(owner_client.get(f"/admin/coupons/{t.id}").get_data(as_text=True))
    assert len(issued) == 3 and all("disabled" in r for r in issued)
