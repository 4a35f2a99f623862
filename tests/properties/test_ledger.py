"""The ledger, over any sequence of grants, spends, expiries and repeated keys: the cached
balance is the sum of the entries, never negative, each key counts once, and spends take
the credits that expire first."""
from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import func, select

from portal import ledger
from portal.db import transaction
from portal.ledger import AccountKind, InsufficientBalance
from tests.properties.conftest import DB

T0 = datetime(2026, 1, 1, tzinfo=UTC)
# Tables are emptied after each test, not after each example: each example has its own owner.
_owners = itertools.count(1)

# (amount, key number, days until expiry or None); a negative amount is a spend.
moves = st.lists(st.tuples(st.integers(-500, 500).filter(bool), st.integers(0, 15),
                           st.none() | st.integers(1, 400)), max_size=25)


def _apply(session, acc, amount, key, days):
    with transaction(session):
        return ledger.post(session, acc, amount, reason="test", key=f"k{key}",
                           expires_at=T0 + timedelta(days=days) if days and amount > 0
                           else None)


def _sum_of_entries(session, acc) -> int:
    return session.scalar(select(func.coalesce(func.sum(ledger.Entry.delta), 0))
                          .where(ledger.Entry.account_id == acc.id))


@DB
@given(moves=moves)
@example(moves=[(100, 1, None), (100, 1, None), (-150, 2, None)])  # the key repeats
def test_balance_is_the_sum_of_entries_and_keys_count_once(session, moves):
    with transaction(session):
        acc = ledger.account(session, AccountKind.POINTS, "member", next(_owners))
    expected, seen = 0, set()
    for amount, key, days in moves:
        try:
            _apply(session, acc, amount, key, days)
        except InsufficientBalance:
            assert key not in seen and expected + amount < 0
            continue
        if key not in seen:
            seen.add(key)
            expected += amount
    session.expire_all()
    balance = ledger.balance(session, AccountKind.POINTS, "member", acc.owner_id)
    assert balance == expected == _sum_of_entries(session, acc)
    assert balance >= 0
    open_total = session.scalar(select(func.coalesce(func.sum(ledger.Entry.open_amount), 0))
                                .where(ledger.Entry.account_id == acc.id))
    assert open_total == balance  # what the open credits hold is what can be spent


lots = st.lists(st.tuples(st.integers(1, 300), st.none() | st.integers(1, 400)),
                min_size=1, max_size=12)


@DB
@given(lots=lots, spend=st.integers(1, 3000))
@example(lots=[(10, None), (10, 5)], spend=10)  # the expiring credit goes first
def test_spends_consume_the_soonest_expiring_credits_first(session, lots, spend):
    with transaction(session):
        acc = ledger.account(session, AccountKind.POINTS, "member", next(_owners))
    credits = [_apply(session, acc, amount, f"c{i}", days)
               for i, (amount, days) in enumerate(lots)]
    spend = min(spend, sum(amount for amount, _days in lots))
    _apply(session, acc, -spend, "spend", None)
    session.expire_all()
    state = [(session.get(ledger.Entry, c.id), c.delta) for c in credits]

    def order(entry):  # never-expiring credits last, then by age
        return (entry.expires_at is None, entry.expires_at or T0, entry.id)

    touched = [e for e, delta in state if e.open_amount < delta]
    for entry, _delta in state:
        if touched and order(entry) < order(max(touched, key=order)):
            assert entry.open_amount == 0, "a later credit was spent before this one"
    assert sum(delta - e.open_amount for e, delta in state) == spend


@DB
@given(lots=lots, spend=st.integers(0, 3000), after_days=st.integers(0, 500))
def test_expiry_removes_exactly_the_lapsed_remainder(session, lots, spend, after_days):
    with transaction(session):
        acc = ledger.account(session, AccountKind.POINTS, "member", next(_owners))
    for i, (amount, days) in enumerate(lots):
        _apply(session, acc, amount, f"c{i}", days)
    spend = min(spend, sum(amount for amount, _days in lots))
    if spend:
        _apply(session, acc, -spend, "spend", None)
    at = T0 + timedelta(days=after_days)
    session.expire_all()
    lapsing = session.scalar(select(func.coalesce(func.sum(ledger.Entry.open_amount), 0))
                             .where(ledger.Entry.account_id == acc.id,
                                    ledger.Entry.expires_at <= at))
    before = ledger.balance(session, AccountKind.POINTS, "member", acc.owner_id)
    with transaction(session):
        expired = ledger.expire(session, acc, at=at)
    with transaction(session):
        again = ledger.expire(session, acc, at=at)
    after = ledger.balance(session, AccountKind.POINTS, "member", acc.owner_id)
    assert expired == lapsing and again == 0
    assert after == before - expired == _sum_of_entries(session, acc)
