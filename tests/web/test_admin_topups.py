"""Top-up plans in the merchant area over HTTP: create each kind, bad input, status
actions, details, recharge codes and their CSV, and who may see them."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal import clock
from portal.db import db
from portal.staff.models import AuditEntry
from portal.wallet import plans
from portal.wallet.models import RechargeCode, RechargeCodeBatch, Topup, TopupPlan
from tests.factories import CouponTemplateFactory, StoreFactory
from tests.fixtures import count_queries, sign_in_as


def _local(delta: timedelta) -> str:
    return clock.local(clock.now() + delta).strftime("%Y-%m-%dT%H:%M")


def _fixed(**changes):
    data = {"name": "Top up 100", "currency": "CNY", "starts_at": _local(timedelta(0)),
            "ends_at": _local(timedelta(days=90)), "schedule_frequency": "daily",
            "schedule_times": "all_day", "store_mode": "all", "amount": "100.00",
            "bonus": "10", "bonus_points": "50", "gift": "", "first_gift": "",
            "channels": ["POS", "ONLINE"], "visible": "y", "same_day_rule": "none",
            "action": "save"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_create_a_fixed_plan(owner_client, owner):
    coupon = CouponTemplateFactory()
    r = owner_client.post("/admin/topups/new/fixed", data=_fixed(
        gift=f"t:{coupon.id}", first_bonus="y", first_bonus_percent="5",
        first_points_percent="3", per_member_limit="2", stock="100",
        schedule_frequency="weekly", schedule_weekdays=["4", "5"], schedule_times="window",
        schedule_window_from="10:00", schedule_window_to="22:00"))
    assert r.status_code == 303
    p = db.session.scalars(select(TopupPlan)).one()
    assert (p.kind, p.status, p.amount_minor, p.bonus_minor, p.bonus_points) == \
        ("fixed", "draft", 10_000, 1_000, 50)
    assert (p.gift_template_id, p.first_bonus, p.first_bonus_bp, p.first_points_bp) == \
        (coupon.id, True, 500, 300)
    assert (p.per_member_limit, p.stock_total, p.stock_left) == (2, 100, 100)
    assert p.schedule == {"frequency": "weekly", "days": [4, 5], "times": "window",
                          "window": ["10:00", "22:00"]}
    assert db.session.scalar(select(AuditEntry.staff_id)
                             .where(AuditEntry.action == "topup_plan.create")) == owner.id
    page = owner_client.get(f"/admin/topups/{p.id}").get_data(as_text=True)
    assert "Top up 100" in page and "What the plan gives" in page


def test_create_a_range_plan_and_activate_it(owner_client):
    r = owner_client.post("/admin/topups/new/range", data=_fixed(
        amount=None, min_amount="100", max_amount="500", bonus_percent="12.5",
        points_percent="5", action="activate"))
    assert r.status_code == 303
    p = db.session.scalars(select(TopupPlan)).one()
    assert (p.kind, p.status, p.min_minor, p.max_minor, p.bonus_bp, p.points_bp) == \
        ("range", "active", 10_000, 50_000, 1250, 500)


def test_create_a_custom_plan_with_per_date_hours(owner_client):
    data = _fixed(amount=None, min_amount="1000", max_amount="5000", bonus_min="100",
                  bonus_max="500", points_min="100", points_max="500",
                  same_day_rule="percent", same_day_percent="50",
                  schedule_frequency="monthly", schedule_monthdays=["1", "last"],
                  schedule_times="per_date")
    data.update({"per_date-1-from": "09:00", "per_date-1-to": "12:00",
                 "per_date-last-from": "18:00", "per_date-last-to": "22:00"})
    r = owner_client.post("/admin/topups/new/custom", data=data)
    assert r.status_code == 303, r.get_data(as_text=True)
    p = db.session.scalars(select(TopupPlan)).one()
    assert (p.kind, p.bonus_min_minor, p.bonus_max_minor, p.points_min, p.points_max) == \
        ("custom", 10_000, 50_000, 100, 500)
    assert p.same_day_usable_bp == 5000 and not p.bonus_locked_same_day
    assert p.schedule["per_date"] == {"1": ["09:00", "12:00"], "last": ["18:00", "22:00"]}
    page = owner_client.get(f"/admin/topups/{p.id}").get_data(as_text=True)
    assert 'name="per_date-last-from"' in page and 'value="18:00"' in page


@pytest.mark.parametrize("kind,changes,field_id", [
    ("fixed", {"amount": "0"}, "amount"),
    ("fixed", {"amount": "abc"}, "amount"),
    ("fixed", {"amount": "1.234"}, "amount"),
    ("fixed", {"name": ""}, "name"),
    ("fixed", {"channels": None}, "channels"),
    ("fixed", {"ends_at": _local(timedelta(days=-1))}, "ends_at"),
    ("fixed", {"starts_at": "tomorrow"}, "starts_at"),
    ("fixed", {"per_member_limit": "0"}, "per_member_limit"),
    ("fixed", {"schedule_frequency": "weekly"}, "schedule_weekdays"),
    ("fixed", {"schedule_times": "window", "schedule_window_from": "22:00",
               "schedule_window_to": "10:00"}, "schedule_window_from"),
    ("range", {"amount": None, "min_amount": "500", "max_amount": "100",
               "bonus_percent": "10"}, "max_amount"),
    ("range", {"amount": None, "min_amount": "100", "max_amount": "500",
               "bonus_percent": "1000.01"}, "bonus_percent"),
    ("range", {"amount": None, "min_amount": "100", "max_amount": "500",
               "bonus_percent": "Infinity"}, "bonus_percent"),
    ("custom", {"amount": None, "min_amount": "100", "max_amount": "500",
                "bonus_min": "50", "bonus_max": "10"}, "bonus_max"),
    ("custom", {"amount": None, "min_amount": "100", "max_amount": "500",
                "same_day_rule": "percent", "same_day_percent": "150"}, "same_day_percent"),
])
def test_bad_input_is_refused_next_to_the_field(owner_client, kind, changes, field_id):
    r = owner_client.post(f"/admin/topups/new/{kind}", data=_fixed(**changes))
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    assert f'id="{field_id}-error"' in page or (f'id="{field_id}' in page
                                                  and "field-error" in page)
    assert db.session.scalar(select(func.count(TopupPlan.id))) == 0


def test_per_date_hours_missing_for_a_chosen_day_show_a_row_to_fill(owner_client):
    r = owner_client.post("/admin/topups/new/fixed", data=_fixed(
        schedule_frequency="weekly", schedule_weekdays=["0"], schedule_times="per_date"))
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    assert 'id="per_date-0-error"' in page and 'name="per_date-0-from"' in page


def test_an_inactive_gift_is_refused(owner_client):
    draft = CouponTemplateFactory(status="draft")
    r = owner_client.post("/admin/topups/new/fixed", data=_fixed(gift=f"t:{draft.id}"))
    assert r.status_code == 422 and "not active" in r.get_data(as_text=True)


def _plan(owner_client, **changes) -> TopupPlan:
    assert owner_client.post("/admin/topups/new/fixed",
                             data=_fixed(**changes)).status_code == 303
    return db.session.scalars(select(TopupPlan).order_by(TopupPlan.id.desc())).first()


def test_edit_a_plan(owner_client):
    p = _plan(owner_client)
    r = owner_client.post(f"/admin/topups/{p.id}", data=_fixed(name="Top up 200",
                                                                amount="200"))
    assert r.status_code == 303
    db.session.refresh(p)
    assert (p.name, p.amount_minor) == ("Top up 200", 20_000)
    r = owner_client.post(f"/admin/topups/{p.id}", data=_fixed(amount="0"))
    assert r.status_code == 422
    db.session.refresh(p)
    assert p.amount_minor == 20_000


def test_status_actions_and_archived_plans_hidden_from_the_list(owner_client):
    p = _plan(owner_client, name="Spring plan")

    def act(action):
        return owner_client.post(f"/admin/topups/{p.id}/status", data={"action": action})

    def status():
        db.session.commit()
        return db.session.scalar(select(TopupPlan.status).where(TopupPlan.id == p.id))

    assert act("activate").status_code == 303
    assert status() == "active"
    act("archive")                               # refused: deactivate first
    assert status() == "active"
    act("deactivate")
    act("archive")
    assert status() == "archived"
    assert "Spring plan" not in owner_client.get("/admin/topups").get_data(as_text=True)
    assert "Spring plan" in owner_client.get("/admin/topups?status=archived") \
        .get_data(as_text=True)
    assert owner_client.post(f"/admin/topups/{p.id}", data=_fixed()).status_code == 422
    actions = db.session.scalars(select(AuditEntry.action)
                                 .where(AuditEntry.action.startswith("topup_plan."))
                                 .order_by(AuditEntry.id)).all()
    assert actions == ["topup_plan.create", "topup_plan.activate", "topup_plan.deactivate",
                       "topup_plan.archive"]


def test_the_list_filters_by_kind_and_has_no_n_plus_1(owner_client):
    for i in range(3):
        _plan(owner_client, name=f"Plan {i}")
    few = count_queries(owner_client, "/admin/topups")
    for i in range(3, 9):
        _plan(owner_client, name=f"Plan {i}")
    assert count_queries(owner_client, "/admin/topups") == few
    assert "Plan 1" not in owner_client.get("/admin/topups?kind=range").get_data(as_text=True)


def test_member_top_up_details(owner_client, member, other_member):
    p = _plan(owner_client)
    for m in (member, other_member):
        card = db.session.merge(m).cards[0]
        db.session.add(Topup(plan_id=p.id, member_id=m.id, card_id=card.id, currency="CNY",
                             amount_minor=10_000, bonus_minor=1_000, points=50,
                             status="credited", credited_at=clock.now()))
    db.session.commit()
    page = owner_client.get(f"/admin/topups/{p.id}/details").get_data(as_text=True)
    assert db.session.merge(member).display_name in page and "¥100.00" in page
    few = count_queries(owner_client, f"/admin/topups/{p.id}/details")
    for _ in range(5):
        card = db.session.merge(member).cards[0]
        db.session.add(Topup(plan_id=p.id, member_id=member.id, card_id=card.id,
                             currency="CNY", amount_minor=10_000))
    db.session.commit()
    assert count_queries(owner_client, f"/admin/topups/{p.id}/details") == few


def test_generate_codes_and_download_them(owner_client, owner):
    p = _plan(owner_client)
    store = StoreFactory()
    r = owner_client.post(f"/admin/topups/{p.id}/codes", data={
        "count": "25", "scenario": "Spring fair", "store_ids": [str(store.id)],
        "channels": ["POS"], "valid_until": _local(timedelta(days=30))})
    assert r.status_code == 303
    batch = db.session.scalars(select(RechargeCodeBatch)).one()
    assert (batch.count, batch.amount_minor, batch.store_ids, batch.channels) == \
        (25, 10_000, [store.id], ["POS"])
    page = owner_client.get(f"/admin/topups/{p.id}/codes").get_data(as_text=True)
    assert "Spring fair" in page
    r = owner_client.get(f"/admin/topups/codes/{batch.id}.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True))))
    assert rows[0][0] == "code" and len(rows) == 26
    codes = set(db.session.scalars(select(RechargeCode.code)))
    assert {row[0] for row in rows[1:]} == codes and rows[1][1] == "100.00"
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "topup_plan.codes_download", AuditEntry.staff_id == owner.id)) == 1


def test_bad_code_batches_are_refused(owner_client):
    p = _plan(owner_client)
    r = owner_client.post(f"/admin/topups/{p.id}/codes", data={
        "count": "0", "scenario": "", "channels": []})
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    assert 'id="count-error"' in page or "1 to 10,000" in page
    assert db.session.scalar(select(func.count(RechargeCodeBatch.id))) == 0


def test_clerks_cannot_see_top_up_plans(client, clerk, owner_client):
    p = _plan(owner_client)
    batch = plans.generate_codes(db.session, p.id, count=1, scenario="x", channels=["POS"])
    sign_in_as(client, clerk)
    for url in ("/admin/topups", "/admin/topups/new/fixed", f"/admin/topups/{p.id}",
                f"/admin/topups/{p.id}/details", f"/admin/topups/{p.id}/codes",
                f"/admin/topups/codes/{batch.id}.csv"):
        assert client.get(url).status_code == 403, url
    assert client.post(f"/admin/topups/{p.id}/status",
                       data={"action": "deactivate"}).status_code == 403


def test_htmx_filter_returns_the_results_fragment(owner_client):
    _plan(owner_client, name="Fragmented")
    r = owner_client.get("/admin/topups?kind=fixed", headers={"HX-Request": "true",
                                                              "HX-Target": "results"})
    body = r.get_data(as_text=True)
    assert "<html" not in body and "Fragmented" in body


def test_cover_image_upload(owner_client):
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.new("RGB", (40, 20), "teal").save(buf, "PNG")
    buf.seek(0)
    data = _fixed()
    data["cover"] = (buf, "cover.png")
    r = owner_client.post("/admin/topups/new/fixed", data=data,
                          content_type="multipart/form-data")
    assert r.status_code == 303
    p = db.session.scalars(select(TopupPlan)).one()
    assert p.cover_image and p.cover_image.endswith(".jpg")
    bad = _fixed(name="Bad cover")
    bad["cover"] = (BytesIO(b"not an image"), "cover.png")
    r = owner_client.post("/admin/topups/new/fixed", data=bad,
                          content_type="multipart/form-data")
    assert r.status_code == 422 and "not an image" in r.get_data(as_text=True)


@pytest.mark.parametrize("scenario", ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)"])
def test_the_code_csv_keeps_a_formula_like_scenario_as_text(owner_client, scenario):
    p = _plan(owner_client)
    batch = plans.generate_codes(db.session, p.id, count=1, scenario=scenario,
                                 channels=["POS"])
    r = owner_client.get(f"/admin/topups/codes/{batch.id}.csv")
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True))))
    assert rows[1][3] == "'" + scenario
