"""Gift cards over the till API: balance, charges, refunds of charges, recharges."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from portal import clock
from portal.api import services as api_clients
from portal.db import db
from portal.giftcards import cards, spending
from tests.factories import StoreFactory
from tests.unit.test_giftcard_spending import make_card


@pytest.fixture
def till(store):
    _client, key = api_clients.create_client(db.session, name="Till", store_code=store.code,
                                             channel="POS")
    return {"Authorization": f"Bearer {key}"}, store.code


@pytest.fixture
def card(session):
    return make_card(session)


def _charge(store_code, amount=3000, key="K-1", **extra):
    return {"amount": amount, "currency": "CNY", "order_external_id": "POS-1",
            "store_code": store_code, "channel": "POS", "idempotency_key": key, **extra}


def _balance(card):
    db.session.expire_all()
    return cards.balance(db.session, card)


def test_the_balance_shows_a_masked_number_status_and_expiry(client, till, session):
    clock.freeze(datetime(2026, 3, 1, 9, tzinfo=UTC))
    card = make_card(session, validity_days=365)
    headers, _store = till
    r = client.get(f"/api/v1/giftcards/{card.number}", headers=headers)
    assert r.status_code == 200
    assert r.json == {"number": "*" * 12 + card.number[-4:], "currency": "CNY",
                      "balance": 10000, "status": "active",
                      "expires_at": "2027-03-01T09:00:00+00:00"}
    clock.advance(timedelta(days=366))
    assert client.get(f"/api/v1/giftcards/{card.number}", headers=headers).json["status"] \
        == "expired"


def test_the_balance_of_an_unknown_card_is_404_and_needs_a_key(client, till, card):
    headers, _store = till
    r = client.get("/api/v1/giftcards/1111222233334444", headers=headers)
    assert r.status_code == 404 and r.json["code"] == "unknown_card"
    assert client.get(f"/api/v1/giftcards/{card.number}").status_code == 401


def test_a_charge_answers_201_then_200_on_replay(client, till, card):
    headers, store_code = till
    url = f"/api/v1/giftcards/{card.number}/charges"
    first = client.post(url, headers=headers, json=_charge(store_code))
    assert first.status_code == 201
    assert (first.json["amount"], first.json["balance_after"], first.json["currency"]) == (
        3000, 7000, "CNY")
    assert first.json["number"].endswith(card.number[-4:]) and first.json["refunded"] == 0
    assert first.json["order_external_id"] == "POS-1"
    again = client.post(url, headers=headers, json=_charge(store_code))
    assert again.status_code == 200 and again.json == first.json
    conflict = client.post(url, headers=headers, json=_charge(store_code, amount=2000))
    assert conflict.status_code == 409 and conflict.json["code"] == "idempotency_conflict"
    assert _balance(card) == 7000


def test_the_same_key_at_another_store_is_another_charge(client, till, card):
    headers, store_code = till
    other = StoreFactory()
    _c, key = api_clients.create_client(db.session, name="Other", store_code=other.code,
                                        channel="POS")
    url = f"/api/v1/giftcards/{card.number}/charges"
    a = client.post(url, headers=headers, json=_charge(store_code, amount=1000))
    b = client.post(url, headers={"Authorization": f"Bearer {key}"},
                    json=_charge(other.code, amount=1000))
    assert (a.status_code, b.status_code) == (201, 201)
    assert _balance(card) == 8000


def test_a_short_balance_is_409_and_nothing_is_charged(client, till, card):
    headers, store_code = till
    r = client.post(f"/api/v1/giftcards/{card.number}/charges", headers=headers,
                    json=_charge(store_code, amount=10001))
    assert r.status_code == 409 and r.json["code"] == "insufficient_balance"
    assert r.headers["Content-Type"] == "application/problem+json"
    assert (r.json["balance"], r.json["amount"], r.json["currency"]) == (10000, 10001, "CNY")
    assert _balance(card) == 10000


def test_frozen_expired_and_other_stores_cards_are_409(client, till, session, owner):
    headers, store_code = till
    clock.freeze(datetime(2026, 3, 1, 9, tzinfo=UTC))
    frozen = make_card(session)
    spending.freeze(session, frozen.id, operator_id=owner.id, reason="lost")
    expired = make_card(session, validity_days=1)
    elsewhere = make_card(session, store_ids=[StoreFactory().id])
    clock.advance(timedelta(days=2))
    for card, code in ((frozen, "card_frozen"), (expired, "card_expired"),
                       (elsewhere, "wrong_store")):
        r = client.post(f"/api/v1/giftcards/{card.number}/charges", headers=headers,
                        json=_charge(store_code))
        assert (r.status_code, r.json["code"]) == (409, code)


def test_an_unknown_card_is_404(client, till):
    headers, store_code = till
    r = client.post("/api/v1/giftcards/1111222233334444/charges", headers=headers,
                    json=_charge(store_code))
    assert r.status_code == 404 and r.json["code"] == "unknown_card"


@pytest.mark.parametrize("change, field", [
    ({"amount": 0}, "amount"), ({"amount": 12.5}, "amount"), ({"amount": "100"}, "amount"),
    ({"amount": True}, "amount"), ({"currency": "EUR"}, "currency"),
    ({"currency": None}, "currency"), ({"idempotency_key": ""}, "idempotency_key"),
    ({"idempotency_key": "x" * 65}, "idempotency_key")])
def test_invalid_fields_are_422(client, till, card, change, field):
    headers, store_code = till
    r = client.post(f"/api/v1/giftcards/{card.number}/charges", headers=headers,
                    json={**_charge(store_code), **change})
    assert r.status_code == 422 and r.json["code"] == "invalid_field"
    assert r.json["field"] == field
    assert _balance(card) == 10000


def test_another_stores_code_is_403(client, till, card):
    headers, _store = till
    r = client.post(f"/api/v1/giftcards/{card.number}/charges", headers=headers,
                    json=_charge("NOPE"))
    assert r.status_code == 403 and r.json["code"] == "forbidden_scope"


def test_a_refund_answers_201_once_then_200(client, till, card):
    headers, store_code = till
    charge = client.post(f"/api/v1/giftcards/{card.number}/charges", headers=headers,
                         json=_charge(store_code, amount=4000)).json
    url = f"/api/v1/giftcards/charges/{charge['charge_id']}/refund"
    r = client.post(url, headers=headers, json={"amount": 1500, "refund_key": "R1"})
    assert r.status_code == 201
    assert (r.json["amount"], r.json["balance_after"], r.json["refund_key"]) == (
        1500, 7500, "R1")
    assert r.json["charge"]["refunded"] == 1500
    again = client.post(url, headers=headers, json={"amount": 1500, "refund_key": "R1"})
    assert again.status_code == 200 and again.json["refund_id"] == r.json["refund_id"]
    conflict = client.post(url, headers=headers, json={"amount": 100, "refund_key": "R1"})
    assert conflict.status_code == 409 and conflict.json["code"] == "idempotency_conflict"
    rest = client.post(url, headers=headers, json={"refund_key": "R2"})
    assert rest.status_code == 201 and rest.json["amount"] == 2500
    over = client.post(url, headers=headers, json={"refund_key": "R3"})
    assert over.status_code == 422 and over.json["code"] == "refund_too_large"
    assert over.json["left"] == 0
    assert _balance(card) == 10000


def test_only_the_charging_store_can_refund(client, till, card):
    headers, store_code = till
    charge = client.post(f"/api/v1/giftcards/{card.number}/charges", headers=headers,
                         json=_charge(store_code)).json
    other = StoreFactory()
    _c, key = api_clients.create_client(db.session, name="Other", store_code=other.code,
                                        channel="POS")
    r = client.post(f"/api/v1/giftcards/charges/{charge['charge_id']}/refund",
                    headers={"Authorization": f"Bearer {key}"}, json={"refund_key": "R"})
    assert r.status_code == 404 and r.json["code"] == "unknown_charge"
    r = client.post(f"/api/v1/giftcards/charges/{charge['charge_id']}/refund",
                    headers=headers, json={"amount": 0, "refund_key": "R"})
    assert r.status_code == 422 and r.json["field"] == "amount"


def _recharge(store_code, amount=5000, key="T-1"):
    return {"amount": amount, "currency": "CNY", "store_code": store_code, "channel": "POS",
            "idempotency_key": key}


def test_a_recharge_answers_201_then_200_where_allowed(client, till, session):
    headers, store_code = till
    card = make_card(session, pos_recharge=True)
    url = f"/api/v1/giftcards/{card.number}/recharges"
    r = client.post(url, headers=headers, json=_recharge(store_code))
    assert r.status_code == 201
    assert (r.json["amount"], r.json["balance_after"]) == (5000, 15000)
    again = client.post(url, headers=headers, json=_recharge(store_code))
    assert again.status_code == 200 and again.json == r.json
    assert _balance(card) == 15000


def test_a_card_without_pos_recharge_is_409_not_rechargeable(client, till, card):
    headers, store_code = till
    r = client.post(f"/api/v1/giftcards/{card.number}/recharges", headers=headers,
                    json=_recharge(store_code))
    assert r.status_code == 409 and r.json["code"] == "not_rechargeable"
    assert _balance(card) == 10000
