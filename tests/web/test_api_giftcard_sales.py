"""A till sells an imported physical gift card over the API: value, buyer, validity; once."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from portal import clock
from portal.db import db, transaction
from portal.giftcards import cards
from portal.giftcards.models import CardStatus, GiftCard, GiftCardProduct, TransactionKind
from tests.fixtures import member_with_card
from tests.unit.test_giftcard_spending import history
from tests.web.test_api_giftcards import till  # noqa: F401 - fixture

_numbers = iter(range(7 * 10**15, 8 * 10**15))


def in_stock(session, *, face=0, **product) -> GiftCard:
    """An imported physical card waiting to be sold."""
    with transaction(session):
        p = GiftCardProduct(**{"kind": "physical", "name": "Plastic", "currency": "CNY",
                               "status": "active", "denominations": [10000, 20000],
                               "discount_bp": 500, "validity_days": 365,
                               "channels": ["POS"], **product})
        session.add(p)
        session.flush()
        card = GiftCard(product_id=p.id, number=str(next(_numbers)), currency="CNY",
                        face_minor=face, price_minor=0, physical=True,
                        status=CardStatus.IN_STOCK, pin_hash=cards.hash_pin("4321"))
        session.add(card)
    return card


def _sale(store_code, amount=20000, key="S-1", **extra):
    body = {"currency": "CNY", "store_code": store_code, "channel": "POS",
            "idempotency_key": key, **extra}
    if amount is not None:
        body["amount"] = amount
    return body


def _post(client, till, card, **body):  # noqa: F811
    headers, store_code = till
    return client.post(f"/api/v1/giftcards/{card.number}/sales", headers=headers,
                       json=_sale(store_code, **body))


def test_a_sale_gives_the_card_its_value_and_validity_once(client, till, session):  # noqa: F811
    clock.freeze(datetime(2026, 12, 4, 10, tzinfo=UTC))
    card = in_stock(session)
    r = _post(client, till, card)
    assert r.status_code == 201
    assert (r.json["amount"], r.json["price"], r.json["balance"], r.json["expires_at"]) == \
        (20000, 19000, 20000, "2027-12-04T10:00:00+00:00")          # 5% off at the till
    again = _post(client, till, card)
    assert (again.status_code, again.json["sale_id"]) == (200, r.json["sale_id"])
    db.session.expire_all()
    card = db.session.get(GiftCard, card.id)
    assert (card.status, cards.balance(db.session, card)) == (CardStatus.ACTIVE, 20000)
    assert [t.kind for t in history(db.session, card)] == [TransactionKind.ACTIVATION]
    assert cards.pin_matches(card, "4321")                   # the printed PIN still works


def test_a_card_sold_once_cannot_be_sold_again(client, till, session):  # noqa: F811
    card = in_stock(session)
    _post(client, till, card)
    r = _post(client, till, card, key="S-2")
    assert (r.status_code, r.json["code"]) == (409, "already_sold")
    assert _post(client, till, card, amount=10000).json["code"] == "idempotency_conflict"


def test_a_printed_value_is_the_cards_value(client, till, session):  # noqa: F811
    card = in_stock(session, face=10000)
    r = _post(client, till, card, amount=20000)
    assert (r.status_code, r.json["field"]) == (422, "amount")
    assert _post(client, till, card, amount=None).json["amount"] == 10000


@pytest.mark.parametrize("amount", [None, 15000])
def test_an_unprinted_card_needs_one_of_the_products_amounts(client, till, session, amount):  # noqa: F811
    card = in_stock(session)
    r = _post(client, till, card, amount=amount)
    assert (r.status_code, r.json["field"]) == (422, "amount")
    db.session.expire_all()
    assert db.session.get(GiftCard, card.id).status == CardStatus.IN_STOCK


def test_the_buyer_details_the_product_asks_for(client, till, session, plan):  # noqa: F811
    card = in_stock(session, buyer_fields={"name": "required", "card_number": "optional"})
    r = _post(client, till, card)
    assert (r.status_code, r.json["field"]) == (422, "buyer_name")
    r = _post(client, till, card, buyer={"name": "Ada", "member_card_no": "0000"})
    assert (r.status_code, r.json["field"]) == (422, "buyer_card_number")
    member = member_with_card(plan)
    number = member.cards[0].number
    assert _post(client, till, card, buyer={"name": "Ada", "member_card_no": number}) \
        .status_code == 201
    db.session.expire_all()
    card = db.session.get(GiftCard, card.id)
    assert (card.buyer_name, card.buyer_member_id, card.holder_member_id) == \
        ("Ada", member.id, member.id)


@pytest.mark.parametrize("product, code", [({"channels": ["ONLINE"]}, "card_inactive"),
                                           ({"status": "inactive"}, "card_inactive"),
                                           ({"store_ids": [999999]}, "wrong_store")])
def test_a_card_not_on_sale_at_this_till_is_refused(client, till, session, product, code):  # noqa: F811
    card = in_stock(session, **product)
    r = _post(client, till, card)
    assert (r.status_code, r.json["code"]) == (409, code)


def test_an_in_stock_card_cannot_be_spent(client, till, session):  # noqa: F811
    card = in_stock(session, face=10000)
    headers, store_code = till
    r = client.post(f"/api/v1/giftcards/{card.number}/charges", headers=headers,
                    json={"amount": 100, "currency": "CNY", "store_code": store_code,
                          "channel": "POS", "idempotency_key": "C1"})
    assert (r.status_code, r.json["code"]) == (409, "card_inactive")
