"""Earning from orders: no line earns on more than was paid for it, what was paid with
points earns nothing, and a larger base never earns less."""
from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from portal.loyalty.models import ProductFilter
from portal.loyalty.services import OrderLine, Payment, earned, line_bases
from tests.properties.conftest import PURE

orders = st.lists(st.tuples(st.sampled_from(["LATTE", "MUG", ""]), st.integers(0, 10**8)),
                  min_size=1, max_size=20)
rules = st.builds(SimpleNamespace,
                  product_filter=st.sampled_from([None, ProductFilter.WHITELIST,
                                                  ProductFilter.BLACKLIST]),
                  filter_product_ids=st.just(["LATTE"]), filter_names=st.just([]),
                  points_amount=st.integers(0, 10), points_per_minor=st.integers(1, 10_000),
                  experience_amount=st.integers(0, 10),
                  experience_per_minor=st.integers(1, 10_000))


@PURE
@given(rule=st.none() | rules, order=orders, points_paid=st.integers(0, 10**9))
def test_no_line_earns_on_more_than_was_paid_with_money(rule, order, points_paid):
    lines = [OrderLine(line_id=str(i), amount=amount, product_id=product)
             for i, (product, amount) in enumerate(order)]
    total = sum(line.amount for line in lines)
    bases = line_bases(rule, lines, [Payment("points", points_paid), Payment("cash", 1)])
    assert all(0 <= bases[line.line_id] <= line.amount for line in lines)
    assert sum(bases.values()) <= max(total - points_paid, 0)


@PURE
@given(rule=rules, base=st.integers(0, 10**9), more=st.integers(0, 10**9))
def test_a_larger_base_never_earns_less(rule, base, more):
    points, experience = earned(rule, base)
    more_points, more_experience = earned(rule, base + more)
    assert 0 <= points <= more_points and 0 <= experience <= more_experience
