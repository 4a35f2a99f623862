"""Buying and gifting gift cards over HTTP (guests and members, the demo provider), the
friend's claim, the holder's card page and the public balance check."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from portal import clock, jobs
from portal.db import db
from portal.giftcards import cards
from portal.giftcards.models import GiftCard, GiftCardProduct
from portal.notifications.models import OutboxMessage
from tests.fixtures import sign_in_as


@pytest.fixture
def product():
    p = GiftCardProduct(kind="electronic", name="Harbour gift card", currency="CNY",
                        status="active", design="teal", denominations=[10000, 20000],
                        discount_bp=1000, custom_amount=True, custom_min_minor=5000,
                        custom_max_minor=100000, validity_days=365,
                        buyer_fields={"name": "required", "phone": "optional",
                                      "email": "optional"},
                        channels=["ONLINE", "POS"])
    db.session.add(p)
    db.session.commit()
    return p


def _buy(client, product, **form):
    data = {"amount": "20000", "for": "me", "buyer_name": "Mei", **form}
    return client.post(f"/giftcards/buy/{product.id}", data=data)


def _pay(client, response) -> str:
    token = re.search(r"/payments/demo/([\w-]+)", response.headers["Location"]).group(1)
    client.post(f"/payments/demo/{token}", data={"action": "pay"})
    return token


def test_a_guest_buys_for_a_friend_who_claims_it(client, product, member):
    r = _buy(client, product, **{"for": "friend", "recipient_name": "Ada",
                                 "recipient_email": "ada@example.com", "message": "Enjoy!",
                                 "buyer_email": "mei@example.com"})
    assert r.status_code == 303
    token = _pay(client, r)
    assert "Paid. Thank you!" in client.get(f"/payments/{token}").get_data(as_text=True)
    card = db.session.query(GiftCard).one()
    assert (card.status, card.price_minor, cards.balance(db.session, card)) == \
        ("active", 18000, 20000)                       # 10% off: pays 180 for 200
    jobs.run_tick()                                    # the link goes out
    db.session.commit()
    mail = db.session.query(OutboxMessage).filter_by(recipient="ada@example.com").one()
    assert mail.subject == "Mei sent you a ¥200.00 gift card"
    link = re.search(r"/giftcards/claim/[\w-]+", mail.body).group(0)
    page = client.get(link).get_data(as_text=True)
    assert "Enjoy!" in page and "¥200.00" in page
    sign_in_as(client, member)
    r = client.post(link)
    assert r.status_code == 303
    db.session.expire_all()
    assert db.session.get(GiftCard, card.id).holder_member_id == member.id
    page = client.get(f"/giftcards/mine/{card.id}").get_data(as_text=True)
    assert cards.pin_for(card.number) in page and "¥200.00" in page


def test_a_friend_who_is_not_a_member_signs_up_first(client, product, page):
    r = _buy(client, product, **{"for": "friend", "recipient_name": "Ada",
                                 "recipient_phone": "139 1234 0000"})
    _pay(client, r)
    card = db.session.query(GiftCard).one()
    r = client.post(f"/giftcards/claim/{card.claim_token}")
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/r/{page.slug}")
    with client.session_transaction() as s:
        assert s["giftcard_after"] == card.claim_token
        assert (s["attribution"]["campaign"], s["attribution"]["source"]) == \
            ("giftcard", "giftcard")


def test_a_claimed_card_cannot_be_claimed_by_another(client, product, member, other_member):
    r = _buy(client, product, **{"for": "friend", "recipient_name": "Ada",
                                 "recipient_email": "ada@example.com"})
    _pay(client, r)
    card = db.session.query(GiftCard).one()
    sign_in_as(client, member)
    client.post(f"/giftcards/claim/{card.claim_token}")
    sign_in_as(client, other_member)
    r = client.post(f"/giftcards/claim/{card.claim_token}")
    assert r.status_code == 409 and "claimed already" in r.get_data(as_text=True)
    assert client.get(f"/giftcards/mine/{card.id}").status_code == 404


def test_a_member_buys_for_themselves(member_client, member, product):
    r = _buy(member_client, product, amount="custom", custom_amount="88.80")
    _pay(member_client, r)
    card = db.session.query(GiftCard).one()
    assert (card.holder_member_id, card.face_minor, card.price_minor) == (member.id, 8880, 7992)
    page = member_client.get("/giftcards").get_data(as_text=True)
    assert "¥88.80" in page


def test_a_friends_card_sent_on_a_date_waits_for_it(client, product):
    when = clock.local(clock.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    r = _buy(client, product, **{"for": "friend", "recipient_name": "Ada",
                                 "recipient_email": "ada@example.com", "send": "later",
                                 "send_at": when})
    _pay(client, r)
    jobs.run_tick()
    db.session.commit()
    assert db.session.query(OutboxMessage).filter_by(recipient="ada@example.com").count() == 0
    clock.freeze(clock.now() + timedelta(days=2, minutes=1))
    jobs.run_tick()
    db.session.commit()
    assert db.session.query(OutboxMessage).filter_by(recipient="ada@example.com").count() == 1


@pytest.mark.parametrize("form,field", [
    ({"amount": "200001"}, "amount"),
    ({"amount": "custom", "custom_amount": "2000"}, "amount"),
    ({"amount": "custom", "custom_amount": "0"}, "amount"),
    ({"buyer_name": ""}, "buyer_name"),
    ({"for": "me"}, "buyer_email"),                    # a guest's own card needs a contact
    ({"for": "friend", "recipient_name": "Ada", "recipient_email": "not-an-email"},
     "recipient_email"),
    ({"for": "friend", "recipient_name": "Ada", "recipient_phone": "12"}, "recipient_phone"),
    ({"for": "friend", "recipient_name": "Ada"}, "recipient_email"),
    ({"for": "friend", "recipient_name": "Ada", "recipient_email": "a@example.com",
      "send": "later", "send_at": "2000-01-01T10:00"}, "send_at"),
])
def test_bad_input_is_refused_next_to_the_field(client, product, form, field):
    r = _buy(client, product, **form)
    assert r.status_code == 422 and f'id="{field}-error"' in r.get_data(as_text=True)
    assert db.session.query(GiftCard).count() == 0


def test_the_public_balance_check_says_only_the_balance(client, product, member):
    r = _buy(client, product, buyer_email="mei@example.com")
    _pay(client, r)
    card = db.session.query(GiftCard).one()
    pin = cards.pin_for(card.number)
    ok = client.post("/giftcards/balance", data={"number": card.number, "pin": pin})
    assert ok.status_code == 200 and "¥200.00" in ok.get_data(as_text=True)
    wrong = client.post("/giftcards/balance", data={"number": card.number, "pin": "000000"
                                                     if pin != "000000" else "111111"})
    unknown = client.post("/giftcards/balance", data={"number": "1234567890123456",
                                                       "pin": pin})
    for answer in (wrong, unknown):
        body = answer.get_data(as_text=True)
        assert answer.status_code == 422 and "No card matches this number and PIN." in body
        assert "¥200.00" not in body



def test_a_guest_buying_for_themselves_gets_the_card_by_email(client, product):
    r = _buy(client, product, buyer_email="mei@example.com")
    _pay(client, r)
    db.session.commit()
    mail = db.session.query(OutboxMessage).filter_by(recipient="mei@example.com").one()
    card = db.session.query(GiftCard).one()
    assert mail.subject == "Your gift card" and card.claim_token in mail.body
