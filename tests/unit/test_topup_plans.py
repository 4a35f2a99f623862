"""Top-up plans: the rules the merchant may save, every formula of `quote`, which plans a
member may use, recharge codes and the member top-up details."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from portal import clock
from portal.db import db
from portal.members.models import MemberCard, Segment, Tier
from portal.staff.models import AuditEntry
from portal.wallet import plans
from portal.wallet.models import RechargeCode, Topup, TopupPlan
from portal.wallet.plans import PlanError, PlanErrorCode
from tests.factories import CouponTemplateFactory, StoreFactory


def fixed(**changes) -> dict:
    data = {"name": "Top up 100", "currency": "CNY", "amount_minor": 10_000,
            "bonus_minor": 1_000, "bonus_points": 50, "channels": ["POS", "ONLINE"],
            "visible": True}
    data.update(changes)
    return data


def ranged(**changes) -> dict:
    data = {"name": "Any amount", "currency": "CNY", "min_minor": 10_000,
            "max_minor": 50_000, "bonus_bp": 1000, "points_bp": 500,
            "channels": ["POS", "ONLINE"]}
    data.update(changes)
    return data


def custom(**changes) -> dict:
    data = {"name": "Flexible", "currency": "CNY", "min_minor": 100_000,
            "max_minor": 500_000, "bonus_min_minor": 10_000, "bonus_max_minor": 50_000,
            "points_min": 100, "points_max": 500, "channels": ["ONLINE"]}
    data.update(changes)
    return data


def make(kind: str, data: dict, *, activate=True) -> TopupPlan:
    return plans.create(db.session, kind, data, operator_id=None, activate=activate)


def refused(kind, data) -> dict:
    with pytest.raises(PlanError) as e:
        plans.clean(db.session, kind, data)
    assert e.value.code == PlanErrorCode.INVALID
    return e.value.details["errors"]


# --- saving -------------------------------------------------------------------------------

def test_create_a_fixed_plan_is_audited_and_clears_other_kinds_fields(owner):
    p = plans.create(db.session, "fixed", fixed(min_minor=5, bonus_bp=100, stock_total=10),
                     operator_id=owner.id)
    assert (p.status, p.amount_minor, p.bonus_minor, p.bonus_points) == ("draft", 10_000,
                                                                         1_000, 50)
    assert (p.min_minor, p.bonus_bp, p.stock_total, p.stock_left) == (None, None, 10, 10)
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "topup_plan.create"))
    assert entry.staff_id == owner.id and entry.after["amount_minor"] == 10_000


@pytest.mark.parametrize("kind,data,field", [
    ("fixed", fixed(amount_minor=0), "amount_minor"),
    ("fixed", fixed(amount_minor=None), "amount_minor"),
    ("fixed", fixed(bonus_minor=-1), "bonus_minor"),
    ("fixed", fixed(bonus_points=-5), "bonus_points"),
    ("fixed", fixed(name=" "), "name"),
    ("fixed", fixed(name="x" * 121), "name"),
    ("range", ranged(min_minor=0), "min_minor"),
    ("range", ranged(max_minor=10_000), "max_minor"),
    ("range", ranged(max_minor=5_000), "max_minor"),
    ("range", ranged(bonus_bp=100_001), "bonus_bp"),
    ("range", ranged(points_bp=-1), "points_bp"),
    ("custom", custom(bonus_min_minor=60_000), "bonus_max_minor"),
    ("custom", custom(points_min=600), "points_max"),
    ("custom", custom(min_minor=600_000), "max_minor"),
    ("custom", custom(same_day_usable_bp=10_001), "same_day_usable_bp"),
    ("custom", custom(same_day_usable_bp=5000, bonus_locked_same_day=True),
     "same_day_usable_bp"),
    ("fixed", fixed(channels=[]), "channels"),
    ("fixed", fixed(channels=["POS", "WECHAT"]), "channels"),
    ("fixed", fixed(per_member_limit=0), "per_member_limit"),
    ("fixed", fixed(stock_total=0), "stock_total"),
    ("fixed", fixed(first_bonus=True, first_bonus_bp=100_001), "first_bonus_bp"),
    ("fixed", fixed(first_bonus=True), "first_bonus"),
    ("fixed", fixed(plan_ids=[999]), "plan_ids"),
    ("fixed", fixed(tier_ids=[999]), "tier_ids"),
    ("fixed", fixed(segment_ids=[999]), "segment_ids"),
    ("fixed", fixed(tag_ids=[999]), "tag_ids"),
    ("fixed", fixed(upgrade_tier_id=999), "upgrade_tier_id"),
    ("fixed", fixed(store_scope={"mode": "include"}), "store_mode"),
    ("fixed", fixed(store_scope={"mode": "include", "store_ids": [999]}), "store_ids"),
    ("fixed", fixed(store_scope={"mode": "somewhere"}), "store_mode"),
    ("fixed", fixed(schedule={"frequency": "weekly", "days": []}), "schedule_days"),
    ("fixed", fixed(schedule={"times": "window", "window": ["22:00", "09:00"]}),
     "schedule_window"),
    ("fixed", fixed(description="x" * 5001), "description"),
])
def test_bad_input_is_refused_by_field(kind, data, field):
    assert field in refused(kind, data)


def test_the_validity_must_end_after_it_starts():
    now = clock.now()
    assert "ends_at" in refused("fixed", fixed(starts_at=now, ends_at=now))


def test_an_inactive_coupon_or_package_cannot_be_a_gift():
    draft = CouponTemplateFactory(status="draft")
    assert "gift" in refused("fixed", fixed(gift_template_id=draft.id))
    assert "gift" in refused("fixed", fixed(gift_package_id=999))
    assert "first_gift" in refused("fixed", fixed(first_bonus=True,
                                                  first_gift_template_id=draft.id))


def test_refused_input_saves_nothing():
    with pytest.raises(PlanError):
        plans.create(db.session, "fixed", fixed(amount_minor=0), operator_id=None)
    assert db.session.scalar(select(func.count(TopupPlan.id))) == 0


def test_custom_plans_have_no_first_top_up_bonus_and_fixed_no_same_day_rule():
    c = make("custom", custom(first_bonus=True, first_bonus_bp=500,
                              bonus_locked_same_day=True))
    f = make("fixed", fixed(same_day_usable_bp=5000))
    assert (c.first_bonus, c.first_bonus_bp, c.bonus_locked_same_day) == (False, 0, True)
    assert f.same_day_usable_bp is None


def test_editing_keeps_past_top_ups_as_they_were(member, plan):
    p = make("fixed", fixed())
    card = db.session.merge(member).cards[0]
    t = _topup(p, member, card, amount=10_000, bonus=1_000, points=50)
    plans.update(db.session, p.id, fixed(amount_minor=20_000, bonus_minor=5_000),
                 operator_id=None)
    db.session.refresh(t)
    assert (t.amount_minor, t.bonus_minor, t.points) == (10_000, 1_000, 50)
    assert db.session.get(TopupPlan, p.id).amount_minor == 20_000
    assert db.session.scalar(select(func.count(AuditEntry.id))
                             .where(AuditEntry.action == "topup_plan.update")) == 1


def test_stock_sold_stays_sold_when_the_total_changes():
    p = make("fixed", fixed(stock_total=10))
    p.stock_left = 7       # three taken
    db.session.commit()
    with pytest.raises(PlanError) as e:
        plans.update(db.session, p.id, fixed(stock_total=2), operator_id=None)
    assert "stock_total" in e.value.details["errors"]
    plans.update(db.session, p.id, fixed(stock_total=20), operator_id=None)
    assert db.session.get(TopupPlan, p.id).stock_left == 17


@pytest.mark.parametrize("start,action,end", [
    ("draft", "activate", "active"), ("active", "deactivate", "inactive"),
    ("inactive", "activate", "active"), ("inactive", "archive", "archived"),
    ("draft", "archive", "archived"),
])
def test_status_actions(start, action, end):
    p = make("fixed", fixed(), activate=False)
    p.status = start
    db.session.commit()
    assert plans.set_status(db.session, p.id, action, operator_id=None).status == end
    assert db.session.scalar(select(AuditEntry.action).order_by(AuditEntry.id.desc())
                             .limit(1)) == f"topup_plan.{action}"


def test_an_active_plan_is_deactivated_before_archiving_and_archived_is_read_only():
    p = make("fixed", fixed())
    with pytest.raises(PlanError, match="Deactivate"):
        plans.set_status(db.session, p.id, "archive", operator_id=None)
    plans.set_status(db.session, p.id, "deactivate", operator_id=None)
    plans.set_status(db.session, p.id, "archive", operator_id=None)
    with pytest.raises(PlanError) as e:
        plans.update(db.session, p.id, fixed(name="New"), operator_id=None)
    assert e.value.code == PlanErrorCode.ARCHIVED
    with pytest.raises(PlanError):
        plans.set_status(db.session, p.id, "activate", operator_id=None)


def test_archived_plans_are_listed_only_when_asked_for():
    a = make("fixed", fixed(name="Old"), activate=False)
    make("range", ranged(name="New"))
    plans.set_status(db.session, a.id, "archive", operator_id=None)
    assert [r.plan.name for r in plans.plan_list(db.session)] == ["New"]
    assert [r.plan.name for r in plans.plan_list(db.session, status="archived")] == ["Old"]
    assert [r.plan.name for r in plans.plan_list(db.session, kind="fixed")] == []


# --- quote ----------------------------------------------------------------------------------

def test_fixed_gives_the_plan_s_numbers():
    p = make("fixed", fixed())
    q = plans.quote(p, 10_000)
    assert (q.amount, q.bonus, q.points, q.gifts) == (10_000, 1_000, 50, [])
    assert plans.quote(p, None) == q
    with pytest.raises(PlanError) as e:
        plans.quote(p, 9_999)
    assert e.value.code == PlanErrorCode.OUT_OF_RANGE


def test_range_bonus_is_a_percentage_of_the_amount_and_points_of_whole_units():
    p = make("range", ranged(bonus_bp=1000, points_bp=500))
    q = plans.quote(p, 20_000)              # ¥200.00 at 10% and 5%
    assert (q.bonus_minor, q.points) == (2_000, 10)


def test_range_rounds_down_once_at_the_end():
    p = make("range", ranged(bonus_bp=333, points_bp=750))
    q = plans.quote(p, 12_345)              # ¥123.45
    assert q.bonus_minor == 411             # 12345 × 3.33% = 411.0885
    assert q.points == 9                    # 123.45 × 7.5% = 9.25875


def test_range_amounts_outside_the_range_are_refused():
    p = make("range", ranged())
    assert plans.quote(p, 10_000).amount == 10_000 and plans.quote(p, 50_000).amount == 50_000
    for amount in (9_999, 50_001, None):
        with pytest.raises(PlanError):
            plans.quote(p, amount)


def test_range_allows_up_to_1000_percent():
    p = make("range", ranged(bonus_bp=100_000, points_bp=100_000))
    assert (plans.quote(p, 10_000).bonus, plans.quote(p, 10_000).points) == (100_000, 1_000)


def test_custom_is_linear_between_the_ends():
    p = make("custom", custom())            # ¥1,000-5,000 → ¥100-500 bonus, 100-500 points
    assert (plans.quote(p, 100_000).bonus, plans.quote(p, 100_000).points) == (10_000, 100)
    assert (plans.quote(p, 500_000).bonus, plans.quote(p, 500_000).points) == (50_000, 500)
    assert (plans.quote(p, 300_000).bonus, plans.quote(p, 300_000).points) == (30_000, 300)
    q = plans.quote(p, 100_001)             # a cent above the bottom
    assert (q.bonus, q.points) == (10_000, 100)     # 10000.01 and 100.001, rounded down


def test_first_top_up_adds_extra_bonus_points_and_gift():
    gift, first_gift = CouponTemplateFactory(), CouponTemplateFactory()
    p = make("range", ranged(bonus_bp=1000, points_bp=500, gift_template_id=gift.id,
                             first_bonus=True, first_bonus_bp=500, first_points_bp=300,
                             first_gift_template_id=first_gift.id))
    plain = plans.quote(p, 20_000, first=False)
    first = plans.quote(p, 20_000, first=True)
    assert (plain.bonus, plain.points) == (2_000, 10)
    assert (first.bonus, first.points) == (3_000, 16)   # +5% of 200, +3% of 200
    assert plain.gifts == [{"template_id": gift.id, "quantity": 1}]
    assert first.gifts == [{"template_id": gift.id, "quantity": 1},
                           {"template_id": first_gift.id, "quantity": 1}]


def test_first_top_up_parts_are_rounded_together_with_the_base():
    p = make("range", ranged(bonus_bp=50, points_bp=50, first_bonus=True, first_bonus_bp=50,
                             first_points_bp=50))
    q = plans.quote(p, 10_100, first=True)   # ¥101: 0.5% + 0.5% = 1% → 101, 1.01 points
    assert (q.bonus, q.points) == (101, 1)


def test_a_fixed_plan_first_bonus_is_a_percentage_of_its_amount():
    p = make("fixed", fixed(first_bonus=True, first_bonus_bp=500, first_points_bp=1000))
    q = plans.quote(p, first=True)
    assert (q.bonus, q.points) == (1_000 + 500, 50 + 10)


def test_points_count_whole_units_in_a_currency_without_minor_units():
    p = make("range", ranged(currency="JPY", min_minor=1_000, max_minor=50_000,
                             points_bp=100))
    assert plans.quote(p, 10_000).points == 100            # ¥10,000 at 1%


# --- available plans ------------------------------------------------------------------------

def _topup(p, member, card, *, amount=10_000, bonus=0, points=0, status="credited"):
    t = Topup(plan_id=p.id, member_id=member.id, card_id=card.id, currency="CNY",
              amount_minor=amount, bonus_minor=bonus, points=points, status=status)
    db.session.add(t)
    db.session.commit()
    return t


def _available(member, **kw):
    member = db.session.merge(member)
    card = member.cards[0]
    kw.setdefault("channel", "ONLINE")
    return [p.name for p in plans.available_plans(db.session, member, card, **kw)]


def test_only_active_visible_in_currency_in_period_and_channel(member):
    make("fixed", fixed(name="Yes"))
    make("fixed", fixed(name="Draft"), activate=False)
    make("fixed", fixed(name="Hidden", visible=False))
    make("fixed", fixed(name="Dollars", currency="USD"))
    make("fixed", fixed(name="Till only", channels=["POS"]))
    make("fixed", fixed(name="Over", ends_at=clock.now()))
    make("fixed", fixed(name="Later", starts_at=clock.now() + timedelta(days=1)))
    sold_out = make("fixed", fixed(name="Sold out", stock_total=1))
    sold_out.stock_left = 0
    db.session.commit()
    assert _available(member) == ["Yes"]
    assert _available(member, channel="POS") == ["Yes", "Till only"]


def test_schedule_is_checked_at_the_moment_given(member):
    clock.set_timezone("Asia/Shanghai")
    try:
        make("fixed", fixed(name="Fridays", schedule={"frequency": "weekly", "days": [4]}))
        friday = datetime(2026, 3, 6, 12, tzinfo=clock.timezone())
        assert _available(member, at=friday.astimezone(UTC)) == ["Fridays"]
        assert _available(member, at=(friday + timedelta(days=1)).astimezone(UTC)) == []
    finally:
        clock.set_timezone("UTC")


def test_audience_by_plan_tier_tag_and_segment(member, other_member, plan):
    from portal.members import services as members

    card = db.session.merge(member).cards[0]
    gold = Tier(plan_id=plan.id, name="Gold", rank=1)
    db.session.add(gold)
    tag = members.tag_named(db.session, "vip")
    db.session.commit()
    members.set_tags(db.session, member.id, ["vip"], operator_id=None)
    seg_in = Segment(name="Plan", match="all",
                     rules=[{"field": "plan", "op": "in", "value": [plan.id]}])
    seg_out = Segment(name="Nobody", match="all",
                      rules=[{"field": "tag", "op": "in", "value": [tag.id + 1000]}])
    db.session.add_all([seg_in, seg_out])
    db.session.commit()
    make("fixed", fixed(name="Plan", plan_ids=[plan.id]))
    make("fixed", fixed(name="Gold", tier_ids=[gold.id]))
    make("fixed", fixed(name="Classic", tier_ids=[card.tier_id]))
    make("fixed", fixed(name="Tagged", tag_ids=[tag.id]))
    make("fixed", fixed(name="Segment", segment_ids=[seg_in.id]))
    make("fixed", fixed(name="Other segment", segment_ids=[seg_out.id]))
    make("fixed", fixed(name="Either segment", segment_ids=[seg_in.id, seg_out.id]))
    assert _available(member) == ["Plan", "Classic", "Tagged", "Segment", "Either segment"]
    assert _available(other_member) == ["Plan", "Classic", "Segment", "Either segment"]


def test_store_scope(member):
    a = StoreFactory(organisation="North", store_group="Malls")
    b = StoreFactory(organisation="South", store_group="Streets")
    make("fixed", fixed(name="Only A", store_scope={"mode": "include", "store_ids": [a.id]}))
    make("fixed", fixed(name="Not A", store_scope={"mode": "exclude", "store_ids": [a.id]}))
    make("fixed", fixed(name="South", store_scope={"mode": "include",
                                                   "organisations": ["South"]}))
    make("fixed", fixed(name="Malls", store_scope={"mode": "include", "groups": ["Malls"]}))
    assert _available(member, store_id=a.id) == ["Only A", "Malls"]
    assert _available(member, store_id=b.id) == ["Not A", "South"]
    assert _available(member) == ["Only A", "Not A", "South", "Malls"]   # online, no store


def test_first_top_up_only_and_the_per_member_limit(member):
    first = make("fixed", fixed(name="First", first_topup_only=True))
    once = make("fixed", fixed(name="Once", per_member_limit=1))
    make("fixed", fixed(name="Any"))
    card = db.session.merge(member).cards[0]
    assert _available(member) == ["First", "Once", "Any"]
    _topup(once, member, card, status="pending")       # a pending top-up counts too
    assert _available(member) == ["First", "Any"]
    _topup(first, member, card, status="cancelled")    # a cancelled one is no top-up
    assert _available(member) == ["First", "Any"]
    db.session.execute(Topup.__table__.update().where(Topup.plan_id == once.id)
                       .values(status="credited"))
    db.session.commit()
    assert _available(member) == ["Any"]


def test_available_plans_runs_a_fixed_number_of_queries(member, plan):
    from portal.members import services as members

    members.tag_named(db.session, "vip")
    seg = Segment(name="Plan", match="all",
                  rules=[{"field": "plan", "op": "in", "value": [plan.id]}])
    db.session.add(seg)
    db.session.commit()

    def count(n):
        for i in range(n):
            make("fixed", fixed(name=f"P{i}", segment_ids=[seg.id], per_member_limit=2,
                                first_topup_only=True))
        m = db.session.merge(member)
        card = db.session.scalar(select(MemberCard).where(MemberCard.member_id == m.id))
        db.session.commit()
        statements = []
        listener = lambda *a: statements.append(1)  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            plans.available_plans(db.session, m, card, channel="ONLINE")
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        return len(statements)

    assert count(2) == count(10)


# --- recharge codes -------------------------------------------------------------------------

def test_generate_codes_for_a_fixed_plan_uses_its_amount(owner):
    p = make("fixed", fixed())
    statements = []
    listener = lambda conn, cur, sql, *a: statements.append(sql)  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        batch = plans.generate_codes(db.session, p.id, count=500, amount_minor=1,
                                     scenario="Fair", channels=["POS"],
                                     operator_id=owner.id)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert sum("INSERT INTO recharge_codes" in s for s in statements) == 1
    codes = db.session.scalars(select(RechargeCode.code)).all()
    assert batch.amount_minor == 10_000 and len(set(codes)) == 500
    assert all(len(c) == 16 and set(c) <= set(plans.CODE_ALPHABET) for c in codes)
    assert db.session.scalar(select(AuditEntry.staff_id)
                             .where(AuditEntry.action == "topup_plan.codes")) == owner.id


@pytest.mark.parametrize("changes,field", [
    ({"count": 0}, "count"), ({"count": 10_001}, "count"), ({"count": None}, "count"),
    ({"amount_minor": 5_000}, "amount_minor"), ({"amount_minor": None}, "amount_minor"),
    ({"scenario": " "}, "scenario"), ({"channels": []}, "channels"),
    ({"store_ids": [999]}, "store_ids"),
    ({"valid_until": datetime(2000, 1, 1, tzinfo=UTC)}, "valid_until"),
])
def test_bad_code_batches_are_refused(changes, field):
    p = make("range", ranged())
    args = {"count": 10, "amount_minor": 20_000, "scenario": "Fair",
            "channels": ["POS", "ONLINE"]}
    args.update(changes)
    with pytest.raises(PlanError) as e:
        plans.generate_codes(db.session, p.id, **args)
    assert field in e.value.details["errors"]
    assert db.session.scalar(select(func.count(RechargeCode.id))) == 0


def _code(p, **kw):
    args = {"count": 1, "scenario": "Fair", "channels": ["POS"]}
    args.update(kw)
    batch = plans.generate_codes(db.session, p.id, **args)
    return db.session.scalar(select(RechargeCode.code).where(RechargeCode.batch_id == batch.id))


def test_find_code_ignores_case_spaces_and_dashes():
    text = _code(make("fixed", fixed()))
    typed = f"{text[:4].lower()}-{text[4:8]} {text[8:]}"
    assert plans.find_code(db.session, typed).code == text
    assert plans.find_code(db.session, "NOPE") is None


def test_check_code_says_why_a_code_cannot_be_used(member):
    store = StoreFactory()
    p = make("fixed", fixed())
    row = plans.find_code(db.session, _code(p, store_ids=[store.id],
                                            valid_until=clock.now() + timedelta(days=1)))
    assert plans.check_code(row, channel="POS", store_id=store.id) is None

    def why(**kw):
        kw.setdefault("channel", "POS")
        kw.setdefault("store_id", store.id)
        with pytest.raises(PlanError) as e:
            plans.check_code(row, **kw)
        return e.value.code

    assert why(channel="ONLINE") == PlanErrorCode.CODE_WRONG_CHANNEL
    assert why(store_id=StoreFactory().id) == PlanErrorCode.CODE_WRONG_STORE
    assert why(at=clock.now() + timedelta(days=2)) == PlanErrorCode.CODE_EXPIRED
    plans.set_status(db.session, p.id, "deactivate", operator_id=None)
    assert why() == PlanErrorCode.PLAN_INACTIVE
    row.redeemed_at = clock.now()
    assert why() == PlanErrorCode.CODE_USED


def test_code_batches_count_redeemed_codes():
    p = make("fixed", fixed())
    batch = plans.generate_codes(db.session, p.id, count=3, scenario="A", channels=["POS"])
    first = db.session.scalars(select(RechargeCode).where(RechargeCode.batch_id == batch.id)
                               ).first()
    first.redeemed_at = clock.now()
    db.session.commit()
    rows = plans.code_batches(db.session, p.id)
    assert [(r.batch.id, r.batch.count, r.redeemed) for r in rows] == [(batch.id, 3, 1)]


# --- member top-up details ------------------------------------------------------------------

def test_topup_details_pages_with_member_and_card(member, other_member):
    p = make("fixed", fixed())
    card = db.session.merge(member).cards[0]
    other_card = db.session.merge(other_member).cards[0]
    for _ in range(plans.PAGE_SIZE):
        _topup(p, member, card, bonus=1_000, points=50)
    _topup(p, other_member, other_card, status="pending")
    first = plans.topup_details(db.session, p.id, 1)
    assert (first.total, first.pages, len(first.rows)) == (plans.PAGE_SIZE + 1, 2,
                                                            plans.PAGE_SIZE)
    assert first.rows[0].card_number == other_card.number
    assert first.credited_minor == 10_000 * plans.PAGE_SIZE
    assert first.bonus_minor == 1_000 * plans.PAGE_SIZE
    second = plans.topup_details(db.session, p.id, 2)
    assert [r.member_id for r in second.rows] == [member.id]
