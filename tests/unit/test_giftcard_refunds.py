"""Refunding what is left on a gift card: back through the payment provider in proportion
to what the buyer paid, the rest at the till, the card closed; once, all or nothing."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal.db import db, transaction
from portal.giftcards import cards, refunds, spending
from portal.giftcards.errors import GiftCardErrorCode as Code
from portal.giftcards.models import CardStatus, GiftCard, GiftCardProduct, TransactionKind
from portal.payments import services as payments
from portal.payments.errors import PaymentError
from portal.payments.models import Payment, PaymentRefund
from portal.payments.providers import DemoProvider, ProviderError
from portal.staff.models import AuditEntry
from tests.unit.test_giftcard_spending import (
    assert_ledger_matches,
    history,
    make_card,
    pay,
    refused,
)


@pytest.fixture
def bought(client):
    """A 200 card bought online for 180 (10% off), paid with the demo provider."""
    product = GiftCardProduct(kind="electronic", name="Harbour", currency="CNY",
                              status="active", denominations=[20000], discount_bp=1000,
                              buyer_fields={"name": "required"}, channels=["ONLINE"],
                              pos_recharge=True)
    db.session.add(product)
    db.session.commit()
    r = client.post(f"/giftcards/buy/{product.id}",
                    data={"amount": "20000", "for": "me", "buyer_name": "Mei",
                          "buyer_email": "mei@example.com"})
    token = re.search(r"/payments/demo/([\w-]+)", r.headers["Location"]).group(1)
    client.post(f"/payments/demo/{token}", data={"action": "pay"})
    db.session.expire_all()
    card = db.session.scalars(select(GiftCard)).one()
    assert (card.status, card.price_minor) == (CardStatus.ACTIVE, 18000)
    return card


def _refund(card, owner, reason="Customer asked"):
    return refunds.refund_card(db.session, card.id, operator_id=owner.id, reason=reason)


def _payment(card) -> Payment:
    db.session.expire_all()
    return db.session.get(Payment, card.payment_id)


def test_a_partly_used_card_pays_back_its_share_of_the_price(bought, owner):
    pay(bought, 15000)
    done = _refund(bought, owner)
    assert (done.value, done.online, done.at_till) == (5000, 4500, 0)   # 50 left of 200 at 180
    assert _payment(bought).refunded_minor == 4500
    card = db.session.get(GiftCard, bought.id)
    assert (card.status, cards.balance(db.session, card)) == (CardStatus.REFUNDED, 0)
    last = history(db.session, card)[-1]
    assert (last.kind, last.amount_minor, last.operator_id, last.note) == \
        (TransactionKind.CARD_REFUND, -5000, owner.id, "Customer asked")
    assert_ledger_matches(db.session, card)
    actions = {a.action for a in db.session.scalars(select(AuditEntry))}
    assert {"giftcard.refund", "payment.refund"} <= actions


def test_an_unused_card_pays_back_all_that_was_paid(bought, owner):
    assert _refund(bought, owner).online == 18000
    payment = _payment(bought)
    assert (payment.status, payment.refunded_minor) == ("refunded", 18000)


def test_value_recharged_at_a_till_is_paid_back_at_the_till(bought, owner):
    spending.recharge(db.session, number=bought.number, amount_minor=10000, currency="CNY",
                      idempotency_key="R1", store_id=None)
    done = _refund(bought, owner)
    assert (done.value, done.online, done.at_till) == (30000, 18000, 10000)
    assert "¥100.00 to pay back at the till" in history(db.session, bought)[-1].note


def test_a_card_sold_at_a_till_is_paid_back_at_the_till(session, owner):
    card = make_card(session, face=20000)
    pay(card, 5000)
    done = _refund(card, owner)
    assert (done.online, done.at_till, done.payment_id) == (0, 15000, None)
    assert db.session.get(GiftCard, card.id).status == CardStatus.REFUNDED
    assert_ledger_matches(db.session, card)


def test_a_fully_used_card_has_nothing_to_refund(bought, owner):
    pay(bought, 20000)
    e = refused(Code.NOT_NOW, _refund, bought, owner)
    assert "fully used" in str(e)
    assert db.session.get(GiftCard, bought.id).status == CardStatus.ACTIVE
    assert _payment(bought).refunded_minor == 0


def test_a_card_is_refunded_once(bought, owner):
    _refund(bought, owner)
    refused(Code.NOT_NOW, _refund, bought, owner)
    assert db.session.query(PaymentRefund).count() == 1


def test_a_frozen_card_can_be_refunded_and_a_refunded_card_spends_nothing(bought, owner):
    spending.freeze(db.session, bought.id, operator_id=owner.id, reason="lost")
    _refund(bought, owner)
    refused(Code.INACTIVE, pay, bought, 100)


def test_a_reason_is_required(bought, owner):
    e = refused(Code.INVALID, _refund, bought, owner, reason="  ")
    assert e.details["field"] == "reason"


def test_a_provider_refusal_changes_nothing(bought, owner, monkeypatch):
    def refuse(self, payment, amount_minor, *, key):
        raise ProviderError("card declined")

    monkeypatch.setattr(DemoProvider, "refund", refuse)
    refused(Code.NOT_NOW, _refund, bought, owner)
    db.session.expire_all()
    card = db.session.get(GiftCard, bought.id)
    assert (card.status, cards.balance(db.session, card)) == (CardStatus.ACTIVE, 20000)
    assert _payment(bought).refunded_minor == 0
    assert history(db.session, card)[-1].kind == TransactionKind.ACTIVATION


def test_the_payments_page_refunds_only_the_cards_remaining_value(bought, owner):
    pay(bought, 10000)
    with pytest.raises(PaymentError) as e:
        payments.refund(db.session, bought.payment_id, 18000, reason="all",
                        operator_id=owner.id)
    assert e.value.code == "not_refundable" and "¥90.00" in str(e.value)
    payments.refund(db.session, bought.payment_id, 9000, reason="rest", operator_id=owner.id)
    db.session.expire_all()
    card = db.session.get(GiftCard, bought.id)
    assert (card.status, cards.balance(db.session, card)) == (CardStatus.REFUNDED, 0)


def test_the_quote_is_what_the_refund_moves(bought, owner):
    pay(bought, 3333)
    with transaction(db.session):
        q = refunds.quote(db.session, db.session.get(GiftCard, bought.id))
    assert (q.value, q.online) == (16667, 15000)   # 16667 × 180 / 200, rounded down
    assert _refund(bought, owner) == q
    assert refunds.quote(db.session, db.session.get(GiftCard, bought.id)) is None
