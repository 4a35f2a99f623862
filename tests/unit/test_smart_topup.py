"""Smart top-up formulas with the doc's examples, and which offers a short bill gets."""
from __future__ import annotations

import pytest

from portal.wallet.models import SmartPlan, SmartTier
from portal.wallet.smart import tier_offer


def _plan(**kw) -> SmartPlan:
    values = {"id": 1, "name": "Smart", "currency": "CNY", "rounding_minor": 10,
              "min_topup_minor": 0, "first_bonus": False}
    values.update(kw)
    return SmartPlan(**values)


def test_discount_tier_doc_example_120_plus_8_is_128_usable():
    tier = SmartTier(id=1, kind="discount", multiplier_bp=12000, bonus_bp=800)
    offer = tier_offer(_plan(), tier, 10000, first=False)
    assert (offer.topup, offer.bonus, offer.usable, offer.points) == (12000, 800, 12800, 0)


def test_gift_tier_doc_example_117_and_4_50_and_11_points():
    tier = SmartTier(id=1, kind="gift", multiplier_bp=13000, bonus_bp=500, points_bp=1000,
                     gift_template_id=7)
    offer = tier_offer(_plan(), tier, 9000, first=False)
    assert (offer.topup, offer.bonus, offer.points, offer.gift_template_ids) == \
        (11700, 450, 11, [7])


@pytest.mark.parametrize("rounding,topup", [
    (10, 12350),        # 0.1: 123.45 × 1 → 123.50, rounded up
    (100, 12400),       # 1 unit
    (1000, 13000),      # 10 units
    (10000, 20000),     # 100 units
])
def test_the_top_up_rounds_up_to_the_precision_and_the_bonus_to_the_cent(rounding, topup):
    tier = SmartTier(id=1, kind="discount", multiplier_bp=10000, bonus_bp=80)
    offer = tier_offer(_plan(rounding_minor=rounding), tier, 12345, first=False)
    assert (offer.topup, offer.bonus) == (topup, 98)    # 0.8% of 123.45 = 0.9876 → 0.98


@pytest.mark.parametrize("rounding", [10, 100, 1000])
def test_the_doc_examples_hold_whatever_the_precision(rounding):
    gift = SmartTier(id=1, kind="gift", multiplier_bp=13000, bonus_bp=500, points_bp=1000)
    offer = tier_offer(_plan(rounding_minor=rounding), gift, 9000, first=False)
    assert offer.bonus == 450                          # 5% of 90 = 4.50, at any precision
    discount = SmartTier(id=2, kind="discount", multiplier_bp=12000, bonus_bp=800)
    assert tier_offer(_plan(rounding_minor=rounding), discount, 10000, first=False).bonus \
        == 800


def test_the_minimum_top_up_raises_a_small_one():
    tier = SmartTier(id=1, kind="discount", multiplier_bp=12000, bonus_bp=0)
    assert tier_offer(_plan(min_topup_minor=20000), tier, 5000, first=False).topup == 20000


def test_fixed_tier_and_first_top_up_extras():
    fixed = SmartTier(id=1, kind="fixed", amount_minor=30000, bonus_minor=3000,
                      bonus_points=300, first_gift_template_id=9)
    assert tier_offer(_plan(first_bonus=True), fixed, 100, first=True).gift_template_ids == [9]
    assert tier_offer(_plan(first_bonus=True), fixed, 100, first=False).gift_template_ids == []
    gift = SmartTier(id=2, kind="gift", multiplier_bp=10000, bonus_bp=0, points_bp=0,
                     first_bonus_bp=500, first_points_bp=300)
    offer = tier_offer(_plan(first_bonus=True), gift, 10000, first=True)
    assert (offer.bonus, offer.points) == (500, 3)
