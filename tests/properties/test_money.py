"""Money: splitting never loses or invents a minor unit, percentages never take more than
the amount, and minor units follow the currency."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from portal.benefits.quote import _percent_of
from portal.coupons.services import Line, discount_for
from portal.money import Money
from tests.properties.conftest import PURE

amounts = st.integers(min_value=-10**12, max_value=10**12)
weights = st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=30) \
    .filter(lambda ws: sum(ws) > 0)
CURRENCIES = ["CNY", "USD", "JPY", "KRW", "KWD", "BHD", "EUR", "HKD"]


@PURE
@given(amount=amounts, weights=weights)
@example(amount=1, weights=[0, 1, 1])     # the unit went to the share weighing nothing
@example(amount=-100, weights=[1, 1, 1])
def test_allocate_adds_up_and_stays_within_a_unit_of_the_exact_share(amount, weights):
    shares = [s.minor for s in Money(amount, "CNY").allocate(weights)]
    assert sum(shares) == amount
    total = sum(weights)
    for share, weight in zip(shares, weights, strict=True):
        exact = Decimal(amount) * weight / total
        assert abs(share - exact) < 1
        if weight == 0:
            assert share == 0


@PURE
@given(amount=amounts, parts=st.integers(min_value=1, max_value=500))
def test_split_shares_differ_by_at_most_one_unit(amount, parts):
    shares = [s.minor for s in Money(amount, "USD").split(parts)]
    assert len(shares) == parts and sum(shares) == amount
    assert max(shares) - min(shares) <= 1


@pytest.mark.parametrize("parts", [0, -1, 1.0, True])
def test_split_refuses_fewer_than_one_part(parts):
    with pytest.raises(ValueError):
        Money(100, "USD").split(parts)


@pytest.mark.parametrize("weights", [[], [0, 0], [2, -1]])
def test_allocate_refuses_weights_that_share_nothing(weights):
    with pytest.raises(ValueError):
        Money(100, "USD").allocate(weights)


@PURE
@given(amount=st.integers(min_value=0, max_value=10**12),
       bp=st.integers(min_value=0, max_value=10_000),
       rounding=st.sampled_from(["half_up", "down", "up"]))
def test_a_percentage_never_takes_more_than_the_amount(amount, bp, rounding):
    off = Money(amount, "CNY").multiply(Decimal(bp) / 10_000, rounding).minor
    assert 0 <= off <= amount
    assert 0 <= _percent_of(amount, bp) <= amount


@PURE
@given(amount=st.integers(min_value=0, max_value=10**12),
       bp=st.integers(min_value=0, max_value=10_000))
def test_the_quote_and_money_round_a_percentage_alike(amount, bp):
    # Both say "half up, once, to the minor unit"; a coupon and a benefit must agree.
    assert _percent_of(amount, bp) == Money(amount, "CNY").multiply(Decimal(bp) / 10_000).minor


class _Template:
    """The fields of a coupon template that discount_for reads."""

    def __init__(self, **fields):
        self.product_ids, self.min_spend_minor, self.cap_minor = [], None, None
        self.currency, self.amount_minor, self.percent_off = "CNY", None, None
        self.__dict__.update(fields)


line_lists = st.lists(st.builds(Line, product_id=st.sampled_from(["A", "B", ""]),
                                quantity=st.integers(1, 50),
                                amount=st.integers(0, 10**8)), max_size=20)


@PURE
@given(lines=line_lists, kind=st.sampled_from(["cash", "discount", "gift"]),
       value=st.integers(1, 10**8), percent=st.integers(0, 10_000),
       cap=st.none() | st.integers(1, 10**8), products=st.sampled_from([[], ["A"]]))
def test_a_coupon_never_takes_off_more_than_the_eligible_lines(lines, kind, value, percent,
                                                                cap, products):
    template = _Template(kind=kind, amount_minor=value, percent_off=percent, cap_minor=cap,
                         product_ids=products)
    _reason, off = discount_for(template, lines)
    eligible = sum(ln.amount for ln in lines if not products or ln.product_id in products)
    assert 0 <= off <= eligible
    if kind == "discount" and cap:
        assert off <= cap


@PURE
@given(currency=st.sampled_from(CURRENCIES), minor=amounts)
def test_minor_units_follow_the_currency(currency, minor):
    money = Money(minor, currency)
    assert Money.parse(str(money.amount), currency) == money
    digits = {"JPY": 0, "KRW": 0, "KWD": 3, "BHD": 3}.get(currency, 2)
    assert money.amount == Decimal(minor).scaleb(-digits)
