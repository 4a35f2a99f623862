"""Smart top-up plans: the rules the merchant may save (plan and tiers), saving and editing
the tiers, status actions and the list."""
from __future__ import annotations

import pytest
from sqlalchemy import event, func, select

from portal import clock
from portal.db import db
from portal.staff.models import AuditEntry
from portal.wallet import smart_plans
from portal.wallet.models import SmartPlan, SmartTier, Topup
from portal.wallet.plans import PlanError, PlanErrorCode
from portal.wallet.smart import tier_offer
from tests.factories import CouponTemplateFactory


def discount(**changes) -> dict:
    tier = {"kind": "discount", "multiplier_bp": 12_000, "bonus_bp": 800}
    tier.update(changes)
    return tier


def gift(**changes) -> dict:
    tier = {"kind": "gift", "multiplier_bp": 13_000, "bonus_bp": 500, "points_bp": 1000}
    tier.update(changes)
    return tier


def fixed(**changes) -> dict:
    tier = {"kind": "fixed", "amount_minor": 30_000, "bonus_minor": 3_000,
            "bonus_points": 300}
    tier.update(changes)
    return tier


def smart(**changes) -> dict:
    data = {"name": "Short? Top up", "currency": "CNY", "rounding_minor": 10,
            "channels": ["POS", "ONLINE"], "tiers": [discount()]}
    data.update(changes)
    return data


def make(data: dict, *, activate=True) -> SmartPlan:
    return smart_plans.create(db.session, data, operator_id=None, activate=activate)


def refused(data, plan=None) -> dict:
    with pytest.raises(PlanError) as e:
        smart_plans.clean(db.session, data, plan)
    assert e.value.code == PlanErrorCode.INVALID
    return e.value.details["errors"]


# --- what may be saved --------------------------------------------------------------------

@pytest.mark.parametrize("data,field", [
    (smart(name=" "), "name"),
    (smart(name="x" * 121), "name"),
    (smart(currency=""), "currency"),
    (smart(min_topup_minor=-1), "min_topup_minor"),
    (smart(rounding_minor=50), "rounding_minor"),
    (smart(rounding_minor=None), "rounding_minor"),
    (smart(stock_total=0), "stock_total"),
    (smart(channels=[]), "channels"),
    (smart(channels=["POS", "WECHAT"]), "channels"),
    (smart(plan_ids=[999]), "plan_ids"),
    (smart(tier_ids=[999]), "tier_ids"),
    (smart(store_scope={"mode": "include"}), "store_mode"),
    (smart(store_scope={"mode": "include", "store_ids": [999]}), "store_ids"),
    (smart(agreement="x" * 5001), "agreement"),
    (smart(tiers=[]), "tiers"),
    (smart(tiers=[{"kind": "cashback"}]), "tier-0-kind"),
    (smart(tiers=[discount(multiplier_bp=None)]), "tier-0-multiplier_bp"),
    (smart(tiers=[discount(multiplier_bp=0)]), "tier-0-multiplier_bp"),
    (smart(tiers=[discount(multiplier_bp=100_001)]), "tier-0-multiplier_bp"),
    (smart(tiers=[discount(bonus_bp=100_001)]), "tier-0-bonus_bp"),
    (smart(tiers=[discount(bonus_bp=-1)]), "tier-0-bonus_bp"),
    (smart(tiers=[discount(), gift(points_bp=100_001)]), "tier-1-points_bp"),
    (smart(tiers=[gift(points_bp=0)]), "tier-0-points_bp"),
    (smart(tiers=[fixed(amount_minor=0)]), "tier-0-amount_minor"),
    (smart(tiers=[fixed(amount_minor=None)]), "tier-0-amount_minor"),
    (smart(tiers=[fixed(bonus_minor=-1)]), "tier-0-bonus_minor"),
    (smart(tiers=[fixed(bonus_points=-5)]), "tier-0-bonus_points"),
    (smart(first_bonus=True, tiers=[gift(first_bonus_bp=100_001)]), "tier-0-first_bonus_bp"),
    (smart(first_bonus=True, tiers=[gift(first_points_bp=100_001)]),
     "tier-0-first_points_bp"),
    (smart(first_bonus=True), "first_bonus"),
])
def test_bad_input_is_refused_by_field(data, field):
    assert field in refused(data)


def test_percentages_up_to_1000_are_allowed_and_over_are_refused():
    make(smart(tiers=[gift(multiplier_bp=100_000, bonus_bp=100_000, points_bp=100_000)]))
    errors = refused(smart(tiers=[gift(bonus_bp=100_001, points_bp=100_001)]))
    assert "1000%" in errors["tier-0-bonus_bp"] and "tier-0-points_bp" in errors


def test_a_tenth_tier_is_refused_with_a_clear_message():
    make(smart(tiers=[discount(multiplier_bp=10_000 + i * 1000) for i in range(9)]))
    errors = refused(smart(tiers=[discount() for _ in range(10)]))
    assert errors["tiers"] == "A plan has at most 9 tiers (10 were given)."


def test_the_validity_must_end_after_it_starts():
    now = clock.now()
    assert "ends_at" in refused(smart(starts_at=now, ends_at=now))


def test_an_inactive_gift_coupon_is_refused():
    draft = CouponTemplateFactory(status="draft")
    assert "tier-0-gift_template_id" in refused(smart(tiers=[gift(gift_template_id=draft.id)]))
    assert "tier-0-gift_template_id" in refused(smart(tiers=[fixed(gift_template_id=999)]))
    assert "tier-0-first_gift_template_id" in refused(smart(
        first_bonus=True, tiers=[discount(first_gift_template_id=draft.id)]))


def test_the_currency_is_fixed_after_create():
    p = make(smart())
    plan = smart_plans.update(db.session, p.id, smart(currency="USD"), operator_id=None)
    assert plan.currency == "CNY"


def test_refused_input_saves_nothing():
    with pytest.raises(PlanError):
        make(smart(tiers=[discount(), fixed(amount_minor=0)]))
    assert db.session.scalar(select(func.count(SmartPlan.id))) == 0
    assert db.session.scalar(select(func.count(SmartTier.id))) == 0


def test_each_kind_keeps_only_its_own_fields():
    coupon = CouponTemplateFactory()
    p = make(smart(tiers=[
        discount(points_bp=500, amount_minor=100, gift_template_id=coupon.id),
        gift(amount_minor=100, gift_template_id=coupon.id),
        fixed(multiplier_bp=12_000, bonus_bp=800, first_gift_template_id=coupon.id)]))
    d, g, f = p.tiers
    assert (d.multiplier_bp, d.bonus_bp, d.points_bp, d.amount_minor, d.gift_template_id) == \
        (12_000, 800, None, None, None)
    assert (g.points_bp, g.amount_minor, g.gift_template_id) == (1000, None, coupon.id)
    assert (f.amount_minor, f.multiplier_bp, f.bonus_bp, f.first_gift_template_id) == \
        (30_000, None, None, None)          # no first top-up extras: the switch is off
    assert [t.position for t in p.tiers] == [1, 2, 3]


def test_first_top_up_extras_by_kind():
    coupon = CouponTemplateFactory()
    p = make(smart(first_bonus=True, tiers=[
        discount(first_gift_template_id=coupon.id, first_bonus_bp=500),
        gift(first_bonus_bp=500, first_points_bp=300),
        fixed(first_gift_template_id=coupon.id)]))
    d, g, f = p.tiers
    assert (d.first_gift_template_id, d.first_bonus_bp) == (coupon.id, 0)  # gift tiers only
    assert (g.first_bonus_bp, g.first_points_bp) == (500, 300)
    assert f.first_gift_template_id == coupon.id


def test_saved_tiers_give_the_doc_examples():
    p = make(smart(tiers=[discount(), gift()]))
    d, g = p.tiers
    offer = tier_offer(p, d, 10_000, first=False)
    assert (offer.topup, offer.bonus, offer.usable) == (12_000, 800, 12_800)
    offer = tier_offer(p, g, 9_000, first=False)
    assert (offer.topup, offer.bonus, offer.points) == (11_700, 450, 11)


# --- saving ---------------------------------------------------------------------------------

def test_create_is_audited_with_the_tiers(owner):
    p = smart_plans.create(db.session, smart(stock_total=500), operator_id=owner.id)
    assert (p.status, p.stock_total, p.stock_left) == ("draft", 500, 500)
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "smart_plan.create"))
    assert entry.staff_id == owner.id and entry.after["tiers"][0]["multiplier_bp"] == 12_000


def test_editing_changes_tiers_in_place_and_removes_the_last(member):
    p = make(smart(tiers=[discount(), gift(), fixed()]))
    ids = [t.id for t in p.tiers]
    smart_plans.update(db.session, p.id, smart(tiers=[fixed(), discount()]), operator_id=None)
    db.session.expire_all()
    p = smart_plans.get(db.session, p.id)
    assert [(t.id, t.position, t.kind) for t in p.tiers] == [(ids[0], 1, "fixed"),
                                                           (ids[1], 2, "discount")]
    assert p.tiers[1].points_bp is None
    assert db.session.scalar(select(func.count(SmartTier.id))) == 2
    assert db.session.scalar(select(func.count(AuditEntry.id))
                             .where(AuditEntry.action == "smart_plan.update")) == 1


def test_a_tier_members_topped_up_with_cannot_be_removed(member):
    p = make(smart(tiers=[discount(), gift()]))
    card = db.session.merge(member).cards[0]
    db.session.add(Topup(smart_tier_id=p.tiers[1].id, member_id=member.id, card_id=card.id,
                         currency="CNY", amount_minor=12_000, status="credited"))
    db.session.commit()
    with pytest.raises(PlanError) as e:
        smart_plans.update(db.session, p.id, smart(tiers=[discount()]), operator_id=None)
    assert "tiers" in e.value.details["errors"]
    smart_plans.update(db.session, p.id, smart(tiers=[discount(), fixed()]), operator_id=None)
    assert smart_plans.get(db.session, p.id).tiers[1].kind == "fixed"


def test_stock_sold_stays_sold_when_the_total_changes():
    p = make(smart(stock_total=10))
    p.stock_left = 7       # three taken
    db.session.commit()
    with pytest.raises(PlanError) as e:
        smart_plans.update(db.session, p.id, smart(stock_total=2), operator_id=None)
    assert "stock_total" in e.value.details["errors"]
    smart_plans.update(db.session, p.id, smart(stock_total=20), operator_id=None)
    assert db.session.get(SmartPlan, p.id).stock_left == 17


@pytest.mark.parametrize("start,action,end", [
    ("draft", "activate", "active"), ("active", "deactivate", "inactive"),
    ("inactive", "activate", "active"), ("inactive", "archive", "archived"),
    ("draft", "archive", "archived"),
])
def test_status_actions(start, action, end):
    p = make(smart(), activate=False)
    p.status = start
    db.session.commit()
    assert smart_plans.set_status(db.session, p.id, action, operator_id=None).status == end
    assert db.session.scalar(select(AuditEntry.action).order_by(AuditEntry.id.desc())
                             .limit(1)) == f"smart_plan.{action}"


def test_an_active_plan_is_deactivated_before_archiving_and_archived_is_read_only():
    p = make(smart())
    with pytest.raises(PlanError, match="Deactivate"):
        smart_plans.set_status(db.session, p.id, "archive", operator_id=None)
    smart_plans.set_status(db.session, p.id, "deactivate", operator_id=None)
    smart_plans.set_status(db.session, p.id, "archive", operator_id=None)
    with pytest.raises(PlanError) as e:
        smart_plans.update(db.session, p.id, smart(name="New"), operator_id=None)
    assert e.value.code == PlanErrorCode.ARCHIVED
    with pytest.raises(PlanError) as e:
        smart_plans.set_status(db.session, p.id, "resume", operator_id=None)
    assert e.value.code == PlanErrorCode.NOT_FOUND


def _statements(fn) -> int:
    count = 0

    def on_execute(*_args):
        nonlocal count
        count += 1

    db.session.commit()
    event.listen(db.engine, "before_cursor_execute", on_execute)
    try:
        fn()
    finally:
        event.remove(db.engine, "before_cursor_execute", on_execute)
    return count


def test_the_list_counts_tiers_and_top_ups_without_n_plus_1(member):
    a = make(smart(name="Old"), activate=False)
    b = make(smart(name="New", tiers=[discount(), fixed()]))
    card = db.session.merge(member).cards[0]
    db.session.add(Topup(smart_tier_id=b.tiers[0].id, member_id=member.id, card_id=card.id,
                         currency="CNY", amount_minor=12_000, status="credited"))
    db.session.commit()
    smart_plans.set_status(db.session, a.id, "archive", operator_id=None)
    rows = smart_plans.plan_list(db.session)
    assert [(r.plan.name, r.tiers, r.topups, r.amount_minor) for r in rows] == \
        [("New", 2, 1, 12_000)]
    assert [r.plan.name for r in smart_plans.plan_list(db.session, "archived")] == ["Old"]
    few = _statements(lambda: smart_plans.plan_list(db.session))
    for i in range(5):
        make(smart(name=f"More {i}", tiers=[discount(), gift(), fixed()]))
    assert _statements(lambda: smart_plans.plan_list(db.session)) == few
