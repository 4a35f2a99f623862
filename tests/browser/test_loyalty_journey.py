"""A till records an order; the member sees the points, the tier progress and the history."""
from __future__ import annotations

from portal.api import services as api_clients
from portal.db import db
from portal.loyalty import tiers
from portal.loyalty.models import EarningRule
from tests.browser.steps import member_sign_in


def test_order_at_the_till_shows_on_the_members_card(phone, app, member, store, plan, owner):
    db.session.add(EarningRule(plan_id=plan.id, points_amount=1, points_per_minor=100,
                               experience_amount=1, experience_per_minor=100))
    db.session.commit()
    tiers.save_settings(db.session, plan.id, {"enabled": True, "on_change": "realtime",
                                              "validity": "permanent", "after_expiry": "rule"},
                        operator_id=owner.id)
    tiers.save_level(db.session, plan.id, name="Gold", threshold=500, rule="accumulated",
                     window_months=None, operator_id=owner.id)
    tiers.release(db.session, plan.id, operator_id=owner.id)
    _client, key = api_clients.create_client(db.session, name="Till", store_code=store.code,
                                             channel="POS")
    card_no = db.session.merge(member).cards[0].number
    r = app.test_client().post("/api/v1/orders", headers={"Authorization": f"Bearer {key}"},
                               json={"external_id": "T-1", "card_no": card_no,
                                     "store_code": store.code, "channel": "POS",
                                     "occurred_at": "2026-05-03T14:30:00+08:00",
                                     "currency": "CNY",
                                     "lines": [{"line_id": "1", "amount": 12000}],
                                     "payments": [{"method": "card", "amount": 12000}]})
    assert r.status_code == 201 and r.json["points_earned"] == 120

    member_sign_in(phone, member)
    assert "380 more experience to Gold" in phone.locator(".tier-progress").inner_text()
    phone.locator("a.stat", has_text="Points").click()
    phone.wait_for_url("**/points")
    assert "+120" in phone.locator(".history").inner_text()
    assert phone.console.errors == []
