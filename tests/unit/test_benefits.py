"""Member benefits, merchant side: what each kind may save (every field error at once),
the audit trail, deactivation, the management list; and which benefits a card has."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from portal import clock
from portal.benefits import manage, services
from portal.benefits.errors import BenefitError, BenefitErrorCode
from portal.benefits.models import BenefitKind
from portal.campaigns.models import Activity, ActivityStatus
from portal.db import db
from portal.members.models import CardPlan, MemberCard, Tier
from portal.staff.models import AuditEntry
from tests.factories import MemberFactory, StaffFactory


def _plan(name="Harbour", validity_days=None, tiers=("Member", "Silver", "Gold")):
    plan = CardPlan(name=name, currency="CNY", validity_days=validity_days)
    db.session.add(plan)
    db.session.flush()
    for rank, tier in enumerate(tiers):
        db.session.add(Tier(plan_id=plan.id, name=tier, rank=rank))
    db.session.commit()
    return plan


def _tier(plan, name) -> Tier:
    return db.session.scalar(select(Tier).where(Tier.plan_id == plan.id, Tier.name == name))


def _activity(status=ActivityStatus.ACTIVE) -> Activity:
    now = clock.now()
    a = Activity(kind="profile_completion", name="Complete your profile",
                 code=f"A{now.timestamp()}",
                 starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=30),
                 status=status)
    db.session.add(a)
    db.session.commit()
    return a


def _errors(excinfo) -> dict:
    assert excinfo.value.code == BenefitErrorCode.INVALID
    return excinfo.value.details["errors"]


def _refused(kind, data) -> dict:
    with pytest.raises(BenefitError) as e:
        manage.create(db.session, kind, data, operator_id=_staff().id)
    return _errors(e)


def _staff():
    return StaffFactory(role="manager")


def _card(plan, tier_name="Member", **kw) -> MemberCard:
    member = MemberFactory(**kw)
    card = MemberCard(number=f"88{member.id:010d}", member_id=member.id, plan_id=plan.id,
                      tier_id=_tier(plan, tier_name).id)
    db.session.add(card)
    db.session.commit()
    return card


# --- basics --------------------------------------------------------------------------------

def test_create_custom_benefit_is_active_and_audited():
    _plan()
    staff = _staff()
    b = manage.create(db.session, BenefitKind.CUSTOM, {"name": " Free Wi-Fi ",
                                                       "brief": "Ask at the till"},
                      operator_id=staff.id)
    assert (b.name, b.status, b.operator_id, b.currency) == ("Free Wi-Fi", "active", staff.id,
                                                            "CNY")
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "benefit.create"))
    assert entry.object_id == str(b.id) and entry.after["name"] == "Free Wi-Fi"


def test_create_refuses_missing_name_and_long_brief_together():
    _plan()
    errors = _refused(BenefitKind.CUSTOM, {"name": "", "brief": "x" * 161})
    assert set(errors) == {"name", "brief"}


def test_create_refuses_name_over_80_characters():
    _plan()
    assert "name" in _refused(BenefitKind.CUSTOM, {"name": "x" * 81})


def test_create_refuses_unknown_kind():
    with pytest.raises(BenefitError) as e:
        manage.create(db.session, "bogus", {"name": "X"}, operator_id=_staff().id)
    assert "kind" in _errors(e)


def test_create_keeps_only_the_kinds_fields():
    _plan()
    b = manage.create(db.session, BenefitKind.MULTIPLIER,
                      {"name": "Double points", "multiplier_bp": 20_000, "discount_bp": 1000,
                       "prices": [{"product_id": "A", "price_minor": 1}]},
                      operator_id=_staff().id)
    assert (b.multiplier_bp, b.discount_bp, b.prices) == (20_000, None, [])


# --- promotion and marketing ---------------------------------------------------------------

def test_promotion_saves_threshold_and_amount_off():
    _plan()
    a = _activity()
    b = manage.create(db.session, BenefitKind.PROMOTION,
                      {"name": "20 off 100", "activity_id": a.id, "threshold_minor": 10_000,
                       "off_minor": 2_000, "channels": ["POS"]}, operator_id=_staff().id)
    assert (b.threshold_minor, b.off_minor, b.activity_id, b.channels) == \
        (10_000, 2_000, a.id, ["POS"])


def test_promotion_refuses_off_not_below_threshold():
    _plan()
    errors = _refused(BenefitKind.PROMOTION, {"name": "P", "activity_id": _activity().id,
                                              "threshold_minor": 10_000, "off_minor": 10_000})
    assert "off_minor" in errors


def test_promotion_refuses_zero_threshold_and_missing_activity():
    _plan()
    errors = _refused(BenefitKind.PROMOTION, {"name": "P", "threshold_minor": 0,
                                              "off_minor": 100})
    assert {"threshold_minor", "activity_id"} <= set(errors)


def test_marketing_refuses_an_activity_that_does_not_exist():
    _plan()
    assert "activity_id" in _refused(BenefitKind.MARKETING, {"name": "M", "activity_id": 999})


def test_marketing_refuses_an_archived_activity():
    _plan()
    a = _activity(ActivityStatus.ARCHIVED)
    assert "activity_id" in _refused(BenefitKind.MARKETING, {"name": "M", "activity_id": a.id})


# --- member pricing ------------------------------------------------------------------------

def test_member_price_refuses_a_price_below_zero():
    _plan()
    errors = _refused(BenefitKind.MEMBER_PRICE, {
        "name": "Member prices", "prices": [{"product_id": "LATTE", "price_minor": -100}]})
    assert errors == {"prices-0-price_minor": "A member price cannot be below zero."}


def test_member_price_refuses_no_products_and_duplicates():
    _plan()
    assert "prices" in _refused(BenefitKind.MEMBER_PRICE, {"name": "MP", "prices": []})
    errors = _refused(BenefitKind.MEMBER_PRICE, {"name": "MP", "prices": [
        {"product_id": "A", "price_minor": 100}, {"product_id": "A", "price_minor": 200}]})
    assert set(errors) == {"prices-1-product_id"}


def test_member_price_accepts_zero_price_with_restriction_and_exclusions():
    _plan()
    b = manage.create(db.session, BenefitKind.MEMBER_PRICE, {
        "name": "Free refill", "prices": [{"product_id": "REFILL", "price_minor": 0}],
        "channels": ["POS", "ONLINE"],
        "restriction": {"rule": "balance_below_amount", "amount_minor": 5_000},
        "exclusions": {"mode": "categories", "values": ["Sale", "Sale", " Beans "]}},
        operator_id=_staff().id)
    assert b.prices == [{"product_id": "REFILL", "price_minor": 0}]
    assert b.restriction == {"rule": "balance_below_amount", "amount_minor": 5_000}
    assert b.exclusions == {"mode": "categories", "values": ["Sale", "Beans"]}


def test_restriction_and_exclusions_refuse_bad_values_together():
    _plan()
    errors = _refused(BenefitKind.DISCOUNT, {
        "name": "D", "discount_bp": 1000, "channels": ["POS"],
        "restriction": {"rule": "balance_below_amount", "amount_minor": -1},
        "exclusions": {"mode": "products", "values": []}})
    assert set(errors) == {"restriction_amount_minor", "exclusions_values"}


def test_member_price_refuses_plans_of_two_currencies():
    _plan()
    other = _plan("Hong Kong")
    other.currency = "HKD"
    db.session.commit()
    errors = _refused(BenefitKind.MEMBER_PRICE, {
        "name": "MP", "prices": [{"product_id": "A", "price_minor": 1}]})
    assert "plan_ids" in errors


# --- discount and multiplier ---------------------------------------------------------------

@pytest.mark.parametrize("bp", [0, 10_000, 12_000, None])
def test_discount_refuses_outside_0_and_100_percent(bp):
    _plan()
    assert "discount_bp" in _refused(BenefitKind.DISCOUNT, {"name": "D", "discount_bp": bp})


def test_discount_refuses_no_channel():
    _plan()
    assert "channels" in _refused(BenefitKind.DISCOUNT, {"name": "D", "discount_bp": 1000,
                                                         "channels": []})


@pytest.mark.parametrize("bp", [10_000, 9_000, 100_001, None])
def test_multiplier_refuses_one_or_less_and_above_ten(bp):
    _plan()
    assert "multiplier_bp" in _refused(BenefitKind.MULTIPLIER, {"name": "M",
                                                                "multiplier_bp": bp})


@pytest.mark.parametrize("bp", [15_000, 20_000, 100_000])
def test_multiplier_accepts_above_one_up_to_ten(bp):
    _plan()
    b = manage.create(db.session, BenefitKind.MULTIPLIER, {"name": "M", "multiplier_bp": bp},
                      operator_id=_staff().id)
    assert b.multiplier_bp == bp


# --- member day ----------------------------------------------------------------------------

def _member_day(**changes) -> dict:
    data = {"name": "Friday member day", "discount_bp": 1000, "channels": ["POS", "ONLINE"],
            "schedule": {"frequency": "weekly", "days": [4], "times": "window",
                         "window": ["10:00", "22:00"]}}
    data.update(changes)
    return data


def test_member_day_saves_a_clean_schedule():
    _plan()
    b = manage.create(db.session, BenefitKind.MEMBER_DAY, _member_day(), operator_id=_staff().id)
    assert b.schedule == {"frequency": "weekly", "times": "window", "days": [4],
                          "window": ["10:00", "22:00"]}


def test_member_day_refuses_daily_and_missing_days():
    _plan()
    assert "schedule_frequency" in _refused(BenefitKind.MEMBER_DAY, _member_day(
        schedule={"frequency": "daily", "times": "all_day"}))
    assert "schedule_days" in _refused(BenefitKind.MEMBER_DAY, _member_day(
        schedule={"frequency": "monthly", "days": [], "times": "all_day"}))


def test_member_day_refuses_reversed_window_and_bad_per_date_times():
    _plan()
    assert "schedule_window" in _refused(BenefitKind.MEMBER_DAY, _member_day(
        schedule={"frequency": "weekly", "days": [4], "times": "window",
                  "window": ["22:00", "10:00"]}))
    errors = _refused(BenefitKind.MEMBER_DAY, _member_day(schedule={
        "frequency": "monthly", "days": [1, "last"], "times": "per_date",
        "per_date": {"1": ["10:00", "12:00"], "last": ["25:00", "26:00"]}}))
    assert "schedule_per_date-last" in errors


def test_tier_perks_only_for_tiers_of_the_chosen_plans():
    harbour = _plan()
    campus = _plan("Campus", validity_days=365, tiers=("Student",))
    errors = _refused(BenefitKind.MEMBER_DAY, _member_day(
        plan_ids=[harbour.id], tier_perks=[{"tier_id": _tier(campus, "Student").id,
                                            "discount_bp": 500}]))
    assert "tier_perks-0-tier_id" in errors


def test_tier_perks_refuse_a_tier_twice_and_a_total_of_100_percent():
    harbour = _plan()
    gold = _tier(harbour, "Gold").id
    errors = _refused(BenefitKind.MEMBER_DAY, _member_day(tier_perks=[
        {"tier_id": gold, "discount_bp": 500}, {"tier_id": gold, "discount_bp": 9_000}]))
    assert set(errors) == {"tier_perks-1-tier_id", "tier_perks-1-discount_bp"}


def test_tier_perks_saved_with_their_extras():
    harbour = _plan()
    gold = _tier(harbour, "Gold").id
    b = manage.create(db.session, BenefitKind.MEMBER_DAY, _member_day(tier_perks=[
        {"tier_id": gold, "discount_bp": 1000, "multiplier_bp": 5000, "note": "Free cake"}]),
        operator_id=_staff().id)
    assert b.tier_perks == [{"tier_id": gold, "discount_bp": 1000, "multiplier_bp": 5000,
                             "note": "Free cake"}]


def test_tiers_must_belong_to_the_chosen_plans():
    harbour = _plan()
    campus = _plan("Campus", validity_days=365, tiers=("Student",))
    errors = _refused(BenefitKind.CUSTOM, {"name": "C", "plan_ids": [harbour.id],
                                           "tier_ids": [_tier(campus, "Student").id]})
    assert "tier_ids" in errors


# --- birthday ------------------------------------------------------------------------------

@pytest.mark.parametrize("window", ["day", "week", "month"])
def test_birthday_accepts_day_week_month(window):
    _plan()
    b = manage.create(db.session, BenefitKind.BIRTHDAY, {
        "name": "Birthday", "birthday_window": window, "discount_bp": 2000,
        "channels": ["POS"]}, operator_id=_staff().id)
    assert b.birthday_window == window


def test_birthday_refuses_another_window():
    _plan()
    assert "birthday_window" in _refused(BenefitKind.BIRTHDAY, {
        "name": "B", "birthday_window": "year", "channels": ["POS"]})


# --- card extension ------------------------------------------------------------------------

def test_card_extension_refused_on_a_permanent_plan():
    permanent = _plan("Harbour Card")
    errors = _refused(BenefitKind.CARD_EXTENSION, {"name": "+30 days", "extension_days": 30,
                                                   "plan_ids": [permanent.id]})
    assert "“Harbour Card” never expires" in errors["plan_ids"]


def test_card_extension_without_plans_refused_when_any_plan_is_permanent():
    _plan("Harbour Card")
    _plan("Campus", validity_days=365, tiers=("Student",))
    errors = _refused(BenefitKind.CARD_EXTENSION, {"name": "+30", "extension_days": 30})
    assert "plan_ids" in errors


def test_card_extension_on_relative_validity_plans_is_saved():
    _plan("Harbour Card")
    campus = _plan("Campus", validity_days=365, tiers=("Student",))
    b = manage.create(db.session, BenefitKind.CARD_EXTENSION, {
        "name": "+30", "extension_days": 30, "plan_ids": [campus.id]}, operator_id=_staff().id)
    assert b.extension_days == 30


@pytest.mark.parametrize("days", [0, 3651, None])
def test_card_extension_days_between_1_and_3650(days):
    campus = _plan("Campus", validity_days=365, tiers=("Student",))
    assert "extension_days" in _refused(BenefitKind.CARD_EXTENSION, {
        "name": "+", "extension_days": days, "plan_ids": [campus.id]})


# --- service -------------------------------------------------------------------------------

def test_service_refuses_more_than_six_images():
    _plan()
    errors = _refused(BenefitKind.SERVICE, {"name": "Concierge",
                                            "images": [f"{i}.jpg" for i in range(7)]})
    assert "images" in errors


# --- update, deactivate, activate ----------------------------------------------------------

def test_update_changes_fields_keeps_kind_and_audits_before_and_after():
    _plan()
    staff, other = _staff(), StaffFactory(role="owner")
    b = manage.create(db.session, BenefitKind.DISCOUNT, {"name": "10% off", "discount_bp": 1000,
                                                         "channels": ["POS"]},
                      operator_id=staff.id)
    manage.update(db.session, b.id, {"name": "15% off", "discount_bp": 1500,
                                     "channels": ["POS"]}, operator_id=other.id)
    db.session.refresh(b)
    assert (b.kind, b.discount_bp, b.operator_id) == ("discount", 1500, other.id)
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "benefit.update"))
    assert (entry.before["discount_bp"], entry.after["discount_bp"]) == (1000, 1500)


def test_update_refused_changes_nothing():
    _plan()
    b = manage.create(db.session, BenefitKind.DISCOUNT, {"name": "10% off", "discount_bp": 1000,
                                                         "channels": ["POS"]},
                      operator_id=_staff().id)
    with pytest.raises(BenefitError):
        manage.update(db.session, b.id, {"name": "", "discount_bp": 0}, operator_id=_staff().id)
    db.session.refresh(b)
    assert (b.name, b.discount_bp) == ("10% off", 1000)


def test_update_of_a_missing_benefit_is_not_found():
    with pytest.raises(BenefitError) as e:
        manage.update(db.session, 999, {"name": "X"}, operator_id=_staff().id)
    assert e.value.code == BenefitErrorCode.NOT_FOUND


def test_deactivate_hides_from_members_at_once_and_activate_gives_back():
    plan = _plan()
    card = _card(plan)
    b = manage.create(db.session, BenefitKind.CUSTOM, {"name": "Wi-Fi"}, operator_id=_staff().id)
    assert services.benefits_for_card(db.session, card, clock.now()) == [b]
    manage.deactivate(db.session, b.id, operator_id=_staff().id)
    assert services.benefits_for_card(db.session, card, clock.now()) == []
    manage.activate(db.session, b.id, operator_id=_staff().id)
    assert services.benefits_for_card(db.session, card, clock.now()) == [b]
    actions = db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == ["benefit.create", "benefit.deactivate", "benefit.activate"]


def test_deactivate_twice_records_once():
    _plan()
    b = manage.create(db.session, BenefitKind.CUSTOM, {"name": "Wi-Fi"}, operator_id=_staff().id)
    manage.deactivate(db.session, b.id, operator_id=_staff().id)
    manage.deactivate(db.session, b.id, operator_id=_staff().id)
    assert len(db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == "benefit.deactivate")).all()) == 1


# --- the list ------------------------------------------------------------------------------

def _some_benefits():
    _plan()
    ann, bob = StaffFactory(name="Ann", role="manager"), StaffFactory(name="Bob", role="owner")
    a = manage.create(db.session, BenefitKind.CUSTOM, {"name": "Free Wi-Fi"}, operator_id=ann.id)
    b = manage.create(db.session, BenefitKind.MULTIPLIER, {"name": "Double POINTS",
                                                           "multiplier_bp": 20_000},
                      operator_id=ann.id)
    c = manage.create(db.session, BenefitKind.CUSTOM, {"name": "Free parking"},
                      operator_id=bob.id)
    manage.deactivate(db.session, c.id, operator_id=bob.id)
    return a, b, c, ann, bob


def _names(filters, **kw):
    rows, _more = manage.benefit_list(db.session, filters, **kw)
    return [r.benefit.name for r in rows]


def test_list_searches_name_case_insensitively():
    _some_benefits()
    assert _names(manage.BenefitFilters(q="free")) == ["Free parking", "Free Wi-Fi"]
    assert _names(manage.BenefitFilters(q="points")) == ["Double POINTS"]
    assert _names(manage.BenefitFilters(q="100%")) == []


def test_list_filters_by_kind_status_and_operator():
    _a, _b, _c, ann, bob = _some_benefits()
    assert _names(manage.BenefitFilters(kind="multiplier")) == ["Double POINTS"]
    assert _names(manage.BenefitFilters(status="inactive")) == ["Free parking"]
    assert _names(manage.BenefitFilters(operator_id=ann.id)) == ["Double POINTS", "Free Wi-Fi"]
    assert _names(manage.BenefitFilters(operator_id=bob.id, status="active")) == []
    rows, _ = manage.benefit_list(db.session, manage.BenefitFilters(operator_id=bob.id))
    assert rows[0].operator == "Bob"


def test_list_pages_with_before_and_says_when_there_is_more():
    _some_benefits()
    rows, more = manage.benefit_list(db.session, manage.BenefitFilters(), limit=2)
    assert more and len(rows) == 2
    rest, more = manage.benefit_list(db.session, manage.BenefitFilters(),
                                     before_id=rows[-1].benefit.id, limit=2)
    assert not more and [r.benefit.name for r in rest] == ["Free Wi-Fi"]


def test_list_runs_one_select_whatever_the_rows():
    _some_benefits()
    count = 0

    def on_execute(_conn, _cursor, statement, *_args):
        nonlocal count
        count += statement.lstrip().upper().startswith("SELECT")

    db.session.commit()
    event.listen(db.engine, "before_cursor_execute", on_execute)
    try:
        manage.benefit_list(db.session, manage.BenefitFilters())
    finally:
        event.remove(db.engine, "before_cursor_execute", on_execute)
    assert count == 1


# --- which benefits a card has -------------------------------------------------------------

def test_benefits_for_card_follows_plan_and_tier_scope():
    harbour = _plan()
    campus = _plan("Campus", validity_days=365, tiers=("Student",))
    gold = _tier(harbour, "Gold").id
    staff = _staff().id
    everyone = manage.create(db.session, BenefitKind.CUSTOM, {"name": "All"}, operator_id=staff)
    harbour_only = manage.create(db.session, BenefitKind.CUSTOM,
                                 {"name": "Harbour", "plan_ids": [harbour.id]},
                                 operator_id=staff)
    gold_only = manage.create(db.session, BenefitKind.CUSTOM,
                              {"name": "Gold", "plan_ids": [harbour.id], "tier_ids": [gold]},
                              operator_id=staff)
    now = clock.now()
    assert services.benefits_for_card(db.session, _card(harbour, "Gold"), now) == \
        [everyone, harbour_only, gold_only]
    assert services.benefits_for_card(db.session, _card(harbour, "Silver"), now) == \
        [everyone, harbour_only]
    assert services.benefits_for_card(db.session, _card(campus, "Student"), now) == [everyone]


def test_benefits_for_an_expired_card_are_none():
    plan = _plan()
    card = _card(plan)
    manage.create(db.session, BenefitKind.CUSTOM, {"name": "All"}, operator_id=_staff().id)
    card.expires_at = datetime(2020, 1, 1, tzinfo=UTC)
    db.session.commit()
    assert services.benefits_for_card(db.session, card, clock.now()) == []


def test_my_benefits_next_tier_adds_new_benefits_and_better_perks():
    harbour = _plan()
    silver, gold = _tier(harbour, "Silver").id, _tier(harbour, "Gold").id
    staff = _staff().id
    manage.create(db.session, BenefitKind.CUSTOM, {"name": "All"}, operator_id=staff)
    manage.create(db.session, BenefitKind.DISCOUNT, {"name": "Silver 5%", "discount_bp": 500,
                                                     "channels": ["POS"],
                                                     "tier_ids": [silver]}, operator_id=staff)
    manage.create(db.session, BenefitKind.MEMBER_DAY, _member_day(tier_perks=[
        {"tier_id": silver, "discount_bp": 500}, {"tier_id": gold, "discount_bp": 900}]),
        operator_id=staff)
    card = _card(harbour, "Member")
    mine = services.my_benefits(db.session, card.member_id, clock.now())
    assert mine.next_tier.name == "Silver"
    assert [(h.benefit.name, h.discount_bp) for h in mine.next_adds] == \
        [("Silver 5%", 500), ("Friday member day", 1500)]
    assert [h.benefit.name for h in mine.held] == ["All", "Friday member day"]


def test_my_benefits_top_tier_has_no_next_tier():
    harbour = _plan()
    card = _card(harbour, "Gold")
    mine = services.my_benefits(db.session, card.member_id, clock.now())
    assert mine.next_tier is None and mine.next_adds == []
