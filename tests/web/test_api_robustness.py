"""What the API fuzz tests (tests/fuzz) found: each case answered 500 or disagreed with
openapi.json before its fix. Plain requests, so a failure reads without Schemathesis."""
from __future__ import annotations

import pytest

from portal.api.views import MAX_AMOUNT, MAX_ID
from portal.db import db
from portal.wallet import balance as wallet
from tests.web.test_api_charges import _charge, card, till  # noqa: F401 - fixtures

BEYOND_THE_COLUMN = 2**31


def test_a_405_names_the_allowed_methods(client, till):  # noqa: F811
    headers, _store = till
    r = client.get("/api/v1/coupons/validate", headers=headers)
    assert r.status_code == 405 and r.mimetype == "application/problem+json"
    assert r.headers["Allow"] == "OPTIONS, POST"


def test_a_405_on_a_page_names_the_allowed_methods_too(client):
    r = client.delete("/")
    assert r.status_code == 405 and "GET" in r.headers["Allow"]


@pytest.mark.parametrize("path", [
    f"/api/v1/charges/{BEYOND_THE_COLUMN}/refund",
    f"/api/v1/giftcards/charges/{BEYOND_THE_COLUMN}/refund",
    f"/api/v1/redemptions/{BEYOND_THE_COLUMN}/rollback",
])
def test_an_id_beyond_its_column_is_no_such_row(client, till, path):  # noqa: F811
    headers, _store = till
    r = client.post(path, headers=headers, json={"refund_key": "R-1"})
    assert r.status_code == 404 and r.json["code"] == "not_found"


def test_an_id_at_the_column_limit_is_looked_up(client, till):  # noqa: F811
    headers, _store = till
    r = client.post(f"/api/v1/charges/{MAX_ID}/refund", headers=headers,
                    json={"refund_key": "R-1"})
    assert r.status_code == 404 and r.json["code"] == "unknown_charge"


def test_points_beyond_the_ceiling_are_invalid(client, till, member):  # noqa: F811
    headers, _store = till
    card_no = db.session.merge(member).cards[0].number
    r = client.post("/api/v1/points/redeem", headers=headers,
                    json={"card_no": card_no, "points": 2347119649053742163013576687616,
                          "reference": "R-1"})
    assert r.status_code == 422 and r.json["field"] == "points"


@pytest.mark.parametrize("amount,status", [(MAX_AMOUNT, 409), (MAX_AMOUNT + 1, 422)])
def test_a_charge_amount_has_a_ceiling(client, till, card, amount, status):  # noqa: F811
    headers, store_code = till
    r = client.post(f"/api/v1/cards/{card.number}/charges", headers=headers,
                    json=_charge(store_code, amount=amount))
    assert r.status_code == status  # at the ceiling: only short of balance


def test_a_whole_number_written_with_a_fraction_is_an_integer(client, till, card):  # noqa: F811
    headers, store_code = till
    r = client.post(f"/api/v1/cards/{card.number}/charges", headers=headers,
                    json=_charge(store_code, amount=1200.0))
    assert r.status_code == 201 and r.json["amount"] == 1200
    assert isinstance(r.json["amount"], int)


@pytest.mark.parametrize("where", ["body", "query", "path"])
def test_nul_characters_are_refused(client, till, card, where):  # noqa: F811
    headers, store_code = till
    if where == "body":
        r = client.post(f"/api/v1/cards/{card.number}/charges", headers=headers,
                        json=_charge(store_code, key="K\x00"))
    elif where == "query":
        r = client.get("/api/v1/members/lookup?card_no=1%00", headers=headers)
    else:
        r = client.get("/api/v1/cards/1%002/balance", headers=headers)
    assert r.status_code == 400 and r.json["code"] == "bad_request"
    assert wallet.balance(db.session, card.id).total == 12000


def test_nul_characters_in_a_key_are_a_wrong_key(client, card):  # noqa: F811
    r = client.get(f"/api/v1/cards/{card.number}/balance",
                   headers={"Authorization": "Bearer tk_\x00"})
    assert r.status_code == 401


def _validate(till, **line):  # noqa: F811
    headers, store_code = till
    return {"headers": headers, "json": {
        "code": "NOPE-NOPE-NOPE", "store_code": store_code, "channel": "POS",
        "lines": [{"amount": 100, **line}]}}


@pytest.mark.parametrize("line", [{"product_id": [None]}, {"category": 5},
                                  {"quantity": 10**9}, {"amount": MAX_AMOUNT + 1}])
def test_coupon_lines_are_checked_not_coerced(client, till, line):  # noqa: F811
    r = client.post("/api/v1/coupons/validate", **_validate(till, **line))
    assert r.status_code == 422 and r.json["field"] == "lines[0]"


def test_coupon_line_strings_may_be_null(client, till):  # noqa: F811
    r = client.post("/api/v1/coupons/validate", **_validate(till, product_id=None))
    assert r.status_code == 200 and r.json["reason_code"] == "unknown"


def test_a_card_number_must_be_a_string(client, till):  # noqa: F811
    headers, store_code = till
    r = client.post("/api/v1/coupons/validate", headers=headers, json={
        "code": "NOPE", "store_code": store_code, "channel": "POS", "card_no": True})
    assert r.status_code == 422 and r.json["field"] == "card_no"


def test_a_new_members_name_must_be_a_string(client, till):  # noqa: F811
    headers, _store = till
    r = client.post("/api/v1/members", headers=headers,
                    json={"phone": "+8613912340404", "name": {"first": "Ada"}})
    assert r.status_code == 422 and r.json["field"] == "name"


@pytest.mark.parametrize("line", [{"line_id": 1, "amount": 100},
                                  {"line_id": "1", "amount": 100, "name": ["Latte"]},
                                  {"line_id": "1", "amount": MAX_AMOUNT + 1}])
def test_order_lines_are_checked_not_coerced(client, till, member, line):  # noqa: F811
    headers, store_code = till
    r = client.post("/api/v1/orders", headers=headers, json={
        "external_id": "O-1", "card_no": db.session.merge(member).cards[0].number,
        "store_code": store_code, "channel": "POS", "occurred_at": "2026-05-03T14:30:00Z",
        "currency": "CNY", "lines": [line]})
    assert r.status_code == 422 and r.json["field"] == "lines"


def test_refund_lines_must_be_a_list(client, till):  # noqa: F811
    headers, _store = till
    r = client.post("/api/v1/orders/O-1/refunds", headers=headers,
                    json={"refund_id": "R-1", "lines": {"line_id": "1", "amount": 1}})
    assert r.status_code == 422 and r.json["field"] == "lines"


def test_an_order_whose_lines_add_up_past_the_ceiling_is_invalid(client, till, member):  # noqa: F811
    headers, store_code = till
    r = client.post("/api/v1/orders", headers=headers, json={
        "external_id": "O-1", "card_no": db.session.merge(member).cards[0].number,
        "store_code": store_code, "channel": "POS", "occurred_at": "2026-05-03T14:30:00Z",
        "currency": "CNY", "lines": [{"line_id": str(i), "amount": MAX_AMOUNT}
                                     for i in range(30)]})
    assert r.status_code == 422 and r.json["field"] == "lines"


def test_coupon_lines_adding_up_past_the_ceiling_are_invalid(client, till):  # noqa: F811
    headers, store_code = till
    r = client.post("/api/v1/coupons/validate", headers=headers, json={
        "code": "NOPE", "store_code": store_code, "channel": "POS",
        "lines": [{"amount": MAX_AMOUNT}] * 30})
    assert r.status_code == 422 and r.json["field"] == "lines"


def test_a_recharge_past_what_a_balance_can_hold_is_invalid(client, session):
    from portal.api import services as api_clients
    from portal.ledger import MAX_BALANCE
    from tests.factories import StoreFactory
    from tests.unit.test_giftcard_spending import make_card

    store = StoreFactory()
    _c, key = api_clients.create_client(session, name="T", store_code=store.code,
                                        channel="POS")
    gift = make_card(session, face=MAX_BALANCE - 10, pos_recharge=True)
    r = client.post(f"/api/v1/giftcards/{gift.number}/recharges",
                    headers={"Authorization": f"Bearer {key}"},
                    json={"amount": 100, "currency": "CNY", "idempotency_key": "T-1",
                          "store_code": store.code, "channel": "POS"})
    assert r.status_code == 422 and r.json["field"] == "amount"


@pytest.mark.parametrize("lines", [["x"], [{"product_id": 5, "amount": 100}], [None]])
def test_charge_lines_that_are_not_item_objects_are_invalid(client, till, card, lines):  # noqa: F811
    headers, store_code = till
    r = client.post(f"/api/v1/cards/{card.number}/charges", headers=headers,
                    json=_charge(store_code, lines=lines))
    assert r.status_code == 422 and r.json["field"] == "lines"


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00",
                                  "1969-12-31T23:59:59Z", "2100-01-01T00:00:00Z"])
def test_times_outside_1970_to_2099_are_invalid(client, till, member, when):  # noqa: F811
    headers, store_code = till
    card_no = db.session.merge(member).cards[0].number
    r = client.post("/api/v1/orders", headers=headers, json={
        "external_id": "O-1", "card_no": card_no, "store_code": store_code, "channel": "POS",
        "occurred_at": when, "currency": "CNY", "lines": [{"line_id": "1", "amount": 100}]})
    assert r.status_code == 422 and r.json["field"] == "occurred_at"
    r = client.post("/api/v1/quotes", headers=headers, json={
        "card_no": card_no, "store_code": store_code, "channel": "POS", "at": when,
        "lines": [{"product_id": "LATTE", "quantity": 1, "unit_price": 100}]})
    assert r.status_code == 422 and r.json["field"] == "at"


def test_a_lone_surrogate_is_refused_like_a_nul(client, till, card):  # noqa: F811
    headers, store_code = till
    r = client.post(f"/api/v1/cards/{card.number}/charges", headers=headers,
                    json=_charge(store_code, key="K\ud800"))
    assert r.status_code == 400 and r.json["code"] == "bad_request"
    assert wallet.balance(db.session, card.id).total == 12000


def _big_order(member, store_code, amount: int) -> dict:
    return {"external_id": "O-BIG", "card_no": db.session.merge(member).cards[0].number,
            "store_code": store_code, "channel": "POS", "occurred_at": "2026-05-03T14:30:00Z",
            "currency": "CNY", "lines": [{"line_id": "1", "amount": amount}],
            "payments": [{"method": "card", "amount": amount}]}


def test_an_order_of_a_currency_with_tiny_minor_units_is_recorded(client, till, member):  # noqa: F811
    # 500,000,000 minor units: ¥5,000,000.00 here, but only about US$30,000 in rupiah.
    headers, store_code = till
    r = client.post("/api/v1/orders", headers=headers,
                    json=_big_order(member, store_code, 500_000_000))
    assert r.status_code == 201


def test_an_order_earning_past_what_a_balance_holds_is_refused_whole(
        client, till, member, plan):  # noqa: F811
    from sqlalchemy import func, select

    from portal.loyalty.models import EarningRule, Order

    db.session.add(EarningRule(plan_id=plan.id, points_amount=1000, points_per_minor=1))
    db.session.commit()
    headers, store_code = till
    r = client.post("/api/v1/orders", headers=headers,
                    json=_big_order(member, store_code, 10**7))
    assert r.status_code == 422 and r.json["code"] == "balance_too_large"
    assert db.session.scalar(select(func.count()).select_from(Order)) == 0
