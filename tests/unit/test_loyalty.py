"""Points and experience from orders, their expiry, refunds and redemption."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from portal import clock, jobs, ledger
from portal.db import db
from portal.ledger import AccountKind
from portal.loyalty import services as loyalty
from portal.loyalty.errors import LoyaltyError, LoyaltyErrorCode
from portal.loyalty.models import EarningRule
from portal.members.models import Member

NOON = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


@pytest.fixture(autouse=True)
def _shanghai():
    clock.set_timezone("Asia/Shanghai")
    clock.freeze(NOON)


@pytest.fixture
def rule(plan):
    r = EarningRule(plan_id=plan.id, points_amount=10, points_per_minor=1000,
                    experience_amount=1, experience_per_minor=100)
    db.session.add(r)
    db.session.commit()
    return r


def _order(session, member, external_id="A1", lines=None, payments=(), **kw):
    card = session.merge(member).cards[0]
    lines = lines or [loyalty.OrderLine("1", 2900)]
    return loyalty.record_order(session, store_id=kw.pop("store_id", 1), client_id=None,
                                channel="POS", external_id=external_id, card_no=card.number,
                                occurred_at=kw.pop("at", clock.now()), currency="CNY",
                                lines=lines, payments=list(payments), **kw)


def _points(member):
    return ledger.balance(db.session, AccountKind.POINTS, "member", member.id)


def _experience(member):
    return ledger.balance(db.session, AccountKind.EXPERIENCE, "member", member.id)


def test_ten_per_ten_spent_floors_per_order(session, member, store, rule):
    order, created = _order(session, member, store_id=store.id)   # 29.00 spent
    assert created and (order.points_earned, order.experience_earned) == (20, 29)
    assert (_points(member), _experience(member)) == (20, 29)


def test_the_same_order_twice_earns_once(session, member, store, rule):
    _order(session, member, store_id=store.id)
    order, created = _order(session, member, store_id=store.id)
    assert not created and _points(member) == 20


def test_whitelist_earns_on_the_whitelisted_lines_only(session, member, store, rule):
    rule.product_filter, rule.filter_product_ids = "whitelist", ["BEANS"]
    session.commit()
    order, _c = _order(session, member, store_id=store.id, lines=[
        loyalty.OrderLine("1", 5000, product_id="BEANS"), loyalty.OrderLine("2", 9000)])
    assert order.earn_base_minor == 5000 and order.points_earned == 50


def test_blacklisted_lines_earn_nothing_by_name_too(session, member, store, rule):
    rule.product_filter, rule.filter_names = "blacklist", ["Gift card"]
    session.commit()
    order, _c = _order(session, member, store_id=store.id, lines=[
        loyalty.OrderLine("1", 5000, name="gift CARD"), loyalty.OrderLine("2", 3000)])
    assert order.earn_base_minor == 3000


def test_what_is_paid_with_points_earns_nothing(session, member, store, rule):
    order, _c = _order(session, member, store_id=store.id,
                       lines=[loyalty.OrderLine("1", 4000)],
                       payments=[loyalty.Payment("points", 1000), loyalty.Payment("cash", 3000)])
    assert order.earn_base_minor == 3000 and order.points_earned == 30


@pytest.mark.parametrize("years,earned_local,expires_local", [
    (0, datetime(2026, 3, 10, 12), datetime(2027, 1, 1)),
    (1, datetime(2026, 3, 10, 12), datetime(2028, 1, 1)),
    (0, datetime(2026, 12, 31, 23, 59), datetime(2027, 1, 1)),   # the last minute of the year
    (0, datetime(2027, 1, 1, 0, 0), datetime(2028, 1, 1)),       # the first minute of the next
    (1, datetime(2028, 2, 29, 9), datetime(2030, 1, 1)),          # a leap day
])
def test_points_expire_on_1_january_after_n_years_local_time(years, earned_local,
                                                             expires_local):
    rule = EarningRule(points_expiry_years=years)
    tz = clock.timezone()
    earned_at = earned_local.replace(tzinfo=tz).astimezone(UTC)
    assert loyalty.points_expiry(rule, earned_at) == expires_local.replace(tzinfo=tz)


def test_points_expire_at_local_midnight_by_the_minute_sweep(session, member, store, rule):
    rule.points_expiry_years = 0
    session.commit()
    _order(session, member, store_id=store.id)
    clock.freeze(datetime(2026, 12, 31, 15, 59, tzinfo=UTC))  # 23:59 on 31 Dec in Shanghai
    assert jobs.run_tick()["expire_points"] == 0
    clock.advance(timedelta(minutes=1))                        # 0:00 on 1 Jan
    assert jobs.run_tick()["expire_points"] == 20
    assert jobs.run_tick()["expire_points"] == 0
    assert _points(member) == 0 and _experience(member) == 29   # experience stays


def test_partial_refunds_reverse_in_proportion_and_never_more(session, member, store, rule):
    order, _c = _order(session, member, store_id=store.id, lines=[
        loyalty.OrderLine("1", 6000), loyalty.OrderLine("2", 4000)])
    assert order.points_earned == 100
    first = loyalty.refund_order(session, store_id=store.id, external_id="A1", refund_id="r1",
                                 lines=[("1", 3000)])
    assert first.points_reversed == 30 and _points(member) == 70
    again = loyalty.refund_order(session, store_id=store.id, external_id="A1", refund_id="r1",
                                 lines=[("1", 3000)])
    assert again.id == first.id and _points(member) == 70      # once per refund id
    rest = loyalty.refund_order(session, store_id=store.id, external_id="A1", refund_id="r2",
                                lines=None)
    assert rest.points_reversed == 70 and _points(member) == 0
    assert _experience(member) == 0
    with pytest.raises(LoyaltyError) as e:
        loyalty.refund_order(session, store_id=store.id, external_id="A1", refund_id="r3",
                             lines=[("2", 1)])
    assert e.value.code == LoyaltyErrorCode.REFUND_TOO_LARGE


@pytest.mark.parametrize("lines,code", [([("9", 100)], LoyaltyErrorCode.UNKNOWN_LINE),
                                        ([("1", 3000)], LoyaltyErrorCode.REFUND_TOO_LARGE),
                                        ([("1", 0)], LoyaltyErrorCode.REFUND_TOO_LARGE)])
def test_bad_refunds_change_nothing(session, member, store, rule, lines, code):
    _order(session, member, store_id=store.id)
    with pytest.raises(LoyaltyError) as e:
        loyalty.refund_order(session, store_id=store.id, external_id="A1", refund_id="r",
                             lines=lines)
    assert e.value.code == code and _points(member) == 20


def test_refund_after_the_points_were_spent_takes_back_what_is_left(session, member, store,
                                                                     rule):
    order, _c = _order(session, member, store_id=store.id)
    card = session.merge(member).cards[0]
    loyalty.redeem_points(session, card_no=card.number, points=15, reference="x",
                          store_id=store.id)
    refund = loyalty.refund_order(session, store_id=store.id, external_id="A1",
                                  refund_id="r", lines=None)
    assert refund.points_reversed == 5 and _points(member) == 0


def test_redeem_points_once_per_reference_and_not_below_zero(session, member, store, rule):
    _order(session, member, store_id=store.id)
    card = session.merge(member).cards[0]
    loyalty.redeem_points(session, card_no=card.number, points=5, reference="R1",
                          store_id=store.id)
    loyalty.redeem_points(session, card_no=card.number, points=5, reference="R1",
                          store_id=store.id)
    assert _points(member) == 15
    with pytest.raises(LoyaltyError) as e:
        loyalty.redeem_points(session, card_no=card.number, points=16, reference="R2",
                              store_id=store.id)
    assert e.value.code == LoyaltyErrorCode.INSUFFICIENT_POINTS and _points(member) == 15


def test_orders_update_the_last_purchase_time(session, member, store, rule):
    _order(session, member, store_id=store.id, at=NOON - timedelta(days=1))
    _order(session, member, "A2", store_id=store.id, at=NOON - timedelta(days=3))
    session.expire_all()
    assert session.get(Member, member.id).last_purchase_at == NOON - timedelta(days=1)


def test_unknown_card_and_wrong_currency(session, member, store, rule):
    with pytest.raises(LoyaltyError) as e:
        loyalty.record_order(session, store_id=store.id, client_id=None, channel="POS",
                             external_id="X", card_no="1234", occurred_at=NOON, currency="CNY",
                             lines=[loyalty.OrderLine("1", 100)], payments=[])
    assert e.value.code == LoyaltyErrorCode.UNKNOWN_CARD
    card = session.merge(member).cards[0]
    with pytest.raises(LoyaltyError) as e:
        loyalty.record_order(session, store_id=store.id, client_id=None, channel="POS",
                             external_id="X", card_no=card.number, occurred_at=NOON,
                             currency="USD", lines=[loyalty.OrderLine("1", 100)], payments=[])
    assert e.value.code == LoyaltyErrorCode.WRONG_CURRENCY


def test_lookup_shows_the_points_that_expire_next(session, member, store, rule):
    rule.points_expiry_years = 0
    session.commit()
    _order(session, member, store_id=store.id)
    standing = loyalty.lookup(session, phone=member.mobile)
    assert standing.points == 20 and standing.next_expiry_points == 20
    assert standing.next_expiry_at == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)


def test_what_a_refund_could_not_take_back_is_written_off_not_taken_later(session, member,
                                                                          store, rule):
    card = session.merge(member).cards[0]
    _order(session, member, store_id=store.id, lines=[loyalty.OrderLine("1", 10000)])
    loyalty.redeem_points(session, card_no=card.number, points=80, reference="spend",
                          store_id=store.id)
    first = loyalty.refund_order(session, store_id=store.id, external_id="A1",
                                 refund_id="F1", lines=None)
    assert (first.points_reversed, first.points_written_off) == (20, 80)
    _order(session, member, "A2", store_id=store.id, lines=[loyalty.OrderLine("1", 10000)])
    with pytest.raises(LoyaltyError) as e:
        loyalty.refund_order(session, store_id=store.id, external_id="A1", refund_id="F2",
                             lines=None)
    assert e.value.code == LoyaltyErrorCode.REFUND_TOO_LARGE
    assert _points(member) == 100        # the second order's points are untouched


def test_lapsed_points_cannot_be_spent_before_the_sweep_runs(session, member, store, rule):
    rule.points_expiry_years = 0
    session.commit()
    _order(session, member, store_id=store.id)
    clock.freeze(datetime(2026, 12, 31, 16, 1, tzinfo=UTC))   # 0:01 on 1 Jan in Shanghai
    card = session.merge(member).cards[0]
    with pytest.raises(LoyaltyError) as e:
        loyalty.redeem_points(session, card_no=card.number, points=1, reference="late",
                              store_id=store.id)
    assert e.value.code == LoyaltyErrorCode.INSUFFICIENT_POINTS


def test_a_frozen_card_neither_earns_nor_spends(session, member, store, rule):
    card = session.merge(member).cards[0]
    card.status = "frozen"
    session.commit()
    with pytest.raises(LoyaltyError) as e:
        _order(session, member, store_id=store.id)
    assert e.value.code == LoyaltyErrorCode.CARD_INACTIVE
