"""Paid benefit packages in the admin: roles, the list with sales figures, the form with
every field error at once, status actions, sales data and the validity rule."""
from __future__ import annotations

import pytest

from portal.benefits import packages
from portal.benefits.models import Benefit, BenefitPackage, PackageSettings
from portal.staff.models import Role
from tests.factories import StaffFactory
from tests.fixtures import count_queries, sign_in_as


def _form(**kw) -> dict:
    out = {"name": "Premium", "currency": "CNY", "channels": ["POS", "ONLINE"],
           "schedule_frequency": "weekly", "schedule_times": "window",
           "schedule_weekdays": ["4"], "schedule_window_from": "10:00",
           "schedule_window_to": "22:00", "refund_restricted": "y", "agreement": "Agree",
           "rules-0-duration_days": "90", "rules-0-original_minor": "199",
           "rules-0-first_minor": "159", "rules-1-duration_days": "30",
           "rules-1-original_minor": "79", "items-0-kind": "first_gift",
           "items-0-points": "500", "items-0-rules": ["1"]}
    out.update(kw)
    return out


@pytest.fixture
def premium(session, owner):
    return packages.create(session, {
        "name": "Premium", "currency": "CNY", "channels": ["ONLINE"],
        "rules": [{"duration_days": 30, "original_minor": 9900}]},
        operator_id=owner.id, activate=True)


def test_create_from_the_form_saves_rules_schedule_and_items(owner_client, session):
    r = owner_client.post("/admin/packages/new", data=_form())
    assert r.status_code == 303
    p = session.query(BenefitPackage).one()
    assert [(x.duration_days, x.original_minor, x.first_minor) for x in p.rules] == \
        [(90, 19900, 15900), (30, 7900, None)]
    assert p.schedule == {"frequency": "weekly", "times": "window", "days": [4],
                          "window": ["10:00", "22:00"]}
    assert (p.items[0].kind, p.items[0].points, p.items[0].rule_positions) == \
        ("first_gift", 500, [0])


def test_bad_form_shows_every_error_at_its_field_and_saves_nothing(owner_client, session):
    off = Benefit(kind="discount", name="Old 10% off", currency="CNY", status="inactive",
                  discount_bp=1000)
    session.add(off)
    session.commit()
    data = _form(**{"rules-0-original_minor": "-5", "rules-1-promo_minor": "50",
                    "rules-1-promo_starts_at": "2026-10-07T00:00",
                    "rules-1-promo_ends_at": "2026-10-01T00:00",
                    "items-1-kind": "discount", "items-1-benefit_id": str(off.id)})
    for n in range(2, 6):
        data[f"rules-{n}-duration_days"] = "30"
        data[f"rules-{n}-original_minor"] = "10"
    r = owner_client.post("/admin/packages/new", data=data)
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    for field in ("rules-0-original_minor-error", "rules-1-promo_ends_at-error",
                  "items-1-benefit_id-error", "rules-error"):
        assert f'id="{field}"' in page, field
    assert "at most 5 sales rules" in page and "deactivated" in page
    assert session.query(BenefitPackage).count() == 0


def test_edit_activate_deactivate_archive(owner_client, premium, session):
    r = owner_client.post(f"/admin/packages/{premium.id}",
                          data=_form(name="Premium plus"))
    assert r.status_code == 303
    assert owner_client.post(f"/admin/packages/{premium.id}/deactivate").status_code == 303
    assert owner_client.post(f"/admin/packages/{premium.id}/archive").status_code == 303
    session.expire_all()
    p = session.get(BenefitPackage, premium.id)
    assert (p.name, p.status) == ("Premium plus", "archived")


def test_list_searches_and_shows_sales_in_fixed_queries(owner_client, session, owner):
    for n in range(3):
        packages.create(session, {"name": f"Pack {n}", "currency": "CNY",
                                  "channels": ["ONLINE"],
                                  "rules": [{"duration_days": 30, "original_minor": 100}]},
                        operator_id=owner.id)
    page = owner_client.get("/admin/packages?q=pack 1").get_data(as_text=True)
    assert "Pack 1" in page and "Pack 2" not in page
    few = count_queries(owner_client, "/admin/packages")
    for n in range(3, 8):
        packages.create(session, {"name": f"Pack {n}", "currency": "CNY",
                                  "channels": ["ONLINE"],
                                  "rules": [{"duration_days": 30, "original_minor": 100}]},
                        operator_id=owner.id)
    assert count_queries(owner_client, "/admin/packages") == few


def test_add_row_returns_one_fieldset(owner_client):
    r = owner_client.get("/admin/packages/row/rule?n=2", headers={"HX-Request": "true"})
    page = r.get_data(as_text=True)
    assert 'name="rules-2-original_minor"' in page and "<html" not in page


def test_hours_per_date_rows_appear_as_days_are_ticked_without_a_save(owner_client, session):
    r = owner_client.post("/admin/packages/per-date", headers={"HX-Request": "true",
                                                               "HX-Target": "per_date"},
                          data=_form(schedule_times="per_date", schedule_weekdays=["5", "6"]))
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "<html" not in page
    assert 'name="per_date-5-from"' in page and 'name="per_date-6-to"' in page
    assert "Saturday · from" in page and "Sunday · until" in page
    assert session.query(BenefitPackage).count() == 0


def test_edit_shows_the_saved_hours_of_each_weekday(owner_client, session, owner):
    p = packages.create(session, {
        "name": "Brunch", "currency": "CNY", "channels": ["ONLINE"],
        "schedule": {"frequency": "weekly", "days": [5], "times": "per_date",
                     "per_date": {"5": ["09:00", "14:00"]}},
        "rules": [{"duration_days": 7, "original_minor": 5900}]}, operator_id=owner.id)
    page = owner_client.get(f"/admin/packages/{p.id}").get_data(as_text=True)
    assert "Saturday · from" in page and 'value="09:00"' in page and "Day 5" not in page


def test_sales_and_settings_pages(owner_client, premium, session):
    assert "No one has bought" in owner_client.get(
        f"/admin/packages/{premium.id}/sales").get_data(as_text=True)
    assert owner_client.post("/admin/packages/settings",
                             data={"validity_mode": "next_day"}).status_code == 303
    assert session.query(PackageSettings).one().validity_mode == "next_day"
    assert owner_client.post("/admin/packages/settings",
                             data={"validity_mode": "x"}).status_code == 422


def test_form_pages_render(owner_client, premium):
    assert owner_client.get("/admin/packages/new").status_code == 200
    assert owner_client.get(f"/admin/packages/{premium.id}").status_code == 200


@pytest.mark.parametrize("role,allowed", [(Role.MANAGER, True), (Role.CLERK, False)])
def test_packages_are_for_managers_and_owners(client, store, role, allowed):
    sign_in_as(client, StaffFactory(role=role, store_id=store.id))
    assert (client.get("/admin/packages").status_code == 200) is allowed
