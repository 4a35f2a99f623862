"""Earning rules and adjustments in the admin; the member's points page."""
from __future__ import annotations

import re

import pytest

from portal import ledger
from portal.db import db
from portal.ledger import AccountKind
from portal.loyalty import services as loyalty
from portal.loyalty.models import EarningRule
from portal.staff.models import AuditEntry
from tests.fixtures import sign_in_as

RULE = {"points_amount": "10", "points_per": "10", "experience_amount": "1",
        "experience_per": "1", "product_filter": "none", "filter_product_ids": "",
        "filter_names": "", "points_expiry": "1"}


def test_owner_sets_an_earning_rule(owner_client, owner, plan):
    r = owner_client.post(f"/admin/loyalty/{plan.id}", data=RULE)
    assert r.status_code == 303
    rule = db.session.query(EarningRule).one()
    assert (rule.points_amount, rule.points_per_minor, rule.points_expiry_years) == (10, 1000, 1)
    assert db.session.query(AuditEntry).filter_by(action="earning_rule.update",
                                                  staff_id=owner.id).count() == 1
    assert "10 per ¥10.00" in owner_client.get("/admin/loyalty").get_data(as_text=True)


@pytest.mark.parametrize("changes,field", [
    ({"points_per": "0"}, "points_per"),
    ({"points_per": "abc"}, "points_per"),
    ({"points_amount": "-5"}, "points_amount"),
    ({"product_filter": "whitelist"}, "filter_product_ids"),
])
def test_bad_rules_are_refused_by_field(owner_client, plan, changes, field):
    r = owner_client.post(f"/admin/loyalty/{plan.id}", data={**RULE, **changes})
    assert r.status_code == 422 and f'id="{field}-error"' in r.get_data(as_text=True)
    assert db.session.query(EarningRule).count() == 0


def test_clerks_cannot_change_earning(client, clerk, plan):
    sign_in_as(client, clerk)
    assert client.get("/admin/loyalty").status_code == 403


def _nonce(client, member):
    page = client.get(f"/admin/members/{member.id}").get_data(as_text=True)
    return re.findall(r'name="nonce" type="hidden" value="([^"]+)"', page)[-1]


def test_staff_adjust_points_with_a_reason_once(client, clerk, member):
    sign_in_as(client, clerk)
    data = {"kind": "points", "delta": "50", "reason": "Lost receipt",
            "nonce": _nonce(client, member)}
    client.post(f"/admin/members/{member.id}/adjust", data=data)
    client.post(f"/admin/members/{member.id}/adjust", data=data)
    assert ledger.balance(db.session, AccountKind.POINTS, "member", member.id) == 50
    entry = db.session.query(AuditEntry).filter_by(action="points.adjust").one()
    assert entry.staff_id == clerk.id and entry.after["reason"] == "Lost receipt"
    assert "Adjusted by staff" in client.get(f"/admin/members/{member.id}").get_data(
        as_text=True)


def test_adjustments_need_a_reason_and_cannot_go_below_zero(owner_client, member):
    owner_client.post(f"/admin/members/{member.id}/adjust",
                      data={"kind": "points", "delta": "50", "reason": "", "nonce": "a"})
    owner_client.post(f"/admin/members/{member.id}/adjust",
                      data={"kind": "points", "delta": "-1", "reason": "x", "nonce": "b"})
    assert ledger.balance(db.session, AccountKind.POINTS, "member", member.id) == 0


def test_an_adjustment_in_superscript_digits_is_refused_not_a_server_error(owner_client,
                                                                         member):
    # "²".isdigit() is True but int("²") raises: digits are checked with isdecimal.
    r = owner_client.post(f"/admin/members/{member.id}/adjust",
                          data={"kind": "points", "delta": "²", "reason": "x", "nonce": "c"})
    assert r.status_code < 500
    assert ledger.balance(db.session, AccountKind.POINTS, "member", member.id) == 0


def test_points_page_shows_balances_expiry_and_pages_the_history(member_client, member, owner,
                                                                  plan):
    db.session.add(EarningRule(plan_id=plan.id, points_expiry_years=0))
    db.session.commit()
    for i in range(25):
        loyalty.adjust(db.session, member_id=member.id, kind="points", delta=2,
                       reason="test", key=f"k{i}", operator_id=owner.id)
    body = member_client.get("/points").get_data(as_text=True)
    assert "50" in body and "expire on" in body
    assert body.count('class="history__item"') == 20 and 'id="history"' in body
    before = re.search(r'/points\?before=(\d+)', body).group(1)
    more = member_client.get(f"/points?before={before}",
                             headers={"HX-Request": "true", "HX-Target": "history"})
    fragment = more.get_data(as_text=True)
    assert fragment.count('class="history__item"') == 5 and "<html" not in fragment


def test_alarm_settings_and_clearing_a_member(owner_client, owner, member):
    r = owner_client.post("/admin/loyalty/alarm", data={
        "daily_threshold": "500", "block_earning": "y", "emails": "ops@example.com"})
    assert r.status_code == 303
    r = owner_client.post("/admin/loyalty/alarm", data={"daily_threshold": "x", "emails": ""})
    assert r.status_code == 422 and 'id="daily_threshold-error"' in r.get_data(as_text=True)
    from portal.members.models import Member

    m = db.session.merge(member)
    m.status = "abnormal"
    db.session.commit()
    assert "Mark as normal" in owner_client.get(f"/admin/members/{member.id}").get_data(
        as_text=True)
    owner_client.post(f"/admin/members/{member.id}/normal")
    db.session.expire_all()
    assert db.session.get(Member, member.id).status == "normal"


def test_every_rule_problem_is_shown_at_once(owner_client, plan):
    r = owner_client.post(f"/admin/loyalty/{plan.id}", data={
        **RULE, "points_per": "abc", "points_amount": "-1", "product_filter": "whitelist"})
    body = r.get_data(as_text=True)
    assert r.status_code == 422
    for field in ("points_per", "points_amount", "filter_product_ids"):
        assert f'id="{field}-error"' in body


def test_experience_on_the_timeline_is_an_option(owner_client, owner, member):
    loyalty.adjust(db.session, member_id=member.id, kind="experience", delta=7,
                   reason="visit", key="e", operator_id=owner.id)
    page = owner_client.get(f"/admin/members/{member.id}").get_data(as_text=True)
    assert "+7" in page
    owner_client.post("/admin/loyalty/timeline", data={})            # switched off
    page = owner_client.get(f"/admin/members/{member.id}").get_data(as_text=True)
    assert "+7" not in page
    assert db.session.query(AuditEntry).filter_by(action="loyalty.timeline").count() == 1
    owner_client.post("/admin/loyalty/timeline", data={"on": "y"})
    assert "+7" in owner_client.get(f"/admin/members/{member.id}").get_data(as_text=True)
