"""The basket quote over the till API: a read that answers 200 and changes nothing."""
from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from portal import clock
from portal.api import services as api_clients
from portal.benefits.models import Benefit
from portal.db import db
from portal.loyalty.models import EarningRule, Order

FRIDAY_NOON = datetime(2026, 3, 6, 4, 0, tzinfo=UTC)       # Friday 12:00 in Shanghai


@pytest.fixture(autouse=True)
def _shanghai():
    clock.set_timezone("Asia/Shanghai")
    clock.freeze(FRIDAY_NOON)
    yield
    clock.set_timezone("UTC")


@pytest.fixture
def till(store, plan):
    db.session.add(EarningRule(plan_id=plan.id, points_amount=1, points_per_minor=100,
                               experience_amount=1, experience_per_minor=100))
    db.session.commit()
    _client, key = api_clients.create_client(db.session, name="Till", store_code=store.code,
                                             channel="POS")
    return {"Authorization": f"Bearer {key}"}, store.code


@pytest.fixture
def card_no(member):
    return db.session.merge(member).cards[0].number


def _add(kind, **kw):
    db.session.add(Benefit(kind=kind, name=kw.pop("name", kind), currency="CNY", **kw))
    db.session.commit()


def _body(card_no, store_code, **extra):
    return {"card_no": card_no, "store_code": store_code, "channel": "POS",
            "lines": [{"product_id": "LATTE", "category": "coffee", "quantity": 2,
                       "unit_price": 3000},
                      {"product_id": "BEANS", "category": "grocery", "quantity": 1,
                       "unit_price": 8000}], **extra}


def test_quote_answers_lines_total_points_and_reasons(client, till, card_no):
    headers, store_code = till
    _add("member_price", name="Latte price", prices=[{"product_id": "LATTE",
                                                      "price_minor": 2500}])
    _add("discount", name="Ten off", discount_bp=1000,
         exclusions={"mode": "categories", "values": ["grocery"]})
    _add("member_day", name="Friday", multiplier_bp=20000,
         schedule={"frequency": "weekly", "days": [4]})
    _add("promotion", name="20 off 100", threshold_minor=10000, off_minor=2000)
    _add("discount", name="Shop only", discount_bp=3000, channels=["ONLINE"])
    r = client.post("/api/v1/quotes", headers=headers, json=_body(card_no, store_code))
    assert r.status_code == 200, r.json
    latte, beans = r.json["lines"]
    assert (latte["amount"], latte["discount"], latte["offer"]["name"],
            latte["offer"]["member_unit_price"]) == (6000, 1000, "Latte price", 2500)
    assert latte["not_applied"] == [{"benefit_id": latte["not_applied"][0]["benefit_id"],
                                     "name": "Ten off", "kind": "discount",
                                     "reason": "not_better"}]
    assert beans["offer"] is None
    assert [x["reason"] for x in beans["not_applied"]] == ["excluded_category"]
    assert r.json["promotion"]["discount"] == 2000
    assert (r.json["subtotal"], r.json["total"]) == (14000, 11000)
    assert latte["final_amount"] + beans["final_amount"] == 11000
    assert r.json["points"]["points"] == 220 and r.json["points"]["multiplier_bp"] == 20000
    assert {(x["name"], x["reason"]) for x in r.json["not_applied"]} == {
        ("Shop only", "wrong_channel")}
    assert db.session.query(Order).count() == 0


def test_quote_at_a_given_time_and_balance(client, till, card_no, member):
    headers, store_code = till
    m = db.session.merge(member)
    m.born_on = date(1990, 12, 31)
    db.session.commit()
    _add("birthday", name="Birthday", discount_bp=2000, birthday_window="week",
         restriction={"rule": "balance_below_amount", "amount_minor": 10000})
    body = _body(card_no, store_code, at="2026-01-02T12:00:00+08:00", prepaid_balance=10000)
    r = client.post("/api/v1/quotes", headers=headers, json=body)
    assert r.json["lines"][0]["discount"] == 1200 and r.json["prepaid_balance"] == 10000
    body["prepaid_balance"] = 9999
    r = client.post("/api/v1/quotes", headers=headers, json=body)
    assert r.json["lines"][0]["offer"] is None
    assert r.json["not_applied"][0]["reason"] == "restriction_rule"


@pytest.mark.parametrize("change,field", [
    ({"card_no": None}, "card_no"),
    ({"at": "2026-01-02T12:00:00"}, "at"),
    ({"at": "tomorrow"}, "at"),
    ({"prepaid_balance": -1}, "prepaid_balance"),
    ({"prepaid_balance": 12.5}, "prepaid_balance"),
    ({"prepaid_balance": True}, "prepaid_balance"),
    ({"lines": []}, "lines"),
    ({"lines": "LATTE"}, "lines"),
    ({"lines": [{"product_id": "A", "quantity": 1, "unit_price": 1}] * 201}, "lines"),
    ({"lines": [{"product_id": "A", "quantity": 0, "unit_price": 1}]}, "lines[0]"),
    ({"lines": [{"product_id": "A", "quantity": 1, "unit_price": -1}]}, "lines[0]"),
    ({"lines": [{"product_id": "A", "quantity": 1, "unit_price": 1.5}]}, "lines[0]"),
    ({"lines": [{"product_id": "A", "quantity": True, "unit_price": 1}]}, "lines[0]"),
    ({"lines": [{"product_id": "", "quantity": 1, "unit_price": 1}]}, "lines[0]"),
    ({"lines": [{"quantity": 1, "unit_price": 1}]}, "lines[0]"),
    ({"lines": [{"product_id": "A", "quantity": 1, "unit_price": 1}, 7]}, "lines[1]"),
])
def test_quote_bad_field_is_422_with_the_field(client, till, card_no, change, field):
    headers, store_code = till
    body = {**_body(card_no, store_code), **change}
    r = client.post("/api/v1/quotes", headers=headers, json=body)
    assert r.status_code == 422 and r.json["code"] == "invalid_field"
    assert r.json["field"] == field
    assert r.headers["Content-Type"].startswith("application/problem+json")


def test_quote_unknown_card_is_404(client, till):
    headers, store_code = till
    r = client.post("/api/v1/quotes", headers=headers,
                    json=_body("0000 0000 0000 0000", store_code))
    assert r.status_code == 404 and r.json["code"] == "unknown_card"


def test_quote_other_store_or_channel_is_403(client, till, card_no):
    headers, store_code = till
    for change in ({"store_code": "ELSEWHERE"}, {"channel": "ONLINE"}):
        r = client.post("/api/v1/quotes", headers=headers,
                        json={**_body(card_no, store_code), **change})
        assert r.status_code == 403 and r.json["code"] == "forbidden_scope"


def test_quote_needs_a_key_and_a_json_body(client, till, card_no):
    headers, store_code = till
    assert client.post("/api/v1/quotes", json=_body(card_no, store_code)).status_code == 401
    r = client.post("/api/v1/quotes", headers=headers, data="x")
    assert r.status_code == 400


def test_quote_frozen_card_is_409(client, till, card_no, member):
    headers, store_code = till
    db.session.merge(member).cards[0].status = "frozen"
    db.session.commit()
    r = client.post("/api/v1/quotes", headers=headers, json=_body(card_no, store_code))
    assert r.status_code == 409 and r.json["code"] == "card_inactive"


def test_quote_query_count_same_for_1_and_30_lines(client, till, card_no, app):
    from sqlalchemy import event

    headers, store_code = till
    for i in range(10):
        _add("discount", name=f"D{i}", discount_bp=100 * (i + 1),
             restriction={"rule": "balance_below_due"})

    def count(n):
        body = _body(card_no, store_code)
        body["lines"] = [{"product_id": f"P{i}", "category": "c", "quantity": 1,
                          "unit_price": 1000} for i in range(n)]
        total = 0

        def on_execute(*_a):
            nonlocal total
            total += 1

        event.listen(db.engine, "before_cursor_execute", on_execute)
        try:
            assert client.post("/api/v1/quotes", headers=headers, json=body).status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", on_execute)
        return total

    count(1)  # the key's last-used time is written once a minute at most
    assert count(1) == count(30)
