"""Smart top-up plans in the merchant area over HTTP: create with tiers of each kind, edit,
bad input, "Try a bill", status actions and who may see them."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal import clock
from portal.db import db
from portal.staff.models import AuditEntry
from portal.wallet.models import SmartPlan, SmartTier
from tests.factories import CouponTemplateFactory
from tests.fixtures import count_queries, sign_in_as


def _local(delta: timedelta) -> str:
    return clock.local(clock.now() + delta).strftime("%Y-%m-%dT%H:%M")


def _tier(i: int, **fields) -> dict:
    return {f"tier-{i}-{k}": v for k, v in fields.items()}


def _smart(*tiers: dict, **changes) -> dict:
    data = {"name": "Short? Top up", "currency": "CNY", "starts_at": _local(timedelta(0)),
            "ends_at": _local(timedelta(days=90)), "store_mode": "all", "min_topup": "",
            "rounding": "10", "channels": ["POS", "ONLINE"], "action": "save"}
    for t in tiers or (_tier(0, kind="discount", multiplier="1.2", bonus_percent="8"),):
        data.update(t)
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def _plan(owner_client, *tiers, **changes) -> SmartPlan:
    r = owner_client.post("/admin/smart-topups/new", data=_smart(*tiers, **changes))
    assert r.status_code == 303, r.get_data(as_text=True)
    return db.session.scalars(select(SmartPlan).order_by(SmartPlan.id.desc())).first()


def test_create_a_plan_with_a_tier_of_each_kind(owner_client, owner):
    coupon = CouponTemplateFactory()
    first = CouponTemplateFactory(title="First top-up treat")
    r = owner_client.post("/admin/smart-topups/new", data=_smart(
        _tier(0, kind="discount", multiplier="1.2", bonus_percent="8",
              first_gift=str(first.id)),
        _tier(1, kind="fixed", amount="", multiplier=""),           # empty: skipped
        _tier(2, kind="gift", multiplier="1.3", bonus_percent="5", points_percent="10",
              gift=str(coupon.id), first_bonus_percent="5", first_points_percent="3"),
        _tier(3, kind="fixed", amount="300", bonus="30", bonus_points="300",
              gift=str(coupon.id)),
        first_bonus="y", min_topup="100", stock="500", first_topup_only="y",
        action="activate"))
    assert r.status_code == 303
    p = db.session.scalars(select(SmartPlan)).one()
    assert (p.status, p.min_topup_minor, p.rounding_minor, p.stock_total, p.stock_left) == \
        ("active", 10_000, 10, 500, 500)
    assert (p.first_bonus, p.first_topup_only, p.channels) == (True, True, ["POS", "ONLINE"])
    d, g, f = p.tiers
    assert (d.position, d.kind, d.multiplier_bp, d.bonus_bp, d.first_gift_template_id) == \
        (1, "discount", 12_000, 800, first.id)
    assert (g.position, g.kind, g.multiplier_bp, g.bonus_bp, g.points_bp,
            g.gift_template_id, g.first_bonus_bp, g.first_points_bp) == \
        (2, "gift", 13_000, 500, 1000, coupon.id, 500, 300)
    assert (f.kind, f.amount_minor, f.bonus_minor, f.bonus_points, f.gift_template_id) == \
        ("fixed", 30_000, 3_000, 300, coupon.id)
    assert db.session.scalar(select(AuditEntry.staff_id)
                             .where(AuditEntry.action == "smart_plan.create")) == owner.id
    page = owner_client.get(f"/admin/smart-topups/{p.id}").get_data(as_text=True)
    assert 'value="1.3"' in page and 'value="300.00"' in page and "Try a bill" in page
    assert page.count('class="smart-tier"') == 6          # three tiers and three to add


def test_a_new_plan_shows_three_tier_rows_and_never_more_than_nine(owner_client):
    page = owner_client.get("/admin/smart-topups/new").get_data(as_text=True)
    assert page.count('class="smart-tier"') == 3
    tiers = [_tier(i, kind="discount", multiplier=str(1 + i / 10)) for i in range(7)]
    p = _plan(owner_client, *tiers)
    page = owner_client.get(f"/admin/smart-topups/{p.id}").get_data(as_text=True)
    assert page.count('class="smart-tier"') == 9


def test_edit_a_plan(owner_client):
    p = _plan(owner_client, _tier(0, kind="discount", multiplier="1.2", bonus_percent="8"),
              _tier(1, kind="fixed", amount="300"))
    r = owner_client.post(f"/admin/smart-topups/{p.id}", data=_smart(
        _tier(0, kind="discount", multiplier="1.5", bonus_percent="10"),
        name="Bigger", rounding="100"))
    assert r.status_code == 303
    db.session.expire_all()
    p = db.session.get(SmartPlan, p.id)
    assert (p.name, p.rounding_minor, [(t.kind, t.multiplier_bp, t.bonus_bp)
                                       for t in p.tiers]) == \
        ("Bigger", 100, [("discount", 15_000, 1000)])
    assert db.session.scalar(select(func.count(AuditEntry.id))
                             .where(AuditEntry.action == "smart_plan.update")) == 1


@pytest.mark.parametrize("changes,field_id", [
    ({"name": ""}, "name"),
    ({"channels": None}, "channels"),
    ({"ends_at": _local(timedelta(days=-1))}, "ends_at"),
    ({"starts_at": "tomorrow"}, "starts_at"),
    ({"stock": "0"}, "stock"),
    ({"min_topup": "abc"}, "min_topup"),
    ({"rounding": "5"}, "rounding"),
    ({"tier-0-multiplier": "0"}, "tier-0-multiplier"),
    ({"tier-0-multiplier": "twice"}, "tier-0-multiplier"),
    ({"tier-0-bonus_percent": "1000.01"}, "tier-0-bonus_percent"),
    ({"tier-0-kind": "fixed", "tier-0-amount": "0"}, "tier-0-amount"),
    ({"tier-0-kind": "gift", "tier-0-points_percent": "1200"}, "tier-0-points_percent"),
])
def test_bad_input_is_refused_next_to_the_field_and_nothing_is_saved(owner_client, changes,
                                                                      field_id):
    r = owner_client.post("/admin/smart-topups/new", data=_smart(**changes))
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    assert f'id="{field_id}-error"' in page
    assert db.session.scalar(select(func.count(SmartPlan.id))) == 0
    assert db.session.scalar(select(func.count(SmartTier.id))) == 0


def test_no_tiers_or_a_tenth_tier_is_refused_with_a_message(owner_client):
    r = owner_client.post("/admin/smart-topups/new", data=_smart(
        _tier(0, kind="discount", multiplier="")))
    assert r.status_code == 422 and "Add at least one tier." in r.get_data(as_text=True)
    ten = [_tier(i, kind="discount", multiplier="1.2") for i in range(10)]
    r = owner_client.post("/admin/smart-topups/new", data=_smart(*ten))
    page = r.get_data(as_text=True)
    assert r.status_code == 422 and "at most 9 tiers" in page
    assert page.count('class="smart-tier"') == 9
    assert db.session.scalar(select(func.count(SmartPlan.id))) == 0


def test_an_inactive_gift_coupon_is_refused(owner_client):
    draft = CouponTemplateFactory(status="draft")
    r = owner_client.post("/admin/smart-topups/new", data=_smart(
        _tier(0, kind="gift", multiplier="1.3", gift=str(draft.id))))
    assert r.status_code == 422 and 'id="tier-0-gift-error"' in r.get_data(as_text=True)


def test_bad_edit_keeps_the_plan_as_it_was(owner_client):
    p = _plan(owner_client)
    r = owner_client.post(f"/admin/smart-topups/{p.id}", data=_smart(
        _tier(0, kind="discount", multiplier="11"), name="Changed"))
    assert r.status_code == 422 and 'id="tier-0-multiplier-error"' in r.get_data(as_text=True)
    db.session.expire_all()
    p = db.session.get(SmartPlan, p.id)
    assert (p.name, p.tiers[0].multiplier_bp) == ("Short? Top up", 12_000)


def test_try_a_bill_shows_each_tier_s_offer(owner_client):
    p = _plan(owner_client, _tier(0, kind="discount", multiplier="1.2", bonus_percent="8"),
              _tier(1, kind="gift", multiplier="1.3", bonus_percent="5", points_percent="10"))
    r = owner_client.get(f"/admin/smart-topups/{p.id}?bill=100",
                         headers={"HX-Request": "true", "HX-Target": "preview"})
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and "<html" not in body and 'id="preview"' in body
    assert "¥120.00" in body and "¥8.00" in body and "¥128.00" in body
    assert "¥130.00" in body and "¥5.00" in body
    r = owner_client.get(f"/admin/smart-topups/{p.id}?bill=90",
                         headers={"HX-Request": "true", "HX-Target": "preview"})
    body = r.get_data(as_text=True)
    assert "¥117.00" in body and "¥4.50" in body and ">11<" in body
    full = owner_client.get(f"/admin/smart-topups/{p.id}?bill=100").get_data(as_text=True)
    assert "<html" in full and "¥128.00" in full
    bad = owner_client.get(f"/admin/smart-topups/{p.id}?bill=abc",
                           headers={"HX-Request": "true", "HX-Target": "preview"})
    assert "Enter a bill" in bad.get_data(as_text=True)


def test_try_a_bill_shows_the_first_top_up_too(owner_client):
    coupon = CouponTemplateFactory(title="Welcome latte")
    p = _plan(owner_client, _tier(0, kind="fixed", amount="300", bonus="30",
                                  first_gift=str(coupon.id)), first_bonus="y")
    body = owner_client.get(f"/admin/smart-topups/{p.id}?bill=100",
                            headers={"HX-Request": "true", "HX-Target": "preview"}) \
        .get_data(as_text=True)
    assert "First top-up" in body and "Welcome latte" in body and "¥330.00" in body


def test_status_actions_and_archived_plans_hidden_from_the_list(owner_client):
    p = _plan(owner_client, name="Spring smart")

    def act(action):
        return owner_client.post(f"/admin/smart-topups/{p.id}/status",
                                 data={"action": action})

    def status():
        db.session.commit()
        return db.session.scalar(select(SmartPlan.status).where(SmartPlan.id == p.id))

    assert act("activate").status_code == 303
    assert status() == "active"
    act("archive")                               # refused: deactivate first
    assert status() == "active"
    act("deactivate")
    act("archive")
    assert status() == "archived"
    assert "Spring smart" not in owner_client.get("/admin/smart-topups").get_data(as_text=True)
    assert "Spring smart" in owner_client.get("/admin/smart-topups?status=archived") \
        .get_data(as_text=True)
    assert owner_client.post(f"/admin/smart-topups/{p.id}", data=_smart()).status_code == 422
    assert act("resume").status_code == 404
    actions = db.session.scalars(select(AuditEntry.action)
                                 .where(AuditEntry.action.startswith("smart_plan."))
                                 .order_by(AuditEntry.id)).all()
    assert actions == ["smart_plan.create", "smart_plan.activate", "smart_plan.deactivate",
                       "smart_plan.archive"]


def test_the_list_has_no_n_plus_1_and_filters_by_status(owner_client):
    for i in range(3):
        _plan(owner_client, name=f"Plan {i}")
    few = count_queries(owner_client, "/admin/smart-topups")
    for i in range(3, 9):
        _plan(owner_client, name=f"Plan {i}")
    assert count_queries(owner_client, "/admin/smart-topups") == few
    r = owner_client.get("/admin/smart-topups?status=active",
                         headers={"HX-Request": "true", "HX-Target": "results"})
    body = r.get_data(as_text=True)
    assert "<html" not in body and "Plan 1" not in body and "No smart top-up plans" in body


def test_the_top_up_list_and_the_menu_link_here(owner_client):
    assert 'href="/admin/smart-topups"' in owner_client.get("/admin/topups") \
        .get_data(as_text=True)


def test_clerks_cannot_see_smart_plans(client, clerk, owner_client):
    p = _plan(owner_client)
    sign_in_as(client, clerk)
    for url in ("/admin/smart-topups", "/admin/smart-topups/new",
                f"/admin/smart-topups/{p.id}", f"/admin/smart-topups/{p.id}?bill=100"):
        assert client.get(url).status_code == 403, url
    assert client.post(f"/admin/smart-topups/{p.id}/status",
                       data={"action": "deactivate"}).status_code == 403
    assert client.post("/admin/smart-topups/new", data=_smart()).status_code == 403
