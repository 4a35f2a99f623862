"""The buyer's page of a gift sent to a friend: reached by the payment's token (guests) or
from the gift cards page (members), with what became of the gift, and the receipt that
carries the link."""
from __future__ import annotations

import re

from portal import jobs
from portal.api import services as api_clients
from portal.db import db, transaction
from portal.giftcards import cards, spending
from portal.giftcards.models import GiftCard
from portal.notifications.models import OutboxMessage
from portal.payments import services as payments
from portal.payments.models import Payment
from tests.factories import StaffFactory, StoreFactory
from tests.fixtures import count_queries, sign_in_as
from tests.web import test_giftcard_pages

product = test_giftcard_pages.product   # the fixture: ¥200.00 cards sell for ¥180.00
FRIEND = {"for": "friend", "recipient_name": "Ada", "recipient_phone": "139 1234 0001",
          "message": "Happy birthday!"}


def _gift(client, product, **form) -> tuple[GiftCard, str]:
    """Buy a ¥200.00 gift for Ada (¥180.00 paid) and pay it with the demo provider."""
    data = {"amount": "20000", "buyer_name": "Mei", **FRIEND, **form}
    r = client.post(f"/giftcards/buy/{product.id}", data=data)
    assert r.status_code == 303, r.get_data(as_text=True)
    token = re.search(r"/payments/demo/([\w-]+)", r.headers["Location"]).group(1)
    client.post(f"/payments/demo/{token}", data={"action": "pay"})
    db.session.expire_all()
    payment = db.session.query(Payment).filter_by(token=token).one()
    return db.session.get(GiftCard, payment.purpose_id), token


def _claim_and_charge(client, card, claimer, amount=5000, key="K-1"):
    jobs.run_tick()                                    # the friend's link goes out
    sign_in_as(client, claimer)
    assert client.post(f"/giftcards/claim/{card.claim_token}").status_code == 303
    store = StoreFactory(name="Harbour Bund")
    _c, api_key = api_clients.create_client(db.session, name="Till", store_code=store.code,
                                            channel="POS")
    r = client.post(f"/api/v1/giftcards/{card.number}/charges",
                    headers={"Authorization": f"Bearer {api_key}"},
                    json={"amount": amount, "currency": "CNY", "store_code": store.code,
                          "channel": "POS", "idempotency_key": key})
    assert r.status_code == 201, r.json
    return store


def _sign_out(client):
    with client.session_transaction() as s:
        s.clear()


def test_a_guest_buyer_gets_one_receipt_with_the_link_to_their_gift(client, product):
    card, token = _gift(client, product, buyer_email="mei@example.com",
                        buyer_phone="139 1234 0002")
    receipts = db.session.query(OutboxMessage).filter_by(template="giftcard_receipt").all()
    assert sorted(m.recipient for m in receipts) == ["+8613912340002", "mei@example.com"]
    mail = next(m for m in receipts if m.channel == "email")
    assert mail.subject == "Your gift card for Ada"
    assert f"/giftcards/sent/{token}" in mail.body and "¥200.00" in mail.body
    payment = db.session.query(Payment).filter_by(token=token).one()
    with transaction(db.session):                      # a second fulfilment sends nothing
        payments.PURPOSES["giftcard"].fulfil(db.session, payment)
    assert db.session.query(OutboxMessage).filter_by(template="giftcard_receipt").count() == 2


def test_a_gift_without_a_buyer_contact_sends_no_receipt(client, product):
    _gift(client, product)
    assert db.session.query(OutboxMessage).filter_by(template="giftcard_receipt").count() == 0


def test_the_payment_result_leads_to_the_gift(client, product):
    _card, token = _gift(client, product)
    page = client.get(f"/payments/{token}").get_data(as_text=True)
    assert "Paid. Thank you!" in page and f'href="/giftcards/sent/{token}"' in page


def test_a_members_own_card_result_leads_to_the_card(member_client, product):
    card, token = _gift(member_client, product, **{"for": "me"})
    page = member_client.get(f"/payments/{token}").get_data(as_text=True)
    assert f'href="/giftcards/mine/{card.id}"' in page
    assert member_client.get(f"/giftcards/sent/{token}").status_code == 404  # not a gift


def test_the_guest_buyer_sees_the_gift_claimed_and_used(client, product, member):
    card, token = _gift(client, product, buyer_email="mei@example.com")
    page = client.get(f"/giftcards/sent/{token}").get_data(as_text=True)
    assert "Your gift for Ada" in page and "Happy birthday!" in page
    assert "The link goes out to Ada in a minute." in page
    assert "Send Ada the link again" not in page       # not sent yet
    _claim_and_charge(client, card, member)
    _sign_out(client)
    r = client.get(f"/giftcards/sent/{token}")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    for text in ("Bought", "Link sent to Ada", "Claimed by Ada", "Used at Harbour Bund",
                 "-¥50.00", "¥150.00", "you paid ¥180.00", "Ada claimed it on"):
        assert text in page, text
    # Nothing of the friend's account, and nothing that would spend the card.
    for secret in (member.mobile, member.full_name or "\0", card.number,
                   cards.pin_for(card.number)):
        assert secret not in page
    assert "Send Ada the link again" not in page       # claimed: nothing to resend


def test_freeze_reasons_and_staff_names_stay_hidden(client, product, owner):
    card, token = _gift(client, product)
    staff = StaffFactory(name="Officer Zhang")
    spending.freeze(db.session, card.id, operator_id=staff.id, reason="Reported stolen")
    page = client.get(f"/giftcards/sent/{token}").get_data(as_text=True)
    assert "This card is frozen: ask the shop." in page and "Frozen" in page
    assert "Reported stolen" not in page and "Officer Zhang" not in page


def test_a_members_gift_is_theirs_only(client, product, member, other_member):
    sign_in_as(client, member)
    card, token = _gift(client, product)
    assert client.get(f"/giftcards/sent/{token}").status_code == 200
    shop = client.get("/giftcards").get_data(as_text=True)
    assert f'href="/giftcards/sent/{token}"' in shop and "Gifts I sent" in shop
    sign_in_as(client, other_member)
    assert client.get(f"/giftcards/sent/{token}").status_code == 404
    assert client.post(f"/giftcards/sent/{token}/resend").status_code == 404
    _sign_out(client)
    r = client.get(f"/giftcards/sent/{token}")
    assert r.status_code in (302, 303) and "/sign-in" in r.headers["Location"]
    assert client.get("/giftcards/sent/not-a-token").status_code == 404


def test_a_guests_gift_page_is_for_the_token_holder_only(client, product):
    _card, token = _gift(client, product, **{"for": "me", "buyer_email": "mei@example.com"})
    assert client.get(f"/giftcards/sent/{token}").status_code == 404   # her own card


def test_the_buyer_sends_the_link_again_until_it_is_claimed(client, product, member):
    card, token = _gift(client, product)
    jobs.run_tick()
    to_friend = dict(recipient="+8613912340001", template="giftcard")
    assert db.session.query(OutboxMessage).filter_by(**to_friend).count() == 1
    r = client.post(f"/giftcards/sent/{token}/resend")
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/giftcards/sent/{token}")
    assert db.session.query(OutboxMessage).filter_by(**to_friend).count() == 2
    sign_in_as(client, member)
    client.post(f"/giftcards/claim/{card.claim_token}")
    _sign_out(client)
    client.post(f"/giftcards/sent/{token}/resend")
    assert db.session.query(OutboxMessage).filter_by(**to_friend).count() == 2
    assert "This card cannot be sent again." in client.get(f"/giftcards/sent/{token}") \
        .get_data(as_text=True)


def test_the_pages_run_the_same_queries_whatever_the_number_of_gifts(member_client, member,
                                                                    product, other_member):
    card, token = _gift(member_client, product)
    one_gift = count_queries(member_client, "/giftcards")
    for _i in range(3):
        _gift(member_client, product)
    assert count_queries(member_client, "/giftcards") == one_gift

    store = _claim_and_charge(member_client, card, other_member, amount=1000, key="K-0")
    sign_in_as(member_client, member)
    one_use = count_queries(member_client, f"/giftcards/sent/{token}")
    _c, api_key = api_clients.create_client(db.session, name="Till 2", store_code=store.code,
                                            channel="POS")
    headers = {"Authorization": f"Bearer {api_key}"}
    for i in range(4):
        member_client.post(f"/api/v1/giftcards/{card.number}/charges", headers=headers,
                           json={"amount": 1000, "currency": "CNY", "store_code": store.code,
                                 "channel": "POS", "idempotency_key": f"K-{i + 1}"})
    page = member_client.get(f"/giftcards/sent/{token}").get_data(as_text=True)
    assert page.count("Used at Harbour Bund") == 5
    assert count_queries(member_client, f"/giftcards/sent/{token}") == one_use
