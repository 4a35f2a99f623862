"""Refunding a sold gift card's remaining value from its page in the merchant area."""
from __future__ import annotations

from portal.db import db, transaction
from portal.giftcards import cards
from portal.giftcards.models import CardStatus, GiftCard
from tests.fixtures import sign_in_as
from tests.unit.test_giftcard_refunds import bought  # noqa: F401 - fixture
from tests.unit.test_giftcard_spending import make_card, pay


def _detail(client, card) -> str:
    r = client.get(f"/admin/giftcards/sold/{card.id}")
    assert r.status_code == 200
    return r.get_data(as_text=True)


def test_the_card_page_shows_what_a_refund_would_pay_back(client, bought, owner):  # noqa: F811
    pay(bought, 15000)
    sign_in_as(client, owner)
    page = _detail(client, bought)
    assert "Refund the remaining value" in page
    assert "¥50.00 leaves the card" in page and "¥45.00 goes back to the buyer" in page


def test_refunding_closes_the_card_and_says_what_went_back(client, bought, owner):  # noqa: F811
    sign_in_as(client, owner)
    r = client.post(f"/admin/giftcards/sold/{bought.id}/refund", data={"reason": "Moved away"})
    assert r.status_code == 303
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "¥180.00 goes back to the buyer&#39;s payment" in page
    db.session.expire_all()
    card = db.session.get(GiftCard, bought.id)
    assert (card.status, cards.balance(db.session, card)) == (CardStatus.REFUNDED, 0)
    assert "Refund the remaining value" not in page


def test_a_till_refund_says_how_much_to_pay_back(client, session, owner):
    card = make_card(session, face=20000)
    sign_in_as(client, owner)
    r = client.post(f"/admin/giftcards/sold/{card.id}/refund", data={"reason": "Cash out"})
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "Pay ¥200.00 back to the buyer at the till" in page


def test_a_missing_reason_is_shown_at_the_field_and_changes_nothing(client, bought, owner):  # noqa: F811
    sign_in_as(client, owner)
    r = client.post(f"/admin/giftcards/sold/{bought.id}/refund", data={"reason": ""})
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    assert 'id="refund-reason-error"' in page and "Give a reason" in page
    db.session.expire_all()
    assert db.session.get(GiftCard, bought.id).status == CardStatus.ACTIVE


def test_a_fully_used_card_offers_no_refund(client, session, owner):
    card = make_card(session, face=5000)
    pay(card, 5000)
    sign_in_as(client, owner)
    page = _detail(client, card)
    assert "there is nothing to refund" in page and "Refund and close the card" not in page
    r = client.post(f"/admin/giftcards/sold/{card.id}/refund", data={"reason": "x"})
    assert r.status_code == 422


def test_clerks_cannot_refund(client, session, clerk):
    card = make_card(session)
    sign_in_as(client, clerk)
    r = client.post(f"/admin/giftcards/sold/{card.id}/refund", data={"reason": "x"})
    assert r.status_code == 403
    db.session.expire_all()
    assert db.session.get(GiftCard, card.id).status == CardStatus.ACTIVE


def test_staff_send_an_unclaimed_gift_link_again(client, session, owner):
    from portal.notifications.models import OutboxMessage
    from portal.staff.models import AuditEntry

    card = make_card(session)
    with transaction(session):
        gift = session.get(GiftCard, card.id)
        gift.recipient_name, gift.recipient_email = "Ada", "ada@example.com"
        gift.claim_token = f"claim-{card.id}"
    sign_in_as(client, owner)
    assert "Send the link again" in _detail(client, card)
    r = client.post(f"/admin/giftcards/sold/{card.id}/resend")
    assert r.status_code == 303
    assert "sent to the recipient again" in client.get(r.headers["Location"]).get_data(
        as_text=True)
    db.session.expire_all()
    assert db.session.query(OutboxMessage).filter_by(recipient="ada@example.com").count() == 1
    assert db.session.query(AuditEntry).filter_by(action="giftcard.resend").count() == 1


def test_a_claimed_gift_is_not_sent_again(client, session, owner, member):
    card = make_card(session)
    with transaction(session):
        gift = session.get(GiftCard, card.id)
        gift.recipient_name, gift.recipient_email = "Ada", "ada@example.com"
        gift.claim_token = f"claim-{card.id}"
        gift.claimed_at, gift.holder_member_id = gift.created_at, member.id
    sign_in_as(client, owner)
    assert "Send the link again" not in _detail(client, card)
    r = client.post(f"/admin/giftcards/sold/{card.id}/resend")
    assert "This card cannot be sent again." in client.get(r.headers["Location"]).get_data(
        as_text=True)
