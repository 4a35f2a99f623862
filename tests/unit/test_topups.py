"""Topping up through a payment: what is credited (once), stock held and released, refunds
taking back what they pay for, recharge codes, and smart top-ups paying the bill."""
from __future__ import annotations

import pytest

from portal import ledger
from portal.coupons.models import Coupon
from portal.ledger import AccountKind
from portal.members.models import MemberCard, Tier
from portal.payments import services as payments
from portal.payments.errors import PaymentError
from portal.payments.models import Payment
from portal.payments.providers import DemoProvider
from portal.wallet import balance as wallet
from portal.wallet import plans, smart, topups
from portal.wallet.errors import WalletError
from portal.wallet.models import (
    Charge,
    SmartPlan,
    SmartTier,
    Topup,
    TopupPlan,
)
from tests.factories import CouponTemplateFactory


@pytest.fixture
def fixed(session):
    gift = CouponTemplateFactory(title="Free cookie")
    plan = TopupPlan(kind="fixed", name="Top up 100", currency="CNY", status="active",
                     amount_minor=10000, bonus_minor=1000, bonus_points=50,
                     gift_template_id=gift.id, first_bonus=True, first_bonus_bp=500,
                     first_points_bp=0, stock_total=1, stock_left=1)
    session.add(plan)
    session.commit()
    return plan


def _card(session, member) -> MemberCard:
    return session.query(MemberCard).filter_by(member_id=member.id).one()


def _pay(app, session, topup: Topup, kind: str = "paid") -> str:
    payment = session.get(Payment, topup.payment_id)
    if payment.provider_session_id is None:
        payment.provider_session_id = f"demo_cs_{payment.token}"
        session.commit()
    body, signature = DemoProvider(app.config["SECRET_KEY"]).event(payment, kind)
    return payments.receive(session, body, signature)


def _start(session, member, plan, amount=None) -> Topup:
    return topups.start(session, member_id=member.id, card_id=_card(session, member).id,
                        plan_id=plan.id, amount_minor=amount)


def test_a_paid_top_up_credits_principal_bonus_points_and_gift_once(app, session, member,
                                                                    fixed):
    topup = _start(session, member, fixed)
    assert (topup.amount_minor, topup.bonus_minor, topup.points, topup.first) == \
        (10000, 1500, 50, True)                       # 10 bonus + 5% first top-up bonus
    assert wallet.balance(session, topup.card_id).total == 0   # not before it is paid
    assert _pay(app, session, topup) == "fulfilled"
    assert _pay(app, session, topup) == "duplicate"
    session.expire_all()
    now = wallet.balance(session, topup.card_id)
    assert (now.principal, now.bonus) == (10000, 1500)
    assert ledger.balance(session, AccountKind.POINTS, "member", member.id) == 50
    assert session.query(Coupon).filter_by(member_id=member.id).count() == 1
    assert session.get(Topup, topup.id).status == "credited"


def test_the_last_unit_of_stock_is_held_and_released_on_expiry(app, session, member,
                                                              other_member, fixed):
    topup = _start(session, member, fixed)
    with pytest.raises(WalletError):                  # the only unit is held
        _start(session, other_member, fixed)
    assert _pay(app, session, topup, "expired") == "expired"
    session.expire_all()
    assert session.get(TopupPlan, fixed.id).stock_left == 1
    assert _start(session, other_member, fixed).status == "pending"


def test_a_late_payment_after_the_stock_went_is_refunded(app, session, member, other_member,
                                                         fixed):
    late = _start(session, member, fixed)
    _pay(app, session, late, "expired")
    taken = _start(session, other_member, fixed)
    _pay(app, session, taken)
    assert _pay(app, session, late) == "refunded_unfulfillable"
    session.expire_all()
    assert wallet.balance(session, late.card_id).total == 0


def test_a_top_up_is_refunded_from_what_is_unspent(app, session, member, owner, fixed):
    topup = _start(session, member, fixed)
    _pay(app, session, topup)
    wallet.charge(session, card_id=topup.card_id, amount_minor=7000, currency="CNY",
                  idempotency_key="coffee", channel="POS")
    with pytest.raises(PaymentError) as e:
        payments.refund(session, topup.payment_id, 5000, reason="asked", operator_id=owner.id)
    assert e.value.code == "not_refundable"
    payments.refund(session, topup.payment_id, 3000, reason="asked", operator_id=owner.id)
    session.expire_all()
    now = wallet.balance(session, topup.card_id)
    assert (now.principal, now.bonus) == (0, 1500 - 450)         # 30% of the bonus back
    assert ledger.balance(session, AccountKind.POINTS, "member", member.id) == 35


def test_a_range_plan_quotes_the_chosen_amount(app, session, member):
    plan = TopupPlan(kind="range", name="Any amount", currency="CNY", status="active",
                     min_minor=10000, max_minor=50000, bonus_bp=1000, points_bp=500)
    session.add(plan)
    session.commit()
    with pytest.raises(WalletError):
        _start(session, member, plan, amount=60000)
    topup = _start(session, member, plan, amount=20000)
    assert (topup.amount_minor, topup.bonus_minor, topup.points) == (20000, 2000, 10)


def test_the_tier_upgrade_after_a_top_up(app, session, member, plan):
    gold = Tier(plan_id=plan.id, name="Gold", rank=1, threshold=1000, rule="accumulated")
    session.add(gold)
    session.flush()
    topup_plan = TopupPlan(kind="fixed", name="Gold now", currency="CNY", status="active",
                           amount_minor=50000, bonus_minor=0, bonus_points=0,
                           upgrade_tier_id=gold.id)
    session.add(topup_plan)
    session.commit()
    _pay(app, session, _start(session, member, topup_plan))
    session.expire_all()
    assert _card(session, member).tier.name == "Gold"


def test_a_recharge_code_is_a_free_top_up_once(app, session, member, other_member, owner,
                                              fixed):
    fixed.stock_left = None
    session.commit()
    batch = plans.generate_codes(session, fixed.id, count=1, amount_minor=None,
                                 scenario="Launch party", store_ids=[], channels=["ONLINE"],
                                 valid_until=None, operator_id=owner.id)
    code = plans.batch_codes(session, batch.id)[1][0].code
    topup = topups.redeem_code(session, member_id=member.id,
                               card_id=_card(session, member).id, code=code.lower())
    assert (topup.status, topup.amount_minor, topup.payment_id) == ("credited", 10000, None)
    with pytest.raises(WalletError) as e:
        topups.redeem_code(session, member_id=other_member.id,
                           card_id=_card(session, other_member).id, code=code)
    assert "used" in str(e.value)
    session.expire_all()
    assert wallet.balance(session, topup.card_id).total == 11500


def test_a_smart_top_up_pays_the_bill_in_the_same_step(app, session, member):
    plan = SmartPlan(name="Short? Top up", currency="CNY", status="active", rounding_minor=10,
                     tiers=[SmartTier(position=1, kind="discount", multiplier_bp=12000,
                                      bonus_bp=800)])
    session.add(plan)
    session.commit()
    card = _card(session, member)
    offers = smart.offers_for_bill(session, card=card, amount_minor=10000, store_id=None,
                                   channel="ONLINE")
    assert [(o["topup"], o["bonus"]) for o in offers] == [(12000, 800)]
    topup = smart.start(session, member_id=member.id, card_id=card.id, plan_id=plan.id,
                        tier_id=plan.tiers[0].id, bill_minor=10000, store_id=None)
    _pay(app, session, topup)
    session.expire_all()
    now = wallet.balance(session, card.id)
    assert now.total == 12800 - 10000
    charge = session.query(Charge).one()
    assert (charge.amount_minor, charge.topup_id) == (10000, topup.id)


def test_two_first_top_ups_paid_together_give_the_first_bonus_once(app, session, member,
                                                                   fixed):
    fixed.stock_left = None
    session.commit()
    one, two = _start(session, member, fixed), _start(session, member, fixed)
    assert one.first and two.first                  # both started before either was paid
    _pay(app, session, one)
    _pay(app, session, two)
    session.expire_all()
    assert [t.bonus_minor for t in session.query(Topup).order_by(Topup.id)] == [1500, 1000]
    assert wallet.balance(session, one.card_id).bonus == 2500


def test_a_first_only_plan_paid_twice_refunds_the_second(app, session, member, fixed):
    fixed.stock_left, fixed.first_topup_only = None, True
    session.commit()
    one, two = _start(session, member, fixed), _start(session, member, fixed)
    _pay(app, session, one)
    assert _pay(app, session, two) == "refunded_unfulfillable"


def test_stock_made_limited_meanwhile_gets_back_only_what_was_taken(app, session, member,
                                                                    fixed):
    fixed.stock_total = fixed.stock_left = None
    session.commit()
    topup = _start(session, member, fixed)
    fixed = session.get(TopupPlan, fixed.id)
    fixed.stock_total = fixed.stock_left = 3
    session.commit()
    _pay(app, session, topup, "expired")
    session.expire_all()
    assert session.get(TopupPlan, fixed.id).stock_left == 3


def test_refunds_in_parts_take_back_all_the_bonus_and_points(app, session, member, owner,
                                                             fixed):
    topup = _start(session, member, fixed)          # 100.00, bonus 15.00, 50 points
    _pay(app, session, topup)
    payments.refund(session, topup.payment_id, 3333, reason="a", operator_id=owner.id)
    payments.refund(session, topup.payment_id, 6667, reason="b", operator_id=owner.id)
    session.expire_all()
    now = wallet.balance(session, topup.card_id)
    assert (now.principal, now.bonus) == (0, 0)
    assert ledger.balance(session, AccountKind.POINTS, "member", member.id) == 0


def test_a_code_whose_plan_changed_is_refused_clearly(session, member, owner):
    plan = TopupPlan(kind="range", name="Any", currency="CNY", status="active",
                     min_minor=10000, max_minor=50000, bonus_bp=0, points_bp=0)
    session.add(plan)
    session.commit()
    batch = plans.generate_codes(session, plan.id, count=1, amount_minor=20000,
                                 scenario="Party", store_ids=[], channels=["ONLINE"],
                                 valid_until=None, operator_id=owner.id)
    code = plans.batch_codes(session, batch.id)[1][0].code
    plan = session.get(TopupPlan, plan.id)
    plan.min_minor = 30000
    session.commit()
    with pytest.raises(WalletError) as e:
        topups.redeem_code(session, member_id=member.id, card_id=_card(session, member).id,
                           code=code)
    assert "no longer matches" in str(e.value)


def test_a_smart_top_up_whose_bill_could_not_be_paid_says_so(app, session, member):
    plan = SmartPlan(name="Short? Top up", currency="CNY", status="active", rounding_minor=10,
                     tiers=[SmartTier(position=1, kind="discount", multiplier_bp=12000,
                                      bonus_bp=800)])
    session.add(plan)
    session.commit()
    card = _card(session, member)
    topup = smart.start(session, member_id=member.id, card_id=card.id, plan_id=plan.id,
                        tier_id=plan.tiers[0].id, bill_minor=10000, store_id=None)
    card = session.get(MemberCard, card.id)
    card.status = "frozen"                           # frozen before the payment came in
    session.commit()
    _pay(app, session, topup)
    payment = session.get(Payment, topup.payment_id)
    assert payment.status == "paid"
    assert "could not be paid" in payments.PURPOSES["smart_topup"].note(session, payment)
    assert session.query(Charge).count() == 0
