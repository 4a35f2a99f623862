"""The prepaid balance over the till API: balance, charges, refunds of charges."""
from __future__ import annotations

import sys

import pytest

import portal.wallet
from portal.api import services as api_clients
from portal.db import db, transaction
from portal.members.models import CardStatus
from portal.wallet import balance as wallet
from tests.factories import StoreFactory


@pytest.fixture
def till(store):
    _client, key = api_clients.create_client(db.session, name="Till", store_code=store.code,
                                             channel="POS")
    return {"Authorization": f"Bearer {key}"}, store.code


@pytest.fixture
def card(member):
    card = db.session.merge(member).cards[0]
    with transaction(db.session):
        wallet.credit(db.session, card, principal=10000, bonus=2000, key="fund",
                      reason="topup", source=("test", 1))
    return card


def _charge(store_code, amount=6000, key="K-1", **extra):
    return {"amount": amount, "currency": "CNY", "order_external_id": "POS-1",
            "store_code": store_code, "channel": "POS", "idempotency_key": key, **extra}


def test_balance_answers_total_split_and_spendable(client, till, card):
    headers, _store = till
    r = client.get(f"/api/v1/cards/{card.number}/balance", headers=headers)
    assert r.status_code == 200
    assert r.json == {"card_no": card.number, "currency": "CNY", "balance": 12000,
                      "principal": 10000, "bonus": 2000, "spendable_now": 12000,
                      "restricted_to_items": 0}


def test_balance_of_an_unknown_card_is_404(client, till):
    headers, _store = till
    r = client.get("/api/v1/cards/1111/balance", headers=headers)
    assert r.status_code == 404 and r.json["code"] == "unknown_card"


def test_balance_needs_a_key(client, card):
    assert client.get(f"/api/v1/cards/{card.number}/balance").status_code == 401


def test_charge_pays_principal_first_then_bonus(client, till, card):
    headers, store_code = till
    r = client.post(f"/api/v1/cards/{card.number}/charges", headers=headers,
                    json=_charge(store_code, amount=11000))
    assert r.status_code == 201
    assert (r.json["amount"], r.json["principal"], r.json["bonus"]) == (11000, 10000, 1000)
    assert r.json["balance_after"]["balance"] == 1000
    assert r.json["balance_after"]["bonus"] == 1000 and r.json["order_external_id"] == "POS-1"


def test_a_replayed_charge_answers_200_with_the_same_body(client, till, card):
    headers, store_code = till
    url = f"/api/v1/cards/{card.number}/charges"
    first = client.post(url, headers=headers, json=_charge(store_code))
    again = client.post(url, headers=headers, json=_charge(store_code))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json == first.json
    assert wallet.balance(db.session, card.id).total == 6000


def test_the_same_key_with_another_amount_is_409(client, till, card):
    headers, store_code = till
    url = f"/api/v1/cards/{card.number}/charges"
    client.post(url, headers=headers, json=_charge(store_code))
    r = client.post(url, headers=headers, json=_charge(store_code, amount=5000))
    assert r.status_code == 409 and r.json["code"] == "idempotency_conflict"


def test_the_same_key_at_another_store_is_another_charge(client, till, card):
    headers, store_code = till
    other = StoreFactory()
    _c, key = api_clients.create_client(db.session, name="Other", store_code=other.code,
                                        channel="POS")
    url = f"/api/v1/cards/{card.number}/charges"
    a = client.post(url, headers=headers, json=_charge(store_code, amount=1000))
    b = client.post(url, headers={"Authorization": f"Bearer {key}"},
                    json=_charge(other.code, amount=1000))
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json["charge_id"] != b.json["charge_id"]


def test_a_short_balance_is_409_with_balance_and_offers(client, till, card, monkeypatch):
    import types

    headers, store_code = till
    seen = {}

    def offers_for_bill(session, *, card, amount_minor, store_id, channel):
        seen.update(card=card.id, amount=amount_minor, channel=channel)
        return [{"tier_id": 1}]

    fake = types.SimpleNamespace(offers_for_bill=offers_for_bill)
    monkeypatch.setitem(sys.modules, "portal.wallet.smart", fake)
    monkeypatch.setattr(portal.wallet, "smart", fake, raising=False)
    r = client.post(f"/api/v1/cards/{card.number}/charges", headers=headers,
                    json=_charge(store_code, amount=12001))
    assert r.status_code == 409 and r.json["code"] == "insufficient_balance"
    assert (r.json["balance"], r.json["spendable_now"]) == (12000, 12000)
    assert r.json["offers"] == [{"tier_id": 1}]
    assert seen == {"card": card.id, "amount": 12001, "channel": "POS"}
    assert wallet.balance(db.session, card.id).total == 12000


def test_without_smart_top_up_plans_the_offers_are_empty(client, till, card):
    headers, store_code = till
    r = client.post(f"/api/v1/cards/{card.number}/charges", headers=headers,
                    json=_charge(store_code, amount=99999))
    assert r.status_code == 409 and r.json["offers"] == []


@pytest.mark.parametrize("change,status,code,field", [
    ({"amount": 0}, 422, "invalid_field", "amount"),
    ({"amount": 12.5}, 422, "invalid_field", "amount"),
    ({"amount": True}, 422, "invalid_field", "amount"),
    ({"amount": "100"}, 422, "invalid_field", "amount"),
    ({"idempotency_key": ""}, 422, "invalid_field", "idempotency_key"),
    ({"currency": "USD"}, 422, "wrong_currency", None),
    ({"channel": "ONLINE"}, 403, "forbidden_scope", None),
    ({"store_code": "NOPE"}, 403, "forbidden_scope", None),
])
def test_bad_charges_are_refused(client, till, card, change, status, code, field):
    headers, store_code = till
    r = client.post(f"/api/v1/cards/{card.number}/charges", headers=headers,
                    json={**_charge(store_code), **change})
    assert r.status_code == status and r.json["code"] == code
    if field:
        assert r.json["field"] == field
    assert wallet.balance(db.session, card.id).total == 12000


def test_charges_on_unknown_or_frozen_cards_are_refused(client, till, card):
    headers, store_code = till
    r = client.post("/api/v1/cards/1111/charges", headers=headers, json=_charge(store_code))
    assert r.status_code == 404 and r.json["code"] == "unknown_card"
    card.status = CardStatus.FROZEN
    db.session.commit()
    r = client.post(f"/api/v1/cards/{card.number}/charges", headers=headers,
                    json=_charge(store_code))
    assert r.status_code == 409 and r.json["code"] == "card_inactive"


def test_a_charge_body_must_be_json(client, till, card):
    headers, _store = till
    r = client.post(f"/api/v1/cards/{card.number}/charges", headers=headers, data="x")
    assert r.status_code == 400 and r.json["code"] == "bad_request"


def _paid(client, till, card, amount=11000):
    headers, store_code = till
    return client.post(f"/api/v1/cards/{card.number}/charges", headers=headers,
                       json=_charge(store_code, amount=amount)).json["charge_id"]


def test_refund_in_parts_returns_bonus_first_and_once_per_key(client, till, card):
    headers, _store = till
    charge_id = _paid(client, till, card)              # 10000 principal + 1000 bonus
    url = f"/api/v1/charges/{charge_id}/refund"
    r = client.post(url, headers=headers, json={"amount": 3000, "refund_key": "R-1"})
    assert r.status_code == 201
    assert (r.json["amount"], r.json["bonus"], r.json["principal"]) == (3000, 1000, 2000)
    assert r.json["charge"]["refunded"] == 3000 and r.json["charge"]["status"] == "paid"
    again = client.post(url, headers=headers, json={"amount": 3000, "refund_key": "R-1"})
    assert again.status_code == 200 and again.json["refund_id"] == r.json["refund_id"]
    rest = client.post(url, headers=headers, json={"refund_key": "R-2"})
    assert rest.status_code == 201 and rest.json["amount"] == 8000
    assert rest.json["charge"]["status"] == "refunded"
    assert rest.json["balance_after"] == {"card_no": card.number, "currency": "CNY",
                                          "balance": 12000, "principal": 10000,
                                          "bonus": 2000, "spendable_now": 12000,
                                          "restricted_to_items": 0}


@pytest.mark.parametrize("body,status,code", [
    ({"amount": 11001, "refund_key": "x"}, 422, "refund_too_large"),
    ({"amount": 0, "refund_key": "x"}, 422, "invalid_field"),
    ({"amount": 1.5, "refund_key": "x"}, 422, "invalid_field"),
    ({"amount": 100}, 422, "invalid_field"),
])
def test_bad_refunds_are_refused(client, till, card, body, status, code):
    headers, _store = till
    charge_id = _paid(client, till, card)
    r = client.post(f"/api/v1/charges/{charge_id}/refund", headers=headers, json=body)
    assert r.status_code == status and r.json["code"] == code


def test_a_refund_key_reused_for_another_amount_is_409(client, till, card):
    headers, _store = till
    charge_id = _paid(client, till, card)
    url = f"/api/v1/charges/{charge_id}/refund"
    client.post(url, headers=headers, json={"amount": 100, "refund_key": "R"})
    r = client.post(url, headers=headers, json={"amount": 200, "refund_key": "R"})
    assert r.status_code == 409 and r.json["code"] == "idempotency_conflict"


def test_another_stores_charge_cannot_be_refunded(client, till, card):
    charge_id = _paid(client, till, card)
    other = StoreFactory()
    _c, key = api_clients.create_client(db.session, name="Other", store_code=other.code,
                                        channel="POS")
    r = client.post(f"/api/v1/charges/{charge_id}/refund",
                    headers={"Authorization": f"Bearer {key}"}, json={"refund_key": "R"})
    assert r.status_code == 404 and r.json["code"] == "unknown_charge"
    r = client.post("/api/v1/charges/999/refund", headers=till[0], json={"refund_key": "R"})
    assert r.status_code == 404


def test_a_web_shop_of_the_same_store_can_refund_a_till_charge(client, till, card, store):
    charge_id = _paid(client, till, card)
    _c, key = api_clients.create_client(db.session, name="Shop", store_code=store.code,
                                        channel="ONLINE")
    r = client.post(f"/api/v1/charges/{charge_id}/refund",
                    headers={"Authorization": f"Bearer {key}"}, json={"refund_key": "R"})
    assert r.status_code == 201


def test_every_new_route_is_in_the_openapi_document(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert {"/cards/{card_no}/balance", "/cards/{card_no}/charges",
            "/charges/{charge_id}/refund"} <= set(paths)


def test_a_charge_names_its_items_for_money_kept_for_them(client, till, card):
    from portal.db import transaction
    from portal.wallet import balance as wallet
    from portal.wallet.models import Topup, TopupPlan

    headers, store_code = till
    plan = TopupPlan(kind="fixed", name="Coffee only", currency="CNY", amount_minor=5000,
                     spend_product_ids=["LATTE"])
    db.session.add(plan)
    db.session.flush()
    topup = Topup(plan_id=plan.id, member_id=card.member_id, card_id=card.id, currency="CNY",
                  amount_minor=5000, status="credited")
    db.session.add(topup)
    db.session.commit()
    with transaction(db.session):
        wallet.credit(db.session, db.session.merge(card), principal=5000, bonus=0,
                      key="items", reason="topup", source=("topup", topup.id))
    url = f"/api/v1/cards/{card.number}/charges"
    r = client.get(f"/api/v1/cards/{card.number}/balance", headers=headers)
    assert (r.json["balance"], r.json["restricted_to_items"], r.json["spendable_now"]) == \
        (17000, 5000, 12000)
    r = client.post(url, headers=headers, json=_charge(
        store_code, amount=15000, key="L-1",
        lines=[{"product_id": "LATTE", "amount": 3000}]))
    assert r.status_code == 201
    bad = client.post(url, headers=headers, json=_charge(store_code, key="L-2",
                                                         lines="LATTE"))
    assert bad.status_code == 422 and bad.json["field"] == "lines"


def test_a_refund_after_the_account_was_closed_is_refused(client, till, card, member, owner):
    from portal.rights import services as rights

    headers, _store = till
    charge_id = _paid(client, till, card, amount=12000)    # everything on the card
    req = rights.request_closure(db.session, member.id, confirmation=member.mobile[-4:])
    rights.close_account(db.session, req.id, operator_id=owner.id)

    r = client.post(f"/api/v1/charges/{charge_id}/refund", headers=headers,
                    json={"refund_key": "R-1"})

    assert r.status_code == 409 and r.json["code"] == "member_closed"
    assert wallet.balance(db.session, card.id).total == 0
