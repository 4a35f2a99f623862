"""The basket quote: line offers, promotions, restrictions, reasons and points."""
from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from portal import clock
from portal.benefits.models import Benefit
from portal.benefits.quote import QuoteLine, Reason, quote
from portal.db import db, transaction
from portal.loyalty.errors import LoyaltyError
from portal.loyalty.models import EarningRule
from portal.members.models import Tier

FRIDAY_NOON = datetime(2026, 3, 6, 4, 0, tzinfo=UTC)       # Friday 12:00 in Shanghai
FRIDAYS_10_22 = {"frequency": "weekly", "days": [4], "times": "window",
                 "window": ["10:00", "22:00"]}


@pytest.fixture(autouse=True)
def _shanghai():
    clock.set_timezone("Asia/Shanghai")
    clock.freeze(FRIDAY_NOON)
    yield
    clock.set_timezone("UTC")


@pytest.fixture
def card(member):
    return db.session.merge(member).cards[0]


@pytest.fixture
def gold(plan):
    tier = Tier(plan_id=plan.id, name="Gold", rank=1, threshold=100, rule="accumulated")
    db.session.add(tier)
    db.session.commit()
    return tier


@pytest.fixture
def rule(plan):
    """1 point per ¥1 (100 minor units)."""
    r = EarningRule(plan_id=plan.id, points_amount=1, points_per_minor=100,
                    experience_amount=1, experience_per_minor=100)
    db.session.add(r)
    db.session.commit()
    return r


def add(kind, **kw) -> Benefit:
    b = Benefit(kind=kind, name=kw.pop("name", kind), currency=kw.pop("currency", "CNY"), **kw)
    db.session.add(b)
    db.session.commit()
    return b


def line(product_id="LATTE", unit_price=3000, quantity=1, category="coffee"):
    return QuoteLine(product_id, category, quantity, unit_price)


def run(card, lines, **kw):
    kw.setdefault("channel", "POS")
    return quote(db.session, card_no=card.number, lines=lines, **kw)


def reasons(skipped):
    return {(s.benefit.name, s.reason) for s in skipped}


# --- line offers -------------------------------------------------------------------------

def test_member_price_is_per_unit_times_quantity(card):
    add("member_price", prices=[{"product_id": "LATTE", "price_minor": 2500}])
    q = run(card, [line(quantity=2)])
    (lq,) = q.lines
    assert (lq.amount, lq.discount, lq.final, lq.offer.unit_price) == (6000, 1000, 5000, 2500)
    assert q.total == 5000 and q.discount == 1000


def test_member_price_concerns_only_its_products(card):
    add("member_price", prices=[{"product_id": "TEA", "price_minor": 100}])
    q = run(card, [line()])
    assert q.lines[0].offer is None and q.lines[0].not_applied == [] and q.not_applied == []


def test_discount_rounds_half_up_once_per_line(card):
    add("discount", discount_bp=1000)
    q = run(card, [line(unit_price=335, quantity=3), line("TEA", 1004)])
    assert [ln.discount for ln in q.lines] == [101, 100]     # 100.5 → 101, 100.4 → 100


def test_member_price_and_discount_do_not_stack_the_better_wins(card):
    add("member_price", name="price", prices=[{"product_id": "LATTE", "price_minor": 2500}])
    add("discount", name="ten", discount_bp=1000)
    q = run(card, [line(unit_price=3000), line("TEA", 3000)])
    latte, tea = q.lines
    assert latte.offer.benefit.name == "price" and latte.discount == 500
    assert reasons(latte.not_applied) == {("ten", Reason.NOT_BETTER)}
    assert tea.offer.benefit.name == "ten" and tea.discount == 300


def test_percentage_beats_a_weaker_member_price(card):
    add("member_price", name="price", prices=[{"product_id": "LATTE", "price_minor": 2900}])
    add("discount", name="ten", discount_bp=1000)
    (lq,) = run(card, [line(unit_price=3000)]).lines
    assert lq.offer.benefit.name == "ten" and lq.final == 2700
    assert reasons(lq.not_applied) == {("price", Reason.NOT_BETTER)}


def test_best_percentage_among_discount_member_day_and_birthday(card):
    db.session.merge(card).member.born_on = date(1990, 3, 6)
    db.session.commit()
    add("discount", name="ten", discount_bp=1000)
    add("member_day", name="friday", discount_bp=1500, schedule=FRIDAYS_10_22)
    add("birthday", name="birthday", discount_bp=1200, birthday_window="day")
    (lq,) = run(card, [line(unit_price=10000)]).lines
    assert lq.offer.benefit.name == "friday" and lq.offer.discount_bp == 1500
    assert reasons(lq.not_applied) == {("ten", Reason.NOT_BETTER),
                                      ("birthday", Reason.NOT_BETTER)}


def test_tier_perk_adds_to_a_member_day_discount(card, gold):
    add("discount", name="ten", discount_bp=1000)
    add("member_day", name="friday", discount_bp=500, schedule=FRIDAYS_10_22,
        tier_perks=[{"tier_id": gold.id, "discount_bp": 1000}])
    (lq,) = run(card, [line(unit_price=10000)]).lines
    assert lq.offer.benefit.name == "ten"                      # base tier: 5% < 10%
    c = db.session.merge(card)
    c.tier_id = gold.id
    db.session.commit()
    (lq,) = run(card, [line(unit_price=10000)]).lines
    assert lq.offer.benefit.name == "friday" and lq.discount == 1500


def test_equal_offers_go_to_the_older_benefit(card):
    add("discount", name="first", discount_bp=1000)
    add("discount", name="second", discount_bp=1000)
    (lq,) = run(card, [line()]).lines
    assert lq.offer.benefit.name == "first"


def test_benefits_of_other_plans_tiers_currencies_or_inactive_are_not_listed(card, gold):
    add("discount", name="plan", discount_bp=1000, plan_ids=[card.plan_id + 100])
    add("discount", name="tier", discount_bp=1000, tier_ids=[gold.id])
    add("discount", name="usd", discount_bp=1000, currency="USD")
    add("discount", name="off", discount_bp=1000, status="inactive")
    q = run(card, [line()])
    assert q.lines[0].offer is None and q.not_applied == [] and q.lines[0].not_applied == []


# --- reasons -----------------------------------------------------------------------------

def test_wrong_channel(card):
    add("discount", name="shop", discount_bp=1000, channels=["ONLINE"])
    q = run(card, [line()])
    assert q.lines[0].offer is None
    assert reasons(q.not_applied) == {("shop", Reason.WRONG_CHANNEL)}
    assert run(card, [line()], channel="online").lines[0].discount == 300


def test_member_day_outside_its_window(card):
    add("member_day", name="friday", discount_bp=1000, schedule=FRIDAYS_10_22)
    at = datetime(2026, 3, 6, 14, 0, tzinfo=UTC)                 # 22:00 Friday: ended
    q = run(card, [line()], at=at)
    assert q.lines[0].offer is None
    assert reasons(q.not_applied) == {("friday", Reason.OUTSIDE_TIME_WINDOW)}
    start = datetime(2026, 3, 6, 2, 0, tzinfo=UTC)               # 10:00: begun
    assert run(card, [line()], at=start).lines[0].discount == 300


def test_birthday_outside_its_window_and_without_a_birthday(card):
    add("birthday", name="bday", discount_bp=1000, birthday_window="week")
    assert reasons(run(card, [line()]).not_applied) == {("bday", Reason.OUTSIDE_TIME_WINDOW)}
    db.session.merge(card).member.born_on = date(1990, 3, 2)   # Monday of this week
    db.session.commit()
    assert run(card, [line()]).lines[0].discount == 300


def test_birthday_week_across_the_year_end_applies_on_2_january(card):
    db.session.merge(card).member.born_on = date(1990, 12, 31)
    db.session.commit()
    add("birthday", name="bday", discount_bp=2000, birthday_window="week")
    at = datetime(2026, 1, 2, 4, 0, tzinfo=UTC)
    assert run(card, [line()], at=at).lines[0].discount == 600
    at = datetime(2026, 1, 5, 4, 0, tzinfo=UTC)
    assert run(card, [line()], at=at).lines[0].offer is None


def test_excluded_product_and_category(card):
    add("discount", name="no-beans", discount_bp=1000,
        exclusions={"mode": "products", "values": ["BEANS"]})
    add("discount", name="no-gifts", discount_bp=500,
        exclusions={"mode": "categories", "values": ["Gifts"]})
    beans, mug, latte = run(card, [line("BEANS", category="grocery"),
                                   line("MUG", category="gifts"), line()]).lines
    assert beans.offer.benefit.name == "no-gifts"
    assert reasons(beans.not_applied) == {("no-beans", Reason.EXCLUDED_PRODUCT)}
    assert mug.offer.benefit.name == "no-beans"
    assert reasons(mug.not_applied) == {("no-gifts", Reason.EXCLUDED_CATEGORY)}
    assert latte.offer.benefit.name == "no-beans"
    assert reasons(latte.not_applied) == {("no-gifts", Reason.NOT_BETTER)}


# --- restriction rules -------------------------------------------------------------------

def _prepay(card, amount):
    from portal.wallet import balance as wallet

    with transaction(db.session):
        wallet.credit(db.session, db.session.merge(card), principal=amount, bonus=0,
                      key="test-prepay", reason="test", source=("test", 1))


def test_restriction_balance_below_amount_with_given_balance(card):
    add("discount", name="ten", discount_bp=1000,
        restriction={"rule": "balance_below_amount", "amount_minor": 5000})
    q = run(card, [line()], prepaid_balance=4999)
    assert q.lines[0].offer is None
    assert reasons(q.not_applied) == {("ten", Reason.RESTRICTION_RULE)}
    assert run(card, [line()], prepaid_balance=5000).lines[0].discount == 300


def test_restriction_reads_the_cards_real_balance_when_none_is_given(card):
    add("discount", name="ten", discount_bp=1000,
        restriction={"rule": "balance_below_amount", "amount_minor": 5000})
    q = run(card, [line()])
    assert q.prepaid_balance == 0 and not q.prepaid_balance_given
    assert q.lines[0].offer is None
    _prepay(card, 5000)
    q = run(card, [line()])
    assert q.prepaid_balance == 5000 and q.lines[0].discount == 300


def test_restriction_balance_below_due_is_the_basket_before_discounts(card):
    add("discount", name="ten", discount_bp=1000,
        restriction={"rule": "balance_below_due"})
    assert run(card, [line()], prepaid_balance=2999).lines[0].offer is None
    assert run(card, [line()], prepaid_balance=3000).lines[0].discount == 300


def test_restriction_balance_below_discounted_due_is_after_this_benefits_discount(card):
    add("discount", name="ten", discount_bp=1000,
        restriction={"rule": "balance_below_discounted_due"})
    assert run(card, [line()], prepaid_balance=2699).lines[0].offer is None
    assert run(card, [line()], prepaid_balance=2700).lines[0].discount == 300


def test_no_restriction_does_not_read_the_balance(card):
    add("discount", discount_bp=1000)
    assert run(card, [line()]).prepaid_balance is None


# --- promotions --------------------------------------------------------------------------

def test_promotion_threshold_counts_eligible_lines_after_line_offers(card):
    add("discount", name="ten", discount_bp=1000)
    add("promotion", name="20 off 100", threshold_minor=10000, off_minor=2000)
    q = run(card, [line(unit_price=5000), line("TEA", 5000)])    # 90.00 after 10% off
    assert q.promotion is None
    assert reasons(q.not_applied) == {("20 off 100", Reason.BELOW_THRESHOLD)}
    q = run(card, [line(unit_price=6000), line("TEA", 6000)])    # 108.00
    assert q.promotion.benefit.name == "20 off 100" and q.promotion.discount == 2000
    assert q.total == 12000 - 1200 - 2000
    assert sum(ln.promotion_discount for ln in q.lines) == 2000


def test_promotion_excluded_lines_do_not_count_and_take_no_share(card):
    add("promotion", name="promo", threshold_minor=5000, off_minor=1000,
        exclusions={"mode": "categories", "values": ["tea"]})
    q = run(card, [line(unit_price=4000), line("TEA", 4000, category="tea")])
    assert q.promotion is None
    assert reasons(q.lines[1].not_applied) == {("promo", Reason.EXCLUDED_CATEGORY)}
    q = run(card, [line(unit_price=6000), line("TEA", 4000, category="tea")])
    assert [ln.promotion_discount for ln in q.lines] == [1000, 0]


def test_only_the_best_promotion_applies_once(card):
    add("promotion", name="small", threshold_minor=5000, off_minor=500)
    add("promotion", name="big", threshold_minor=10000, off_minor=2000)
    q = run(card, [line(unit_price=4000, quantity=3)])
    assert q.promotion.benefit.name == "big" and q.total == 10000
    assert reasons(q.not_applied) == {("small", Reason.NOT_BETTER)}


def test_promotion_share_adds_up_exactly(card):
    add("promotion", threshold_minor=0, off_minor=1000)
    q = run(card, [line(unit_price=3333), line("B", 3333), line("C", 3334)])
    assert [ln.promotion_discount for ln in q.lines] == [333, 333, 334]


def test_promotion_restriction_rule(card):
    add("promotion", name="promo", threshold_minor=0, off_minor=1000,
        restriction={"rule": "balance_below_discounted_due"})
    q = run(card, [line()], prepaid_balance=1999)
    assert q.promotion is None and reasons(q.not_applied) == {("promo",
                                                                Reason.RESTRICTION_RULE)}
    assert run(card, [line()], prepaid_balance=2000).promotion.discount == 1000


# --- points ------------------------------------------------------------------------------

def test_points_on_what_is_paid_after_discounts(card, rule):
    add("discount", discount_bp=1000)
    q = run(card, [line(unit_price=2999)])          # 26.99 after 10% (300 off)
    assert (q.points_base, q.points, q.experience) == (2699, 26, 26)


def test_best_multiplier_applies_without_stacking(card, rule):
    add("multiplier", name="double", multiplier_bp=20000)
    add("multiplier", name="x1.5", multiplier_bp=15000)
    add("member_day", name="friday", multiplier_bp=30000, schedule=FRIDAYS_10_22)
    q = run(card, [line(unit_price=1050)])          # 10 points before
    assert (q.points_before_multiplier, q.multiplier_bp, q.points) == (10, 30000, 30)
    assert q.multiplier.name == "friday" and q.experience == 10
    assert reasons(q.not_applied) == {("double", Reason.NOT_BETTER),
                                      ("x1.5", Reason.NOT_BETTER)}


def test_multiplied_points_are_floored(card, rule):
    add("multiplier", multiplier_bp=15000)
    assert run(card, [line(unit_price=1100)]).points == 16     # 11 × 1.5 = 16.5


def test_member_day_multiplier_with_tier_perk_only_in_its_window(card, rule, gold):
    c = db.session.merge(card)
    c.tier_id = gold.id
    db.session.commit()
    add("member_day", name="friday", multiplier_bp=20000, schedule=FRIDAYS_10_22,
        tier_perks=[{"tier_id": gold.id, "multiplier_bp": 10000}])
    assert run(card, [line(unit_price=1000)]).points == 30
    saturday = datetime(2026, 3, 7, 4, 0, tzinfo=UTC)
    q = run(card, [line(unit_price=1000)], at=saturday)
    assert q.points == 10 and reasons(q.not_applied) == {("friday",
                                                           Reason.OUTSIDE_TIME_WINDOW)}


# --- cards and queries -------------------------------------------------------------------

def test_unknown_card_is_refused(card):
    with pytest.raises(LoyaltyError) as e:
        quote(db.session, card_no="0000000000000000", channel="POS", lines=[line()])
    assert e.value.code == "unknown_card"


def test_quote_writes_nothing(card):
    from sqlalchemy import event

    add("discount", discount_bp=1000, restriction={"rule": "balance_below_due"})
    writes = []

    def on_execute(_conn, _cursor, statement, *_a):
        if not statement.lstrip().upper().startswith("SELECT"):
            writes.append(statement)

    event.listen(db.engine, "before_cursor_execute", on_execute)
    try:
        run(card, [line()])
    finally:
        event.remove(db.engine, "before_cursor_execute", on_execute)
    assert [w for w in writes if "INSERT" in w.upper() or "UPDATE" in w.upper()] == []


def test_query_count_does_not_grow_with_lines(card, rule, gold):
    from sqlalchemy import event

    db.session.merge(card).member.born_on = date(1990, 3, 6)
    db.session.commit()
    for i in range(10):
        add("discount", discount_bp=100 + i, restriction={"rule": "balance_below_due"})
    add("birthday", discount_bp=500, birthday_window="month")
    add("promotion", threshold_minor=0, off_minor=100)

    def count(n):
        total = 0

        def on_execute(*_a):
            nonlocal total
            total += 1

        number = card.number
        db.session.commit()     # each count starts outside a transaction, data expired
        event.listen(db.engine, "before_cursor_execute", on_execute)
        try:
            quote(db.session, card_no=number, channel="POS",
                  lines=[line(f"P{i}") for i in range(n)])
        finally:
            event.remove(db.engine, "before_cursor_execute", on_execute)
        return total

    assert count(1) == count(30)
