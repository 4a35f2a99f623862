"""Spending gift cards: charges, refunds of charges, recharges, freeze and restore."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal import clock, ledger
from portal.db import db, transaction
from portal.giftcards import cards, spending
from portal.giftcards.errors import GiftCardError
from portal.giftcards.errors import GiftCardErrorCode as Code
from portal.giftcards.models import (
    CardStatus,
    GiftCard,
    GiftCardCharge,
    GiftCardProduct,
    GiftCardTransaction,
    TransactionKind,
)
from portal.staff.models import AuditEntry
from tests.factories import StoreFactory

_numbers = iter(range(10**15, 10**16))


def make_card(session, *, face=10000, currency="CNY", store_ids=(), validity_days=None,
              pos_recharge=False, activate=True) -> GiftCard:
    """A product and one sold card, activated (its face value on the ledger)."""
    with transaction(session):
        product = GiftCardProduct(kind="electronic", name="Gift", currency=currency,
                                  status="active", store_ids=list(store_ids),
                                  validity_days=validity_days, pos_recharge=pos_recharge)
        session.add(product)
        session.flush()
        card = GiftCard(product_id=product.id, number=str(next(_numbers)), currency=currency,
                        face_minor=face, price_minor=face)
        session.add(card)
        session.flush()
        if activate:
            cards.activate(session, card, key=f"test:{card.id}")
    return card


def history(session, card) -> list[GiftCardTransaction]:
    session.expire_all()
    return list(session.scalars(select(GiftCardTransaction)
                                .where(GiftCardTransaction.card_id == card.id)
                                .order_by(GiftCardTransaction.id)))


def assert_ledger_matches(session, card) -> None:
    """The balance equals the sum of the ledger entries and of the card's transactions."""
    session.expire_all()
    acc = cards.account(session, card)
    entries = session.scalar(select(func.coalesce(func.sum(ledger.Entry.delta), 0))
                             .where(ledger.Entry.account_id == acc.id))
    lines = sum(t.amount_minor for t in history(session, card))
    assert acc.balance == entries == lines >= 0


def pay(card, amount, key="K1", **extra):
    args = {"number": card.number, "amount_minor": amount, "currency": "CNY",
            "idempotency_key": key, "store_id": None, **extra}
    return spending.charge(db.session, **args)


@pytest.fixture
def card(session):
    return make_card(session)


def refused(code, fn, *args, **kwargs) -> GiftCardError:
    with pytest.raises(GiftCardError) as e:
        fn(*args, **kwargs)
    assert e.value.code == code, e.value
    return e.value


# --- charges -------------------------------------------------------------------------------

def test_a_charge_takes_the_amount_and_records_a_consumption(session, card):
    store = StoreFactory()
    charge = pay(card, 3000, order_external_id="POS-1", store_id=store.id)
    assert charge.replayed is False and charge.amount_minor == 3000
    assert cards.balance(session, card) == 7000
    line = history(session, card)[-1]
    assert (line.kind, line.amount_minor, line.balance_after) == (
        TransactionKind.CONSUMPTION, -3000, 7000)
    assert (line.charge_id, line.store_id, line.key) == (charge.id, store.id,
                                                         f"charge:{charge.id}")
    assert spending.charge_transaction(session, charge).id == line.id
    assert_ledger_matches(session, card)


def test_the_whole_balance_can_be_spent_but_not_a_unit_more(session, card):
    e = refused(Code.INSUFFICIENT, pay, card, 10001)
    assert e.details["balance"] == 10000
    assert cards.balance(session, card) == 10000
    assert session.scalar(select(func.count()).select_from(GiftCardCharge)) == 0
    pay(card, 10000)
    assert cards.balance(session, card) == 0
    refused(Code.INSUFFICIENT, pay, card, 1, key="K2")
    assert_ledger_matches(session, card)


@pytest.mark.parametrize("amount", [0, -5, 1.5, "100", True, None])
def test_only_whole_amounts_above_zero_can_be_charged(session, card, amount):
    e = refused(Code.INVALID, pay, card, amount)
    assert e.details["field"] == "amount"


def test_a_key_is_needed(session, card):
    refused(Code.INVALID, pay, card, 100, key=" ")
    refused(Code.INVALID, pay, card, 100, key="x" * (spending.MAX_KEY + 1))


def test_an_unknown_card_is_not_found(session):
    refused(Code.NOT_FOUND, spending.charge, db.session, number="1234", amount_minor=1,
            currency="CNY", idempotency_key="k", store_id=None)


def test_another_currency_is_refused(session, card):
    e = refused(Code.INVALID, pay, card, 100, currency="EUR")
    assert e.details["field"] == "currency"


@pytest.mark.parametrize("status", [CardStatus.PENDING, CardStatus.CANCELLED,
                                    CardStatus.REFUNDED])
def test_cards_not_active_cannot_pay(session, status):
    card = make_card(session, activate=status != CardStatus.PENDING)
    with transaction(session):
        session.get(GiftCard, card.id).status = status
    refused(Code.INACTIVE, pay, card, 100)


def test_an_expired_card_cannot_pay(session):
    clock.freeze(datetime(2026, 1, 1, 12, tzinfo=UTC))
    card = make_card(session, validity_days=30)
    assert pay(card, 100, key="in-time")
    clock.advance(timedelta(days=30))
    e = refused(Code.EXPIRED, pay, card, 100)
    assert e.details["card_status"] == "expired"
    assert cards.balance(session, card) == 9900


def test_a_card_only_pays_at_its_stores(session):
    here, there = StoreFactory(), StoreFactory()
    card = make_card(session, store_ids=[here.id])
    refused(Code.WRONG_STORE, pay, card, 100, store_id=there.id)
    refused(Code.WRONG_STORE, pay, card, 100, key="K2", store_id=None)
    assert pay(card, 100, key="K3", store_id=here.id).store_id == here.id


def test_the_same_key_returns_the_first_charge(session, card):
    first = pay(card, 2500)
    again = pay(card, 2500)
    assert again.id == first.id and again.replayed is True
    assert cards.balance(session, card) == 7500
    assert len([t for t in history(session, card)
                if t.kind == TransactionKind.CONSUMPTION]) == 1


def test_the_same_key_for_another_amount_is_a_conflict(session, card):
    pay(card, 2500)
    e = refused(Code.IDEMPOTENCY_CONFLICT, pay, card, 2600)
    assert "charge_id" in e.details
    assert cards.balance(session, card) == 7500


def test_a_replay_answers_even_after_the_card_was_frozen(session, card, owner):
    first = pay(card, 2500)
    spending.freeze(session, card.id, operator_id=owner.id, reason="lost")
    assert pay(card, 2500).id == first.id
    refused(Code.FROZEN, pay, card, 2500, key="K2")


def test_several_cards_pay_one_order_each_what_is_needed(session):
    a, b = make_card(session, face=3000), make_card(session, face=5000)
    bill = 4500
    for card in (a, b):
        take = min(bill, cards.balance(session, card))
        pay(card, take, key="order-9")
        bill -= take
    assert bill == 0
    assert (cards.balance(session, a), cards.balance(session, b)) == (0, 3500)


# --- refunds of charges --------------------------------------------------------------------

def test_a_refund_goes_back_to_the_card_once_per_key(session, card):
    store = StoreFactory()
    charge = pay(card, 4000, store_id=store.id)
    refund = spending.refund_charge(session, charge.id, amount_minor=1500, refund_key="R1",
                                    store_id=store.id)
    assert (refund.kind, refund.amount_minor, refund.balance_after) == (
        TransactionKind.REFUND, 1500, 7500)
    assert refund.replayed is False and refund.charge_id == charge.id
    again = spending.refund_charge(session, charge.id, amount_minor=1500, refund_key="R1",
                                   store_id=store.id)
    assert again.id == refund.id and again.replayed is True
    assert spending.refund_charge(session, charge.id, refund_key="R1",
                                  store_id=store.id).id == refund.id
    refused(Code.IDEMPOTENCY_CONFLICT, spending.refund_charge, session, charge.id,
            amount_minor=1000, refund_key="R1", store_id=store.id)
    assert cards.balance(session, card) == 7500
    assert session.get(GiftCardCharge, charge.id).refunded_minor == 1500
    assert_ledger_matches(session, card)


def test_refunds_never_give_back_more_than_the_charge(session, card):
    charge = pay(card, 4000)
    e = refused(Code.REFUND_TOO_LARGE, spending.refund_charge, session, charge.id,
                amount_minor=4001, refund_key="R1", store_id=None)
    assert e.details["left"] == 4000
    spending.refund_charge(session, charge.id, amount_minor=1000, refund_key="R1",
                           store_id=None)
    rest = spending.refund_charge(session, charge.id, refund_key="R2", store_id=None)
    assert rest.amount_minor == 3000 and rest.balance_after == 10000
    e = refused(Code.REFUND_TOO_LARGE, spending.refund_charge, session, charge.id,
                refund_key="R3", store_id=None)
    assert e.details["left"] == 0
    session.expire_all()
    assert session.get(GiftCardCharge, charge.id).refunded_minor == 4000
    assert_ledger_matches(session, card)


def test_only_the_store_that_took_the_charge_can_refund_it(session, card):
    here, there = StoreFactory(), StoreFactory()
    charge = pay(card, 4000, store_id=here.id)
    refused(Code.NOT_FOUND, spending.refund_charge, session, charge.id, refund_key="R",
            store_id=there.id)
    refused(Code.NOT_FOUND, spending.refund_charge, session, 9999, refund_key="R",
            store_id=here.id)


@pytest.mark.parametrize("amount", [0, -1, 2.5, "1"])
def test_refund_amounts_are_whole_and_above_zero(session, card, amount):
    charge = pay(card, 4000)
    refused(Code.INVALID, spending.refund_charge, session, charge.id, amount_minor=amount,
            refund_key="R", store_id=None)


def test_a_refund_comes_back_to_a_frozen_or_expired_card(session, owner):
    clock.freeze(datetime(2026, 1, 1, 12, tzinfo=UTC))
    card = make_card(session, validity_days=10)
    charge = pay(card, 4000)
    spending.freeze(session, card.id, operator_id=owner.id, reason="dispute")
    spending.refund_charge(session, charge.id, amount_minor=1000, refund_key="R1",
                           store_id=None)
    spending.restore(session, card.id, operator_id=owner.id)
    clock.advance(timedelta(days=11))
    spending.refund_charge(session, charge.id, amount_minor=1000, refund_key="R2",
                           store_id=None)
    assert cards.balance(session, card) == 8000


def test_a_refund_does_not_reopen_a_paid_back_card(session, card):
    charge = pay(card, 4000)
    with transaction(session):
        session.get(GiftCard, card.id).status = CardStatus.REFUNDED
    refused(Code.INACTIVE, spending.refund_charge, session, charge.id, refund_key="R",
            store_id=None)


# --- recharges -----------------------------------------------------------------------------

def recharge(card, amount, key="T1", **extra):
    args = {"number": card.number, "amount_minor": amount, "currency": "CNY",
            "idempotency_key": key, "store_id": None, "client_id": None, **extra}
    return spending.recharge(db.session, **args)


def test_a_recharge_adds_once_per_key_where_the_product_allows_it(session):
    card = make_card(session, pos_recharge=True)
    row = recharge(card, 5000)
    assert (row.kind, row.amount_minor, row.balance_after, row.replayed) == (
        TransactionKind.RECHARGE, 5000, 15000, False)
    again = recharge(card, 5000)
    assert again.id == row.id and again.replayed is True
    refused(Code.IDEMPOTENCY_CONFLICT, recharge, card, 6000)
    assert cards.balance(session, card) == 15000
    assert_ledger_matches(session, card)


def test_a_card_without_pos_recharge_is_not_rechargeable(session, card):
    refused(Code.NOT_RECHARGEABLE, recharge, card, 5000)
    assert cards.balance(session, card) == 10000


def test_frozen_expired_or_inactive_cards_cannot_be_recharged(session, owner):
    clock.freeze(datetime(2026, 1, 1, 12, tzinfo=UTC))
    frozen = make_card(session, pos_recharge=True)
    spending.freeze(session, frozen.id, operator_id=owner.id, reason="lost")
    refused(Code.FROZEN, recharge, frozen, 100)
    expired = make_card(session, pos_recharge=True, validity_days=1)
    clock.advance(timedelta(days=2))
    refused(Code.EXPIRED, recharge, expired, 100)
    pending = make_card(session, pos_recharge=True, activate=False)
    refused(Code.INACTIVE, recharge, pending, 100)
    refused(Code.INVALID, recharge, make_card(session, pos_recharge=True), 0)


def test_a_recharge_follows_the_store_and_currency_rules(session):
    here, there = StoreFactory(), StoreFactory()
    card = make_card(session, pos_recharge=True, store_ids=[here.id])
    refused(Code.WRONG_STORE, recharge, card, 100, store_id=there.id)
    refused(Code.INVALID, recharge, card, 100, currency="USD", store_id=here.id)
    assert recharge(card, 100, store_id=here.id).store_id == here.id


# --- freeze and restore --------------------------------------------------------------------

def test_freeze_and_restore_are_recorded_and_audited(session, card, owner):
    spending.freeze(session, card.id, operator_id=owner.id, reason="reported lost")
    assert session.get(GiftCard, card.id).status == CardStatus.FROZEN
    refused(Code.FROZEN, pay, card, 100)
    refused(Code.NOT_NOW, spending.freeze, session, card.id, operator_id=owner.id,
            reason="again")
    spending.restore(session, card.id, operator_id=owner.id, reason="found")
    refused(Code.NOT_NOW, spending.restore, session, card.id, operator_id=owner.id)
    assert pay(card, 100).amount_minor == 100
    spending.freeze(session, card.id, operator_id=owner.id, reason="twice")
    kinds = [(t.kind, t.amount_minor, t.balance_after, t.operator_id, t.note)
             for t in history(session, card)]
    assert kinds == [
        (TransactionKind.ACTIVATION, 10000, 10000, None, None),
        (TransactionKind.FREEZE, 0, 10000, owner.id, "reported lost"),
        (TransactionKind.RESTORE, 0, 10000, owner.id, "found"),
        (TransactionKind.CONSUMPTION, -100, 9900, None, None),
        (TransactionKind.FREEZE, 0, 9900, owner.id, "twice"),
    ]
    audit = session.scalars(select(AuditEntry).where(AuditEntry.object_type == "giftcards")
                            .order_by(AuditEntry.id)).all()
    assert [(a.action, a.staff_id, a.object_id) for a in audit] == [
        ("giftcard.freeze", owner.id, str(card.id)), ("giftcard.restore", owner.id,
                                                      str(card.id)),
        ("giftcard.freeze", owner.id, str(card.id))]
    assert audit[0].after == {"status": "frozen", "reason": "reported lost"}


def test_a_freeze_needs_a_reason_and_a_known_active_card(session, owner):
    card = make_card(session)
    refused(Code.INVALID, spending.freeze, session, card.id, operator_id=owner.id,
            reason=" ")
    refused(Code.NOT_FOUND, spending.freeze, session, 9999, operator_id=owner.id,
            reason="x")
    pending = make_card(session, activate=False)
    refused(Code.NOT_NOW, spending.freeze, session, pending.id, operator_id=owner.id,
            reason="x")
    assert session.get(GiftCard, card.id).status == CardStatus.ACTIVE
