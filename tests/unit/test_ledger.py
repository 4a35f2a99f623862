from datetime import UTC, datetime, timedelta

import pytest

from portal import clock, ledger
from portal.db import transaction
from portal.ledger import AccountKind, InsufficientBalance


def _account(session, owner_id=1):
    with transaction(session):
        return ledger.account(session, AccountKind.POINTS, "member", owner_id)


def _post(session, acc, delta, key, **kw):
    with transaction(session):
        return ledger.post(session, acc, delta, reason="test", key=key, **kw)


def test_post_moves_the_balance_and_records_balance_after(session):
    acc = _account(session)
    _post(session, acc, 100, "a")
    entry = _post(session, acc, -30, "b")
    assert entry.balance_after == 70
    assert ledger.balance(session, AccountKind.POINTS, "member", 1) == 70


def test_same_idempotency_key_counts_once(session):
    acc = _account(session)
    first = _post(session, acc, 100, "grant:1")
    again = _post(session, acc, 100, "grant:1")
    assert again.id == first.id
    assert ledger.balance(session, AccountKind.POINTS, "member", 1) == 100


def test_spending_more_than_the_balance_fails_and_changes_nothing(session):
    acc = _account(session)
    _post(session, acc, 50, "a")
    with pytest.raises(InsufficientBalance):
        _post(session, acc, -51, "b")
    assert ledger.balance(session, AccountKind.POINTS, "member", 1) == 50
    assert len(ledger.entries(session, acc)) == 1


def test_account_is_created_once_per_owner_and_kind(session):
    a = _account(session)
    b = _account(session)
    assert a.id == b.id


def test_spend_consumes_the_credit_that_expires_first(session):
    clock.freeze(datetime(2026, 1, 1, tzinfo=UTC))
    acc = _account(session)
    _post(session, acc, 100, "late", expires_at=clock.now() + timedelta(days=60))
    _post(session, acc, 100, "soon", expires_at=clock.now() + timedelta(days=10))
    _post(session, acc, 100, "never")
    _post(session, acc, -150, "spend")
    clock.advance(timedelta(days=11))
    with transaction(session):
        expired = ledger.expire(session, acc)
    assert expired == 0  # the soon-expiring lot was spent first
    clock.advance(timedelta(days=50))
    with transaction(session):
        expired = ledger.expire(session, acc)
    assert expired == 50
    assert ledger.balance(session, AccountKind.POINTS, "member", 1) == 100


def test_expire_twice_expires_once(session):
    clock.freeze(datetime(2026, 1, 1, tzinfo=UTC))
    acc = _account(session)
    _post(session, acc, 80, "a", expires_at=clock.now() + timedelta(days=1))
    clock.advance(timedelta(days=2))
    with transaction(session):
        assert ledger.expire(session, acc) == 80
    with transaction(session):
        assert ledger.expire(session, acc) == 0
    assert ledger.balance(session, AccountKind.POINTS, "member", 1) == 0


def test_only_credits_expire(session):
    acc = _account(session)
    with pytest.raises(ValueError), transaction(session):
        ledger.post(session, acc, -1, reason="x", key="k", expires_at=clock.now())


def test_a_credit_past_the_largest_balance_fails_and_changes_nothing(session):
    # INTEGER is 32 bits on PostgreSQL: the ledger refuses, not the database mid-transaction.
    acc = _account(session)
    _post(session, acc, ledger.MAX_BALANCE - 5, "a")
    with pytest.raises(ledger.BalanceTooLarge):
        _post(session, acc, 6, "b")
    _post(session, acc, 5, "c")
    assert ledger.balance(session, AccountKind.POINTS, "member", 1) == ledger.MAX_BALANCE


def test_a_debit_larger_than_any_balance_is_insufficient(session):
    acc = _account(session)
    _post(session, acc, 10, "a")
    with pytest.raises(InsufficientBalance):
        _post(session, acc, -(2**40), "b")
