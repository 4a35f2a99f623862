"""Orders, refunds, points and members over the till API."""
from __future__ import annotations

import pytest

from portal.api import services as api_clients
from portal.db import db
from portal.loyalty.models import EarningRule
from portal.members.models import Member


@pytest.fixture
def till(store, plan):
    db.session.add(EarningRule(plan_id=plan.id, points_amount=1, points_per_minor=100,
                               experience_amount=1, experience_per_minor=100,
                               points_expiry_years=1))
    db.session.commit()
    _client, key = api_clients.create_client(db.session, name="Till", store_code=store.code,
                                             channel="POS")
    return {"Authorization": f"Bearer {key}"}, store.code


def _order(card_no, store_code, external_id="POS-1", **extra):
    return {"external_id": external_id, "card_no": card_no, "store_code": store_code,
            "channel": "POS", "occurred_at": "2026-05-03T14:30:00+08:00", "currency": "CNY",
            "lines": [{"line_id": "1", "product_id": "LATTE", "name": "Latte",
                       "category": "coffee", "quantity": 2, "amount": 6400}],
            "payments": [{"method": "card", "amount": 6400}], **extra}


def test_order_earns_and_answers_with_balances_once(client, till, member):
    headers, store_code = till
    card_no = db.session.merge(member).cards[0].number
    r = client.post("/api/v1/orders", headers=headers, json=_order(card_no, store_code))
    assert r.status_code == 201
    assert (r.json["points_earned"], r.json["experience_earned"]) == (64, 64)
    assert r.json["member"]["points"] == 64 and r.json["member"]["tier"]
    assert r.json["member"]["expiring_points"]["points"] == 64
    again = client.post("/api/v1/orders", headers=headers, json=_order(card_no, store_code))
    assert again.status_code == 200 and again.json["order_id"] == r.json["order_id"]
    assert again.json["member"]["points"] == 64


def test_refund_reverses_once(client, till, member):
    headers, store_code = till
    card_no = db.session.merge(member).cards[0].number
    client.post("/api/v1/orders", headers=headers, json=_order(card_no, store_code))
    body = {"refund_id": "RF-1", "lines": [{"line_id": "1", "amount": 3200}]}
    first = client.post("/api/v1/orders/POS-1/refunds", headers=headers, json=body)
    again = client.post("/api/v1/orders/POS-1/refunds", headers=headers, json=body)
    assert first.json["points_reversed"] == 32 and again.json["points_reversed"] == 32
    r = client.get(f"/api/v1/members/lookup?card_no={card_no}", headers=headers)
    assert r.json["points"] == 32


@pytest.mark.parametrize("body,status,code", [
    ({"refund_id": "x", "lines": [{"line_id": "9", "amount": 1}]}, 422, "unknown_line"),
    ({"refund_id": "x", "lines": [{"line_id": "1", "amount": 99999}]}, 422,
     "refund_too_large"),
])
def test_bad_refunds_are_refused(client, till, member, body, status, code):
    headers, store_code = till
    card_no = db.session.merge(member).cards[0].number
    client.post("/api/v1/orders", headers=headers, json=_order(card_no, store_code))
    r = client.post("/api/v1/orders/POS-1/refunds", headers=headers, json=body)
    assert r.status_code == status and r.json["code"] == code


def test_unknown_order_and_card(client, till):
    headers, store_code = till
    r = client.post("/api/v1/orders/NOPE/refunds", headers=headers, json={"refund_id": "x"})
    assert r.status_code == 404 and r.json["code"] == "unknown_order"
    r = client.post("/api/v1/orders", headers=headers, json=_order("1111", store_code))
    assert r.status_code == 404 and r.json["code"] == "unknown_card"


def test_order_time_needs_an_offset(client, till, member):
    headers, store_code = till
    card_no = db.session.merge(member).cards[0].number
    r = client.post("/api/v1/orders", headers=headers,
                    json=_order(card_no, store_code, occurred_at="2026-05-03T14:30:00"))
    assert r.status_code == 422 and r.json["field"] == "occurred_at"


def test_redeem_points_idempotent_and_insufficient(client, till, member):
    headers, store_code = till
    card_no = db.session.merge(member).cards[0].number
    client.post("/api/v1/orders", headers=headers, json=_order(card_no, store_code))
    body = {"card_no": card_no, "points": 10, "reference": "R-1"}
    assert client.post("/api/v1/points/redeem", headers=headers, json=body).json["points"] == 54
    assert client.post("/api/v1/points/redeem", headers=headers, json=body).json["points"] == 54
    r = client.post("/api/v1/points/redeem", headers=headers,
                    json={**body, "points": 1000, "reference": "R-2"})
    assert r.status_code == 409 and r.json["code"] == "insufficient_points"


def test_lookup_by_phone(client, till, member):
    headers, _store = till
    r = client.get(f"/api/v1/members/lookup?phone={member.mobile[3:]}", headers=headers)
    assert r.status_code == 200 and r.json["card_no"] == db.session.merge(member).cards[0].number


def test_till_adds_a_member_or_answers_409_with_the_card(client, till, member, store):
    headers, _store = till
    r = client.post("/api/v1/members", headers=headers,
                    json={"phone": "13912340404", "name": "Walk In"})
    assert r.status_code == 201 and len(r.json["card_no"]) == 16
    new = db.session.query(Member).filter_by(mobile="+8613912340404").one()
    assert new.enroll_store_id == store.id and new.is_member
    r = client.post("/api/v1/members", headers=headers, json={"phone": member.mobile})
    assert r.status_code == 409 and r.json["member"]["card_no"] == \
        db.session.merge(member).cards[0].number


def test_booleans_are_not_amounts(client, till, member):
    headers, store_code = till
    card_no = db.session.merge(member).cards[0].number
    body = _order(card_no, store_code)
    body["lines"][0]["amount"] = True
    r = client.post("/api/v1/orders", headers=headers, json=body)
    assert r.status_code == 422 and r.json["code"] == "invalid_field"


def test_a_retried_order_answers_for_its_own_member(client, till, member, other_member):
    headers, store_code = till
    card_no = db.session.merge(member).cards[0].number
    client.post("/api/v1/orders", headers=headers, json=_order(card_no, store_code))
    wrong = db.session.merge(other_member).cards[0].number
    r = client.post("/api/v1/orders", headers=headers, json=_order(wrong, store_code))
    assert r.status_code == 200 and r.json["member"]["card_no"] == card_no


def test_order_ids_with_slashes_can_be_refunded(client, till, member):
    headers, store_code = till
    card_no = db.session.merge(member).cards[0].number
    client.post("/api/v1/orders", headers=headers,
                json=_order(card_no, store_code, external_id="2026/05/03-7"))
    r = client.post("/api/v1/orders/2026/05/03-7/refunds", headers=headers,
                    json={"refund_id": "R"})
    assert r.status_code == 200 and r.json["points_reversed"] == 64


def test_a_bad_phone_is_reported_as_phone(client, till):
    headers, _store = till
    r = client.post("/api/v1/members", headers=headers, json={"phone": "12"})
    assert r.status_code == 422 and r.json["field"] == "phone"


def test_events_through_the_api(client, till, member, owner):
    from portal.loyalty import events

    events.save_event(db.session, key="review", name="Review", points=20, experience=0,
                      daily_cap=1, monthly_cap=None, total_cap=None, operator_id=owner.id)
    headers, _store = till
    card_no = db.session.merge(member).cards[0].number
    body = {"card_no": card_no, "event": "review", "reference": "rv-1"}
    r = client.post("/api/v1/events", headers=headers, json=body)
    assert r.json["rewarded"] is True and r.json["member"]["points"] == 20
    r = client.post("/api/v1/events", headers=headers, json={**body, "reference": "rv-2"})
    assert r.json == {**r.json, "rewarded": False, "reason_code": "cap_reached"}


def test_owner_defines_an_event(owner_client):
    r = owner_client.post("/admin/loyalty/events", data={
        "name": "Check-in", "key": "check_in", "points": "5", "experience": "1",
        "daily_cap": "1", "monthly_cap": "", "total_cap": ""})
    assert r.status_code == 303
    assert "check_in" in owner_client.get("/admin/loyalty/events").get_data(as_text=True)


def test_booleans_are_not_refund_amounts(client, till, member):
    headers, store_code = till
    card_no = db.session.merge(member).cards[0].number
    client.post("/api/v1/orders", headers=headers, json=_order(card_no, store_code))
    r = client.post("/api/v1/orders/POS-1/refunds", headers=headers,
                    json={"refund_id": "R", "lines": [{"line_id": "1", "amount": True}]})
    assert r.status_code == 422
