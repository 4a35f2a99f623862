"""Benefit management pages: roles, the kind chooser, each kind's form, bad input shown at
the field (422, nothing saved), "add row" without JavaScript, list filters, deactivate."""
from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import func, select

from portal.benefits import manage
from portal.benefits.models import Benefit, BenefitKind
from portal.db import db
from portal.members.models import CardPlan, Tier
from portal.staff.models import AuditEntry
from tests.factories import StaffFactory
from tests.fixtures import count_queries, sign_in_as


@pytest.fixture
def harbour():
    plan = CardPlan(name="Harbour Card", currency="CNY", validity_days=None)
    db.session.add(plan)
    db.session.flush()
    for rank, name in enumerate(("Member", "Silver", "Gold")):
        db.session.add(Tier(plan_id=plan.id, name=name, rank=rank))
    db.session.commit()
    return plan


@pytest.fixture
def manager_client(client, manager):
    sign_in_as(client, manager)
    return client


def _count() -> int:
    return db.session.scalar(select(func.count()).select_from(Benefit))


def _png() -> io.BytesIO:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(out, "PNG")
    out.seek(0)
    return out


def test_clerk_cannot_open_benefits(client, clerk):
    sign_in_as(client, clerk)
    assert client.get("/admin/benefits").status_code == 403
    assert client.get("/admin/benefits/new/discount").status_code == 403


def test_list_and_kind_chooser_for_managers(manager_client, harbour):
    r = manager_client.get("/admin/benefits")
    assert r.status_code == 200 and "No benefits yet" in r.get_data(as_text=True)
    page = manager_client.get("/admin/benefits/new").get_data(as_text=True)
    for kind in BenefitKind:
        assert f"/admin/benefits/new/{kind.value}" in page


def test_unknown_kind_is_404(manager_client):
    assert manager_client.get("/admin/benefits/new/bogus").status_code == 404


def test_form_shows_only_the_kinds_fields(manager_client, harbour):
    page = manager_client.get("/admin/benefits/new/multiplier").get_data(as_text=True)
    assert 'name="multiplier"' in page and 'name="price-0-product"' not in page
    page = manager_client.get("/admin/benefits/new/member_price").get_data(as_text=True)
    assert 'name="price-0-product"' in page and 'name="multiplier"' not in page


def test_create_discount_redirects_and_audits(owner_client, harbour, owner):
    r = owner_client.post("/admin/benefits/new/discount", data={
        "name": "Gold 10% off", "discount": "10", "channels": ["POS", "ONLINE"],
        "restriction_rule": "none", "exclusions_mode": "none",
        "icon": (_png(), "icon.png")}, content_type="multipart/form-data")
    assert r.status_code == 303
    b = db.session.scalar(select(Benefit))
    assert (b.discount_bp, b.operator_id, b.status) == (1000, owner.id, "active")
    assert b.icon
    assert db.session.scalar(select(AuditEntry.action)) == "benefit.create"


def test_member_price_below_zero_shown_at_its_field(manager_client, harbour):
    r = manager_client.post("/admin/benefits/new/member_price", data={
        "name": "", "channels": ["POS"], "restriction_rule": "balance_below_amount",
        "restriction_amount": "-5", "exclusions_mode": "none",
        "price-0-product": "LATTE", "price-0-price": "-1.00"})
    page = r.get_data(as_text=True)
    assert r.status_code == 422 and _count() == 0
    assert "A member price cannot be below zero." in page
    assert 'id="price-0-price-error"' in page
    assert 'id="name-error"' in page and 'id="restriction_amount-error"' in page


def test_card_extension_on_permanent_plan_shown_at_plans(manager_client, harbour):
    r = manager_client.post("/admin/benefits/new/extension", data={
        "name": "+30 days", "extension_days": "30", "plan_ids": [str(harbour.id)]})
    page = r.get_data(as_text=True)
    assert r.status_code == 422 and _count() == 0
    assert "never expires" in page and 'id="plan_ids-error"' in page


def test_every_bad_input_of_a_member_day_at_once(manager_client, harbour):
    gold = db.session.scalar(select(Tier.id).where(Tier.name == "Gold"))
    r = manager_client.post("/admin/benefits/new/member_day", data={
        "name": "Friday", "schedule_frequency": "weekly", "schedule_times": "window",
        "schedule_window_from": "22:00", "schedule_window_to": "10:00",
        "discount": "120", "multiplier": "two", "channels": ["POS"],
        "restriction_rule": "none", "exclusions_mode": "none",
        "perk-0-tier": str(gold), "perk-0-discount": "abc"})
    page = r.get_data(as_text=True)
    assert r.status_code == 422 and _count() == 0
    for field in ("schedule_weekdays-error", "schedule_window_from-error", "discount-error",
                  "multiplier-error", "perk-0-discount-error"):
        assert f'id="{field}"' in page, field


def test_add_row_without_javascript_keeps_what_was_typed(manager_client, harbour):
    r = manager_client.post("/admin/benefits/new/member_price", data={
        "name": "Member prices", "add": "price", "price-0-product": "LATTE",
        "price-0-price": "18"})
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and _count() == 0
    assert 'value="LATTE"' in page and 'name="price-1-product"' in page


def test_add_row_with_htmx_returns_only_the_rows(manager_client, harbour):
    r = manager_client.post("/admin/benefits/new/member_day", data={
        "name": "Friday", "add": "perk", "perk-0-tier": "", "perk-0-note": "Cake"},
        headers={"HX-Request": "true", "HX-Target": "perk_rows"})
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "<html" not in page
    assert page.lstrip().startswith('<div id="perk_rows">') and 'name="perk-1-tier"' in page


def test_create_member_day_with_tier_perks(manager_client, harbour):
    gold = db.session.scalar(select(Tier.id).where(Tier.name == "Gold"))
    r = manager_client.post("/admin/benefits/new/member_day", data={
        "name": "Friday member day", "schedule_frequency": "weekly", "schedule_weekdays": "4",
        "schedule_times": "window", "schedule_window_from": "10:00",
        "schedule_window_to": "22:00", "discount": "10", "multiplier": "2",
        "channels": ["POS"], "restriction_rule": "none", "exclusions_mode": "none",
        "perk-0-tier": str(gold), "perk-0-discount": "5", "perk-0-multiplier": "0.5",
        "perk-1-tier": "", "perk-1-discount": ""})
    assert r.status_code == 303
    b = db.session.scalar(select(Benefit))
    assert b.schedule["days"] == [4] and b.multiplier_bp == 20_000
    assert b.tier_perks == [{"tier_id": gold, "discount_bp": 500, "multiplier_bp": 5000,
                             "note": ""}]


def test_edit_shows_stored_values_and_saves(manager_client, harbour, manager):
    b = manage.create(db.session, BenefitKind.MEMBER_PRICE, {
        "name": "Member prices", "prices": [{"product_id": "LATTE", "price_minor": 1800}]},
        operator_id=manager.id)
    page = manager_client.get(f"/admin/benefits/{b.id}").get_data(as_text=True)
    assert 'value="LATTE"' in page and 'value="18.00"' in page
    r = manager_client.post(f"/admin/benefits/{b.id}", data={
        "name": "Member prices", "channels": ["POS"], "restriction_rule": "none",
        "exclusions_mode": "none", "price-0-product": "LATTE", "price-0-price": "17.50"})
    assert r.status_code == 303
    db.session.refresh(b)
    assert b.prices == [{"product_id": "LATTE", "price_minor": 1750}]
    assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "benefit.update")) == 1


def test_service_images_upload_and_remove(manager_client, harbour, manager):
    r = manager_client.post("/admin/benefits/new/service", data={
        "name": "Concierge", "images": [(_png(), "a.png"), (_png(), "b.png")]},
        content_type="multipart/form-data")
    assert r.status_code == 303
    b = db.session.scalar(select(Benefit))
    assert len(b.images) == 2
    r = manager_client.post(f"/admin/benefits/{b.id}", data={
        "name": "Concierge", "remove_images": [b.images[0]]})
    db.session.refresh(b)
    assert r.status_code == 303 and len(b.images) == 1


def test_deactivate_and_activate_from_the_list(manager_client, harbour, manager):
    b = manage.create(db.session, BenefitKind.CUSTOM, {"name": "Wi-Fi"}, operator_id=manager.id)
    r = manager_client.post(f"/admin/benefits/{b.id}/status",
                            data={"action": "deactivate", "back": "list",
                                  "next": "/admin/benefits?status=active"})
    assert r.status_code == 303 and r.headers["Location"].endswith("/admin/benefits?status=active")
    db.session.refresh(b)
    assert b.status == "inactive"
    manager_client.post(f"/admin/benefits/{b.id}/status", data={"action": "activate"})
    db.session.refresh(b)
    assert b.status == "active"
    assert manager_client.post("/admin/benefits/999/status",
                               data={"action": "activate"}).status_code == 404


def test_list_filters_in_the_url(manager_client, harbour, manager):
    other = StaffFactory(name="Zed Owner", role="owner")
    manage.create(db.session, BenefitKind.CUSTOM, {"name": "Free Wi-Fi"}, operator_id=manager.id)
    manage.create(db.session, BenefitKind.MULTIPLIER, {"name": "Double points",
                                                       "multiplier_bp": 20_000},
                  operator_id=other.id)
    page = manager_client.get("/admin/benefits?q=WI-FI").get_data(as_text=True)
    assert "Free Wi-Fi" in page and "Double points" not in page
    page = manager_client.get(f"/admin/benefits?operator={other.id}").get_data(as_text=True)
    assert "Double points" in page and "Free Wi-Fi" not in page
    page = manager_client.get("/admin/benefits?kind=multiplier&status=inactive").get_data(
        as_text=True)
    assert "No benefits match these filters." in page
    r = manager_client.get("/admin/benefits?q=free", headers={"HX-Request": "true",
                                                             "HX-Target": "results"})
    assert "<html" not in r.get_data(as_text=True) and "Free Wi-Fi" in r.get_data(as_text=True)


def test_list_query_count_does_not_grow_with_rows(manager_client, harbour, manager):
    manage.create(db.session, BenefitKind.CUSTOM, {"name": "One"}, operator_id=manager.id)
    few = count_queries(manager_client, "/admin/benefits")
    for i in range(8):
        manage.create(db.session, BenefitKind.CUSTOM, {"name": f"More {i}"},
                      operator_id=StaffFactory(role="manager").id)
    assert count_queries(manager_client, "/admin/benefits") == few
