"""Paid benefit packages: the merchant's rules (every bad field at once), the price that
applies, the validity modes with the spec's 3-day examples, renewals, gifts and refunds."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from portal import clock, jobs, ledger
from portal.benefits import packages, purchases
from portal.benefits.models import (
    Benefit,
    PackagePurchase,
    PackageSettings,
)
from portal.benefits.packages import PackageError
from portal.coupons.models import Coupon, CouponStatus
from portal.ledger import AccountKind
from portal.members.models import CardPlan, MemberCard, Tag, Tier
from portal.payments import services as payments
from portal.payments.errors import PaymentError
from portal.payments.models import Payment
from portal.payments.providers import DemoProvider
from portal.staff.models import AuditEntry
from tests.factories import CouponTemplateFactory


def local(*args) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime(*args, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture(autouse=True)
def _shanghai():
    clock.set_timezone("Asia/Shanghai")
    clock.freeze(local(2026, 12, 8, 23, 0))
    yield
    clock.set_timezone("UTC")


def rule(**kw) -> dict:
    out = {"duration_days": 3, "original_minor": 19900, "first_minor": 15900,
           "repeat_minor": 17900, "renewal_minor": 16900}
    out.update(kw)
    return out


def data(**kw) -> dict:
    out = {"name": "Premium", "currency": "CNY", "channels": ["POS", "ONLINE"],
           "schedule": {"frequency": "daily", "times": "all_day"},
           "rules": [rule()], "items": [], "refund_restricted": True,
           "agreement": "You agree.", "tags": ["Quarterly"]}
    out.update(kw)
    return out


def make(session, owner, **kw):
    return packages.create(session, data(**kw), operator_id=owner.id, activate=True)


def set_mode(session, mode):
    session.add(PackageSettings(validity_mode=mode))
    session.commit()


def pay(app, session, purchase, kind="paid") -> str:
    payment = session.get(Payment, purchase.payment_id)
    if payment.provider_session_id is None:
        payment.provider_session_id = f"demo_cs_{payment.token}"
        session.commit()
    body, signature = DemoProvider(app.config["SECRET_KEY"]).event(payment, kind)
    return payments.receive(session, body, signature)


def buy(app, session, member, package, position=0) -> PackagePurchase:
    purchase = purchases.start(session, member_id=member.id, package_id=package.id,
                               rule_id=package.rules[position].id, agreed=True)
    assert pay(app, session, purchase) == "fulfilled"
    session.expire_all()
    return session.get(PackagePurchase, purchase.id)


def benefit(session, kind="discount", status="active", **kw) -> Benefit:
    b = Benefit(kind=kind, name=f"{kind} benefit", currency="CNY", status=status, **kw)
    session.add(b)
    session.commit()
    return b


# --- the merchant's rules -----------------------------------------------------------------

def test_create_saves_rules_items_and_audits(session, owner):
    gift = CouponTemplateFactory()
    p = make(session, owner, rules=[rule(), rule(duration_days=90)],
             items=[{"kind": "first_gift", "points": 500, "coupon_template_id": gift.id}])
    assert [r.duration_days for r in p.rules] == [3, 90]
    assert p.items[0].name == "First purchase gift" and p.status == "active"
    assert session.query(AuditEntry).filter_by(action="benefit_package.create").count() == 1


def test_create_refuses_every_bad_field_at_once(session, owner):
    off = benefit(session, "discount", status="inactive", discount_bp=1000)
    wrong = benefit(session, "multiplier", multiplier_bp=20000)
    bad = data(name="", channels=[], rules=[rule(original_minor=-1, first_minor=-5)] * 6,
               items=[{"kind": "discount", "benefit_id": off.id},
                      {"kind": "discount", "benefit_id": wrong.id},
                      {"kind": "nonsense"}])
    with pytest.raises(PackageError) as e:
        packages.create(session, bad, operator_id=owner.id)
    errors = e.value.errors
    assert "at most 5" in errors["rules"]
    assert "below zero" in errors["rules-0-original_minor"]
    assert "below zero" in errors["rules-0-first_minor"]
    assert "deactivated" in errors["items-0-benefit_id"]
    assert "another kind" in errors["items-1-benefit_id"]
    assert "nine kinds" in errors["items-2-kind"]
    assert {"name", "channels"} <= set(errors)
    assert session.query(packages.BenefitPackage).count() == 0


def test_a_sixth_sales_rule_is_refused(session, owner):
    with pytest.raises(PackageError) as e:
        make(session, owner, rules=[rule()] * 6)
    assert e.value.errors == {"rules": "A package has at most 5 sales rules."}
    make(session, owner, rules=[rule()] * 5)


def test_promo_needs_both_dates_in_order(session, owner):
    with pytest.raises(PackageError) as e:
        make(session, owner, rules=[rule(promo_minor=13900),
                                    rule(promo_minor=13900, promo_starts_at=local(2026, 10, 7),
                                         promo_ends_at=local(2026, 10, 1))])
    assert set(e.value.errors) == {"rules-0-promo_starts_at", "rules-0-promo_ends_at",
                                   "rules-1-promo_ends_at"}


def test_promo_outside_the_sales_period_is_refused(session, owner):
    window = {"starts_at": local(2026, 10, 1), "ends_at": local(2026, 11, 1)}
    with pytest.raises(PackageError) as e:
        make(session, owner, **window, rules=[rule(
            promo_minor=13900, promo_starts_at=local(2026, 9, 30),
            promo_ends_at=local(2026, 10, 7))])
    assert "sales period" in e.value.errors["rules-0-promo_starts_at"]
    make(session, owner, **window, rules=[rule(promo_minor=13900,
                                               promo_starts_at=local(2026, 10, 1),
                                               promo_ends_at=local(2026, 11, 1))])


def test_tier_upgrade_and_gift_need_what_they_give(session, owner):
    with pytest.raises(PackageError) as e:
        make(session, owner, items=[{"kind": "tier_upgrade"}, {"kind": "repeat_gift"},
                                    {"kind": "first_gift", "points": 1, "rule_positions": [3]}])
    assert set(e.value.errors) == {"items-0-tier_id", "items-1-points",
                                   "items-2-rule_positions"}


def test_status_moves_deactivate_before_archive(session, owner):
    p = make(session, owner)
    with pytest.raises(PackageError):
        packages.set_status(session, p.id, "archive", operator_id=owner.id)
    packages.set_status(session, p.id, "deactivate", operator_id=owner.id)
    assert packages.set_status(session, p.id, "archive", operator_id=owner.id).status == \
        "archived"
    with pytest.raises(PackageError):
        packages.update(session, p.id, data(), operator_id=owner.id)
    assert packages.package_list(session) == []
    assert len(packages.package_list(session, status="archived")) == 1


def test_a_rule_with_purchases_cannot_be_removed(app, session, owner, member):
    p = make(session, owner, rules=[rule(), rule(duration_days=30)])
    buy(app, session, member, p, position=1)
    with pytest.raises(PackageError) as e:
        packages.update(session, p.id, data(rules=[rule()]), operator_id=owner.id)
    assert "Rule 2" in e.value.errors["rules"]
    packages.update(session, p.id, data(rules=[rule(), rule(duration_days=60)]),
                    operator_id=owner.id)


# --- validity modes: the spec's 3-day package bought at 23:00 on Dec 8 (Shanghai) -----------

@pytest.mark.parametrize("mode,starts,ends", [
    ("immediate", local(2026, 12, 8, 23, 0), local(2026, 12, 11, 23, 0)),
    ("purchase_day", local(2026, 12, 8, 0, 0), local(2026, 12, 11, 0, 0)),
    ("next_day", local(2026, 12, 9, 0, 0), local(2026, 12, 12, 0, 0)),
])
def test_validity_mode_follows_the_spec_example(mode, starts, ends):
    assert purchases.period(mode, clock.now(), 3) == (starts, ends)


@pytest.mark.parametrize("mode,last_moment", [
    ("immediate", local(2026, 12, 11, 22, 59)),
    ("purchase_day", local(2026, 12, 10, 23, 59)),
    ("next_day", local(2026, 12, 11, 23, 59)),
])
def test_bought_period_ends_where_the_spec_says(app, session, owner, member, mode,
                                                last_moment):
    set_mode(session, mode)
    p = make(session, owner)
    purchase = buy(app, session, member, p)
    assert purchase.starts_at <= last_moment < purchase.ends_at
    assert purchase.ends_at - last_moment == timedelta(minutes=1)


def test_the_purchase_day_is_the_shanghai_day_not_the_utc_day(session):
    # 07:30 on Dec 9 in Shanghai is still Dec 8 in UTC.
    paid = local(2026, 12, 9, 7, 30)
    assert purchases.period("purchase_day", paid, 3)[0] == local(2026, 12, 9)
    assert purchases.period("next_day", paid, 3) == (local(2026, 12, 10), local(2026, 12, 13))


# --- the price that applies ---------------------------------------------------------------

def test_price_precedence_first_repeat_renewal(app, session, owner, member):
    p = make(session, owner)
    offer = purchases.offers(session, member.id)[0][2][0]
    assert (offer.kind, offer.minor) == ("first", 15900)
    first = buy(app, session, member, p)
    assert (first.price_kind, first.price_minor, first.is_first) == ("first", 15900, True)
    renewal = buy(app, session, member, p)                  # the first period still runs
    assert (renewal.price_kind, renewal.price_minor, renewal.is_renewal) == \
        ("renewal", 16900, True)
    clock.advance(timedelta(days=10))                       # both periods have ended
    again = buy(app, session, member, p)
    assert (again.price_kind, again.price_minor, again.is_renewal, again.is_first) == \
        ("repeat", 17900, False, False)


def test_empty_prices_fall_back_to_the_original(app, session, owner, member):
    p = make(session, owner, rules=[rule(first_minor=None, repeat_minor=None,
                                         renewal_minor=None)])
    assert buy(app, session, member, p).price_minor == 19900
    assert buy(app, session, member, p).price_minor == 19900
    assert purchases.offers(session, member.id)[0][2][0].kind == "original"


def test_promo_price_applies_inside_its_window_only(session, owner, member):
    starts, ends = local(2026, 12, 9), local(2026, 12, 10)
    p = make(session, owner, rules=[rule(promo_minor=13900, promo_starts_at=starts,
                                         promo_ends_at=ends)])
    r, standing = p.rules[0], purchases.Standing()
    assert purchases.price(r, standing, starts - timedelta(seconds=1)) == ("first", 15900)
    assert purchases.price(r, standing, starts) == ("promo", 13900)
    assert purchases.price(r, purchases.Standing(True, ends), ends - timedelta(seconds=1)) \
        == ("promo", 13900)                                 # promo beats renewal too
    assert purchases.price(r, standing, ends) == ("first", 15900)


# --- early renewal ------------------------------------------------------------------------

def test_early_renewals_stack_after_the_current_period(app, session, owner, member):
    set_mode(session, "next_day")
    p = make(session, owner)
    first = buy(app, session, member, p)
    clock.advance(timedelta(days=1))
    second = buy(app, session, member, p)
    third = buy(app, session, member, p)
    assert second.starts_at == first.ends_at == local(2026, 12, 12)
    assert third.starts_at == second.ends_at == local(2026, 12, 15)
    assert third.ends_at == local(2026, 12, 18)
    states = [h.state for h in purchases.mine(session, member.id)]
    assert states == ["running", "upcoming", "upcoming"]


def _renewal_package(session, owner, distribution):
    gift = CouponTemplateFactory(title="Concierge")
    return make(session, owner, items=[
        {"kind": "first_gift", "points": 500},
        {"kind": "repeat_gift", "points": 300},
        {"kind": "renewal_gift", "points": 400, "coupon_template_id": gift.id,
         "distribution": distribution}])


def _points(session, member) -> int:
    session.expire_all()
    return ledger.balance(session, AccountKind.POINTS, "member", member.id)


def test_renewal_gift_given_at_once_when_immediate(app, session, owner, member):
    p = _renewal_package(session, owner, "immediate")
    buy(app, session, member, p)
    assert _points(session, member) == 500                  # the first-purchase gift
    renewal = buy(app, session, member, p)
    assert renewal.granted_at is not None and _points(session, member) == 900
    assert session.query(Coupon).filter_by(member_id=member.id).count() == 1


def test_renewal_gift_on_start_is_delivered_once_by_the_tick(app, session, owner, member):
    p = _renewal_package(session, owner, "on_start")
    first = buy(app, session, member, p)
    renewal = buy(app, session, member, p)
    assert renewal.grants_due_at == first.ends_at and renewal.granted_at is None
    jobs.run_tick()
    assert _points(session, member) == 500
    clock.freeze(first.ends_at)
    jobs.run_tick()
    jobs.run_tick()
    assert _points(session, member) == 900
    assert session.query(Coupon).filter_by(member_id=member.id).count() == 1
    assert session.get(PackagePurchase, renewal.id).gifts[0]["given"] is True


def test_repeat_gift_after_the_period_ended(app, session, owner, member):
    p = _renewal_package(session, owner, "immediate")
    buy(app, session, member, p)
    clock.advance(timedelta(days=5))
    buy(app, session, member, p)
    assert _points(session, member) == 800


def test_gifts_only_for_the_rules_they_name(app, session, owner, member):
    p = make(session, owner, rules=[rule(), rule(duration_days=30)],
             items=[{"kind": "first_gift", "points": 500, "rule_positions": [1]}])
    buy(app, session, member, p, position=0)
    assert _points(session, member) == 0


# --- who may buy --------------------------------------------------------------------------

def test_only_members_in_scope_see_the_package(session, owner, member, other_member):
    tag = Tag(name="vip")
    session.add(tag)
    session.get(type(member), member.id).tags.append(tag)
    session.commit()
    make(session, owner, tag_ids=[tag.id])
    assert len(purchases.available(session, member.id)) == 1
    assert purchases.available(session, other_member.id) == []


def test_plan_scope_uses_the_members_cards(session, owner, member):
    other_plan = CardPlan(name="Other", currency="CNY")
    session.add(other_plan)
    session.commit()
    make(session, owner, plan_ids=[other_plan.id])
    assert purchases.available(session, member.id) == []


def test_segment_scope_is_checked_in_sql(session, owner, member, other_member, plan):
    from portal.members.models import Segment

    seg = Segment(name="Rich", match="all",
                  rules=[{"field": "points", "op": "between", "value": {"min": 10}}])
    session.add(seg)
    session.commit()
    ledger.post(session, ledger.account(session, AccountKind.POINTS, "member", member.id), 20,
                reason="test", key="seg")
    session.commit()
    make(session, owner, segment_ids=[seg.id])
    assert len(purchases.available(session, member.id)) == 1
    assert purchases.available(session, other_member.id) == []


@pytest.mark.parametrize("schedule,open_at,closed_at", [
    ({"frequency": "weekly", "days": [4], "times": "all_day"},     # Fridays
     local(2026, 12, 11, 10), local(2026, 12, 10, 10)),
    ({"frequency": "monthly", "days": [1, 15, "last"], "times": "all_day"},
     local(2026, 2, 28, 10), local(2026, 2, 27, 10)),
    ({"frequency": "weekly", "days": [4], "times": "window", "window": ["10:00", "22:00"]},
     local(2026, 12, 11, 21, 59), local(2026, 12, 11, 22, 0)),
])
def test_purchase_period_dates_and_times(session, owner, member, schedule, open_at,
                                         closed_at):
    make(session, owner, schedule=schedule)
    assert len(purchases.available(session, member.id, at=open_at)) == 1
    assert purchases.available(session, member.id, at=closed_at) == []


def test_inactive_or_pos_only_packages_are_not_sold_online(session, owner, member):
    make(session, owner, channels=["POS"])
    p = make(session, owner)
    packages.set_status(session, p.id, "deactivate", operator_id=owner.id)
    assert purchases.available(session, member.id) == []
    with pytest.raises(PackageError):
        purchases.start(session, member_id=member.id, package_id=p.id,
                        rule_id=p.rules[0].id, agreed=True)


def test_start_refuses_without_the_agreement(session, owner, member):
    p = make(session, owner)
    with pytest.raises(PackageError) as e:
        purchases.start(session, member_id=member.id, package_id=p.id,
                        rule_id=p.rules[0].id, agreed=False)
    assert "agree" in e.value.errors


def test_a_pending_checkout_makes_the_next_one_a_repeat(session, owner, member):
    p = make(session, owner)
    first = purchases.start(session, member_id=member.id, package_id=p.id,
                            rule_id=p.rules[0].id, agreed=True)
    second = purchases.start(session, member_id=member.id, package_id=p.id,
                             rule_id=p.rules[0].id, agreed=True)
    assert (first.price_kind, second.price_kind) == ("first", "repeat")


def test_an_expired_checkout_is_cancelled(app, session, owner, member):
    p = make(session, owner)
    purchase = purchases.start(session, member_id=member.id, package_id=p.id,
                               rule_id=p.rules[0].id, agreed=True)
    assert pay(app, session, purchase, "expired") == "expired"
    session.expire_all()
    assert session.get(PackagePurchase, purchase.id).status == "cancelled"


# --- benefits while the period runs -------------------------------------------------------

def test_package_benefits_count_while_the_period_runs(app, session, owner, member):
    d = benefit(session, "discount", discount_bp=1000)
    m = benefit(session, "multiplier", multiplier_bp=20000)
    p = make(session, owner, rules=[rule(), rule(duration_days=30)],
             items=[{"kind": "discount", "benefit_id": d.id},
                    {"kind": "multiplier", "benefit_id": m.id, "rule_positions": [1]}])
    purchase = buy(app, session, member, p)
    assert purchases.active_package_benefit_ids(session, member.id) == {d.id}
    assert purchases.active_package_benefit_ids(session, member.id,
                                                 purchase.ends_at) == set()
    d.status = "inactive"
    session.commit()
    assert purchases.active_package_benefit_ids(session, member.id) == set()


def test_tier_upgrade_and_card_extension_on_purchase(app, session, owner, member, plan):
    plan_row = session.get(CardPlan, plan.id)
    plan_row.validity_days = 365
    gold = Tier(plan_id=plan.id, name="Gold", rank=2)
    session.add(gold)
    card = session.query(MemberCard).filter_by(member_id=member.id).one()
    card.expires_at = local(2027, 1, 1)
    session.commit()
    ext = benefit(session, "extension", extension_days=30)
    p = make(session, owner, items=[{"kind": "tier_upgrade", "tier_id": gold.id},
                                    {"kind": "extension", "benefit_id": ext.id}])
    buy(app, session, member, p)
    card = session.query(MemberCard).filter_by(member_id=member.id).one()
    assert card.tier_id == gold.id
    assert card.expires_at == local(2027, 1, 31)


# --- refunds ------------------------------------------------------------------------------

def _refund(session, purchase, owner):
    payment = session.get(Payment, purchase.payment_id)
    return payments.refund(session, payment.id, payment.amount_minor, reason="asked",
                           operator_id=owner.id)


def test_refund_refused_when_a_package_coupon_was_used(app, session, owner, member):
    gift = CouponTemplateFactory()
    p = make(session, owner, items=[{"kind": "first_gift", "points": 10,
                                     "coupon_template_id": gift.id}])
    purchase = buy(app, session, member, p)
    coupon = session.query(Coupon).filter_by(member_id=member.id).one()
    coupon.status, coupon.used_at = CouponStatus.USED, clock.now()
    session.commit()
    with pytest.raises(PaymentError) as e:
        _refund(session, purchase, owner)
    assert "cannot be refunded online" in str(e.value)
    assert session.get(PackagePurchase, purchase.id).status == "paid"


def test_refund_takes_back_unused_coupons_and_points(app, session, owner, member):
    gift = CouponTemplateFactory()
    p = make(session, owner, items=[{"kind": "first_gift", "points": 500,
                                     "coupon_template_id": gift.id}])
    purchase = buy(app, session, member, p)
    refund = _refund(session, purchase, owner)
    assert refund.reversal == {"coupons": 1, "points": 500, "extension_days": 0}
    session.expire_all()
    assert session.get(PackagePurchase, purchase.id).status == "refunded"
    assert session.query(Coupon).filter_by(member_id=member.id).one().status == "expired"
    assert _points(session, member) == 0


def test_unrestricted_package_refunds_even_with_used_coupons(app, session, owner, member):
    gift = CouponTemplateFactory()
    p = make(session, owner, refund_restricted=False,
             items=[{"kind": "first_gift", "coupon_template_id": gift.id}])
    purchase = buy(app, session, member, p)
    session.query(Coupon).update({"status": CouponStatus.USED})
    session.commit()
    assert _refund(session, purchase, owner).reversal["coupons"] == 0


# --- sales data ---------------------------------------------------------------------------

def test_sales_data_counts_paid_purchases_revenue_and_buyers(app, session, owner, member,
                                                             other_member):
    p = make(session, owner)
    buy(app, session, member, p)
    buy(app, session, member, p)
    clock.advance(timedelta(minutes=1))
    buy(app, session, other_member, p)
    report = packages.sales(session, p.id)
    assert (report.total.volume, report.total.revenue_minor, report.total.buyers) == \
        (3, 15900 + 16900 + 15900, 2)
    assert [b.purchases for b in report.buyers] == [1, 2]
    row = packages.package_list(session)[0]
    assert (row.sales.volume, row.sales.buyers) == (3, 2)


def test_settings_save_is_audited_and_checked(session, owner):
    assert packages.settings(session).validity_mode == "immediate"
    packages.save_settings(session, "next_day", operator_id=owner.id)
    assert packages.settings(session).validity_mode == "next_day"
    with pytest.raises(PackageError):
        packages.save_settings(session, "weekly", operator_id=owner.id)
    assert session.query(AuditEntry).filter_by(action="benefit_package.settings").count() == 1



def test_a_running_package_gives_its_benefits_in_the_quote_and_on_my_benefits(
        app, session, owner, member):
    from portal.benefits import quote, services

    other_plans_only = benefit(session, "discount", discount_bp=2000, plan_ids=[999_999])
    p = make(session, owner, items=[{"kind": "discount", "benefit_id": other_plans_only.id}])
    card = session.query(MemberCard).filter_by(member_id=member.id).one()
    basket = [quote.QuoteLine("SKU-1", "drinks", 1, 10_000)]

    def price(at):
        return quote.quote(session, card_no=card.number, channel="POS", lines=basket,
                           at=at).total

    assert price(clock.now()) == 10_000                    # not theirs by plan or tier
    purchase = buy(app, session, member, p)
    assert price(clock.now()) == 8_000                     # the package's 20% off
    held = services.my_benefits(session, member.id, clock.now()).held
    assert [h.benefit.id for h in held] == [other_plans_only.id]
    assert price(purchase.ends_at) == 10_000               # the period is over
