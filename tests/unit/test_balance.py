"""The prepaid balance: spending order, same-day locks, charges, refunds, idempotency."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal import clock, ledger
from portal.db import db, transaction
from portal.ledger import AccountKind
from portal.members.models import CardStatus
from portal.wallet import balance as wallet
from portal.wallet.errors import WalletError, WalletErrorCode
from portal.wallet.models import ChargeStatus, PlanKind, Topup, TopupPlan, TopupStatus

NOON = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


@pytest.fixture(autouse=True)
def _shanghai():
    clock.set_timezone("Asia/Shanghai")
    clock.freeze(NOON)


@pytest.fixture
def card(member):
    return db.session.merge(member).cards[0]


def fund(card, principal=0, bonus=0, key="fund", source=("test", 1)):
    with transaction(db.session):
        wallet.credit(db.session, card, principal=principal, bonus=bonus, key=key,
                      reason="topup", source=source)


def topup_today(card, amount, bonus=0, *, usable_bp=None, bonus_locked=False, key="t"):
    """A credited top-up of a plan with same-day restrictions, and its credit."""
    plan = TopupPlan(kind=PlanKind.CUSTOM, name="Custom", currency="CNY",
                     same_day_usable_bp=usable_bp, bonus_locked_same_day=bonus_locked)
    db.session.add(plan)
    db.session.flush()
    topup = Topup(plan_id=plan.id, member_id=card.member_id, card_id=card.id,
                  currency="CNY", amount_minor=amount, bonus_minor=bonus,
                  status=TopupStatus.CREDITED, credited_at=clock.now())
    db.session.add(topup)
    db.session.commit()
    fund(card, amount, bonus, key=key, source=("topup", topup.id))


def pay(card, amount, key="k", **kw):
    return wallet.charge(db.session, card_id=card.id, amount_minor=amount,
                         currency=kw.pop("currency", "CNY"), idempotency_key=key,
                         channel="POS", **kw)


def ledger_matches_balances():
    for account in db.session.scalars(select(ledger.Account)):
        total = db.session.scalar(select(func.coalesce(func.sum(ledger.Entry.delta), 0))
                                  .where(ledger.Entry.account_id == account.id))
        assert account.balance == total >= 0


# --- balance and credit ----------------------------------------------------------------------

def test_balance_of_a_card_without_accounts_is_zero(card):
    b = wallet.balance(db.session, card.id)
    assert (b.principal, b.bonus, b.total, b.spendable_now, b.currency) == (0, 0, 0, 0, "CNY")


def test_credit_posts_both_accounts_once_per_key(card):
    fund(card, 10000, 800)
    fund(card, 10000, 800)
    b = wallet.balance(db.session, card.id)
    assert (b.principal, b.bonus, b.total, b.spendable_now) == (10000, 800, 10800, 10800)
    assert len(wallet.history(db.session, card.id)) == 2


def test_credit_skips_zero_amounts(card):
    fund(card, 5000, 0)
    assert [e.kind for e in wallet.history(db.session, card.id)] == ["prepaid_principal"]


def test_balance_of_an_unknown_card_is_refused():
    with pytest.raises(WalletError) as e:
        wallet.balance(db.session, 999)
    assert e.value.code == WalletErrorCode.UNKNOWN_CARD


# --- spending order ----------------------------------------------------------------------------

def test_a_bill_is_paid_from_principal_first(card):
    fund(card, 10000, 2000)
    c = pay(card, 6000)
    assert (c.principal_minor, c.bonus_minor) == (6000, 0)
    b = wallet.balance(db.session, card.id)
    assert (b.principal, b.bonus) == (4000, 2000)


def test_bonus_pays_what_principal_cannot(card):
    fund(card, 10000, 2000)
    c = pay(card, 11500)
    assert (c.principal_minor, c.bonus_minor, c.status) == (10000, 1500, ChargeStatus.PAID)
    b = wallet.balance(db.session, card.id)
    assert (b.principal, b.bonus) == (0, 500)
    ledger_matches_balances()


def test_a_short_balance_charges_nothing(card):
    fund(card, 1000, 200)
    with pytest.raises(WalletError) as e:
        pay(card, 1201)
    assert e.value.code == WalletErrorCode.INSUFFICIENT_BALANCE
    assert (e.value.details["balance"], e.value.details["spendable_now"]) == (1200, 1200)
    b = wallet.balance(db.session, card.id)
    assert (b.principal, b.bonus) == (1000, 200)


def test_the_whole_balance_can_be_spent(card):
    fund(card, 1000, 200)
    pay(card, 1200)
    assert wallet.balance(db.session, card.id).total == 0


# --- same-day locks --------------------------------------------------------------------------

def test_a_usable_percentage_locks_the_rest_until_local_midnight(card):
    topup_today(card, 10000, usable_bp=8000)
    b = wallet.balance(db.session, card.id)
    assert (b.locked_principal, b.spendable_now) == (2000, 8000)
    assert b.locked_until == datetime(2026, 3, 10, 16, 0, tzinfo=UTC)  # 0:00 Shanghai
    with pytest.raises(WalletError) as e:
        pay(card, 8001)
    assert e.value.details["spendable_now"] == 8000
    pay(card, 8000)


def test_the_lock_is_rounded_up(card):
    topup_today(card, 999, usable_bp=8000)  # 199.8 locked → 200
    assert wallet.balance(db.session, card.id).locked_principal == 200


def test_the_lock_ends_at_local_midnight_not_utc_midnight(card):
    topup_today(card, 10000, usable_bp=5000)
    clock.freeze(datetime(2026, 3, 10, 15, 59, tzinfo=UTC))  # 23:59 in Shanghai
    assert wallet.balance(db.session, card.id).spendable_now == 5000
    clock.advance(timedelta(minutes=1))                     # 0:00 the next day
    b = wallet.balance(db.session, card.id)
    assert (b.locked, b.spendable_now, b.locked_until) == (0, 10000, None)
    pay(card, 10000)


def test_older_money_is_not_locked_by_todays_top_up(card):
    fund(card, 3000, key="old")
    topup_today(card, 10000, usable_bp=0)
    b = wallet.balance(db.session, card.id)
    assert (b.principal, b.locked_principal, b.spendable_now) == (13000, 10000, 3000)
    pay(card, 3000)
    with pytest.raises(WalletError):
        pay(card, 1, key="k2")


def test_a_locked_bonus_cannot_pay_today(card):
    topup_today(card, 10000, 1000, bonus_locked=True)
    b = wallet.balance(db.session, card.id)
    assert (b.locked_bonus, b.spendable_now) == (1000, 10000)
    with pytest.raises(WalletError):
        pay(card, 10001)
    clock.advance(timedelta(hours=12))
    c = pay(card, 11000)
    assert (c.principal_minor, c.bonus_minor) == (10000, 1000)


def test_a_top_up_from_yesterday_locks_nothing(card):
    clock.freeze(NOON - timedelta(days=1))
    topup_today(card, 10000, 1000, usable_bp=1000, bonus_locked=True)
    clock.freeze(NOON)
    assert wallet.balance(db.session, card.id).spendable_now == 11000


def test_the_lock_never_exceeds_what_is_left(card):
    topup_today(card, 10000, usable_bp=8000)
    pay(card, 8000)
    b = wallet.balance(db.session, card.id)
    assert (b.principal, b.locked_principal, b.spendable_now) == (2000, 2000, 0)


# --- bad input and refusals --------------------------------------------------------------------

@pytest.mark.parametrize("amount", [0, -5, True, 1.5])
def test_amounts_must_be_positive_integers(card, amount):
    fund(card, 1000)
    with pytest.raises(WalletError) as e:
        pay(card, amount)
    assert e.value.code == WalletErrorCode.INVALID_AMOUNT


def test_another_currency_is_refused(card):
    fund(card, 1000)
    with pytest.raises(WalletError) as e:
        pay(card, 100, currency="USD")
    assert e.value.code == WalletErrorCode.WRONG_CURRENCY


@pytest.mark.parametrize("status", [CardStatus.FROZEN, "expired"])
def test_a_frozen_or_expired_card_cannot_pay(card, status):
    fund(card, 1000)
    if status == "expired":
        card.expires_at = clock.now() - timedelta(days=1)
    else:
        card.status = status
    db.session.commit()
    with pytest.raises(WalletError) as e:
        pay(card, 100)
    assert e.value.code == WalletErrorCode.CARD_INACTIVE


def test_an_unknown_card_cannot_pay():
    with pytest.raises(WalletError) as e:
        wallet.charge(db.session, card_id=999, amount_minor=1, currency="CNY",
                      idempotency_key="k", channel="POS")
    assert e.value.code == WalletErrorCode.UNKNOWN_CARD


def test_an_empty_key_is_refused(card):
    with pytest.raises(WalletError) as e:
        pay(card, 100, key=" ")
    assert e.value.code == WalletErrorCode.INVALID


# --- idempotency --------------------------------------------------------------------------------

def test_the_same_key_charges_once(card):
    fund(card, 1000)
    first = pay(card, 600)
    again = pay(card, 600)
    assert again.id == first.id and again.replayed
    assert wallet.balance(db.session, card.id).total == 400


def test_the_same_key_with_another_amount_is_a_conflict(card):
    fund(card, 1000)
    pay(card, 600)
    with pytest.raises(WalletError) as e:
        pay(card, 500)
    assert e.value.code == WalletErrorCode.IDEMPOTENCY_CONFLICT
    assert wallet.balance(db.session, card.id).total == 400


def test_a_replay_answers_even_when_the_card_was_frozen_since(card):
    fund(card, 1000)
    first = pay(card, 600)
    card.status = CardStatus.FROZEN
    db.session.commit()
    assert pay(card, 600).id == first.id


# --- refunds ----------------------------------------------------------------------------------

def test_a_whole_refund_puts_everything_back_where_it_came_from(card):
    fund(card, 1000, 500)
    c = pay(card, 1200)                        # 1000 principal + 200 bonus
    r = wallet.refund_charge(db.session, c.id, amount_minor=None, refund_key="r")
    assert (r.amount_minor, r.principal_minor, r.bonus_minor) == (1200, 1000, 200)
    b = wallet.balance(db.session, card.id)
    assert (b.principal, b.bonus) == (1000, 500)
    assert db.session.merge(c).status == ChargeStatus.REFUNDED
    ledger_matches_balances()


def test_part_refunds_return_bonus_first_then_principal(card):
    fund(card, 1000, 500)
    c = pay(card, 1300)                        # 1000 principal + 300 bonus
    first = wallet.refund_charge(db.session, c.id, amount_minor=400, refund_key="r1")
    assert (first.bonus_minor, first.principal_minor) == (300, 100)
    second = wallet.refund_charge(db.session, c.id, amount_minor=900, refund_key="r2")
    assert (second.bonus_minor, second.principal_minor) == (0, 900)
    b = wallet.balance(db.session, card.id)
    assert (b.principal, b.bonus) == (1000, 500)


def test_a_refund_never_exceeds_what_is_left(card):
    fund(card, 1000)
    c = pay(card, 800)
    wallet.refund_charge(db.session, c.id, amount_minor=500, refund_key="r1")
    with pytest.raises(WalletError) as e:
        wallet.refund_charge(db.session, c.id, amount_minor=301, refund_key="r2")
    assert e.value.code == WalletErrorCode.REFUND_TOO_LARGE and e.value.details["left"] == 300
    wallet.refund_charge(db.session, c.id, amount_minor=None, refund_key="r3")
    with pytest.raises(WalletError) as e:
        wallet.refund_charge(db.session, c.id, amount_minor=None, refund_key="r4")
    assert e.value.code == WalletErrorCode.REFUND_TOO_LARGE
    assert wallet.balance(db.session, card.id).total == 1000


def test_the_same_refund_key_refunds_once(card):
    fund(card, 1000)
    c = pay(card, 800)
    first = wallet.refund_charge(db.session, c.id, amount_minor=300, refund_key="r")
    again = wallet.refund_charge(db.session, c.id, amount_minor=300, refund_key="r")
    assert again.id == first.id and again.replayed
    assert wallet.refund_charge(db.session, c.id, amount_minor=None, refund_key="r").id == \
        first.id
    assert wallet.balance(db.session, card.id).total == 500


def test_the_same_refund_key_with_another_amount_is_a_conflict(card):
    fund(card, 1000)
    c = pay(card, 800)
    wallet.refund_charge(db.session, c.id, amount_minor=300, refund_key="r")
    with pytest.raises(WalletError) as e:
        wallet.refund_charge(db.session, c.id, amount_minor=200, refund_key="r")
    assert e.value.code == WalletErrorCode.IDEMPOTENCY_CONFLICT


@pytest.mark.parametrize("amount", [0, -1, True])
def test_refund_amounts_must_be_positive_integers(card, amount):
    fund(card, 1000)
    c = pay(card, 800)
    with pytest.raises(WalletError) as e:
        wallet.refund_charge(db.session, c.id, amount_minor=amount, refund_key="r")
    assert e.value.code == WalletErrorCode.INVALID_AMOUNT


def test_a_refund_of_another_stores_charge_is_not_found(card, store):
    fund(card, 1000)
    c = pay(card, 800, store_id=store.id)
    with pytest.raises(WalletError) as e:
        wallet.refund_charge(db.session, c.id, amount_minor=None, refund_key="r",
                             store_id=store.id + 1)
    assert e.value.code == WalletErrorCode.UNKNOWN_CHARGE
    with pytest.raises(WalletError):
        wallet.refund_charge(db.session, 999, amount_minor=None, refund_key="r")


def test_a_refunded_charge_can_be_refunded_on_a_frozen_card(card):
    fund(card, 1000)
    c = pay(card, 800)
    card.status = CardStatus.FROZEN
    db.session.commit()
    wallet.refund_charge(db.session, c.id, amount_minor=None, refund_key="r")
    assert wallet.balance(db.session, card.id).total == 1000


# --- refunds of top-ups ---------------------------------------------------------------------------

def test_debit_for_refund_takes_at_most_what_is_left(card):
    fund(card, 1000, 100)
    pay(card, 900)                              # 100 principal left
    with transaction(db.session):
        taken = wallet.debit_for_refund(db.session, card, principal=1000, bonus=100,
                                        key="topup:1:refund", reason="topup_refund",
                                        source=("topup", 1))
    assert taken == (100, 100)
    with transaction(db.session):
        again = wallet.debit_for_refund(db.session, card, principal=1000, bonus=100,
                                        key="topup:1:refund", reason="topup_refund",
                                        source=("topup", 1))
    assert again == (100, 100)
    assert wallet.balance(db.session, card.id).total == 0
    ledger_matches_balances()


# --- history ----------------------------------------------------------------------------------

def test_history_merges_both_accounts_newest_first_in_pages(card):
    fund(card, 1000, 100, key="a")
    c = pay(card, 1050)
    wallet.refund_charge(db.session, c.id, amount_minor=None, refund_key="r")
    entries = wallet.history(db.session, card.id)
    assert [(e.reason, e.kind) for e in entries] == [
        ("charge_refund", AccountKind.PREPAID_BONUS),
        ("charge_refund", AccountKind.PREPAID_PRINCIPAL),
        ("charge", AccountKind.PREPAID_BONUS), ("charge", AccountKind.PREPAID_PRINCIPAL),
        ("topup", AccountKind.PREPAID_BONUS), ("topup", AccountKind.PREPAID_PRINCIPAL)]
    page = wallet.history(db.session, card.id, limit=4)
    rest = wallet.history(db.session, card.id, before_id=page[-1].id, limit=4)
    assert [e.id for e in page + rest] == [e.id for e in entries]


def test_member_balances_lists_only_the_members_cards_with_a_balance(card, other_member):
    other = db.session.merge(other_member).cards[0]
    assert wallet.member_balances(db.session, card.member_id) == []
    fund(card, 1000)
    fund(other, 500, key="o")
    views = wallet.member_balances(db.session, card.member_id)
    assert [v.card.id for v in views] == [card.id] and views[0].balance.total == 1000
    assert wallet.member_balances(db.session, card.member_id, card_id=other.id) == []


# --- item restrictions -------------------------------------------------------------------

def topup_for_items(card, amount, items, bonus=0, key="items"):
    """A credited top-up of a plan whose money may only pay for `items`."""
    plan = TopupPlan(kind=PlanKind.FIXED, name="Coffee only", currency="CNY",
                     amount_minor=amount, spend_product_ids=items)
    db.session.add(plan)
    db.session.flush()
    topup = Topup(plan_id=plan.id, member_id=card.member_id, card_id=card.id,
                  currency="CNY", amount_minor=amount, bonus_minor=bonus,
                  status=TopupStatus.CREDITED, credited_at=clock.now() - timedelta(days=2))
    db.session.add(topup)
    db.session.commit()
    fund(card, amount, bonus, key=key, source=("topup", topup.id))
    return topup


def test_money_kept_for_items_pays_only_bills_naming_them(card):
    topup_for_items(card, 5000, ["LATTE", "MOCHA"])
    fund(card, 1000, key="free")
    b = wallet.balance(db.session, card.id)
    assert (b.total, b.restricted, b.spendable_now) == (6000, 5000, 1000)
    with pytest.raises(WalletError):
        pay(card, 3000)                                   # no items named
    with pytest.raises(WalletError):                      # only 1,000 may pay the cake
        pay(card, 3500, lines=[{"product_id": "LATTE", "amount": 1000},
                               {"product_id": "CAKE", "amount": 2500}])
    c = pay(card, 3500, lines=[{"product_id": "LATTE", "amount": 2500},
                               {"product_id": "CAKE", "amount": 1000}])
    assert (c.principal_minor, c.bonus_minor) == (3500, 0)
    b = wallet.balance(db.session, card.id)
    assert (b.total, b.restricted, b.spendable_now) == (2500, 2500, 0)
    ledger_matches_balances()


def test_a_refund_puts_kept_money_back_under_its_restriction(card):
    topup_for_items(card, 5000, ["LATTE"])
    c = pay(card, 4000, lines=[{"product_id": "LATTE", "amount": 4000}])
    wallet.refund_charge(db.session, c.id, amount_minor=None, refund_key="R")
    b = wallet.balance(db.session, card.id)
    assert (b.total, b.restricted, b.spendable_now) == (5000, 5000, 0)


def test_lines_cannot_add_up_to_more_than_the_bill(card):
    fund(card, 5000)
    with pytest.raises(WalletError) as e:
        pay(card, 1000, lines=[{"product_id": "LATTE", "amount": 1500}])
    assert e.value.details["field"] == "lines"


def test_refunding_a_top_up_takes_back_its_own_money_first(card):
    fund(card, 3000, key="free")
    topup = topup_for_items(card, 5000, ["LATTE"])
    with transaction(db.session):
        wallet.debit_for_refund(db.session, card, principal=2000, bonus=0, key="back",
                                reason="topup_refund", source=("topup", topup.id))
    b = wallet.balance(db.session, card.id)
    assert (b.total, b.restricted, b.spendable_now) == (6000, 3000, 3000)
