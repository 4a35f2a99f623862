"""The member's "My benefits": what the card and tier give, the next member day, the
birthday window, what the next tier adds; out-of-scope and inactive benefits never shown."""
from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from portal import clock
from portal.benefits import manage
from portal.benefits.models import BenefitKind
from portal.db import db
from portal.members.models import CardPlan, Member, MemberCard, Tier
from tests.factories import MemberFactory, StaffFactory
from tests.fixtures import count_queries, sign_in_as


@pytest.fixture
def harbour():
    plan = CardPlan(name="Harbour Card", currency="CNY", validity_days=None)
    db.session.add(plan)
    db.session.flush()
    for rank, name in enumerate(("Member", "Silver", "Gold")):
        db.session.add(Tier(plan_id=plan.id, name=name, rank=rank))
    db.session.commit()
    return plan


@pytest.fixture
def staff_id():
    return StaffFactory(role="manager").id


def _tier(name) -> int:
    return db.session.scalar(select(Tier.id).where(Tier.name == name))


def _sign_in_member(client, plan, tier="Member", born_on=None) -> Member:
    member = MemberFactory(born_on=born_on)
    db.session.add(MemberCard(number=f"77{member.id:010d}", member_id=member.id,
                              plan_id=plan.id, tier_id=_tier(tier)))
    db.session.commit()
    sign_in_as(client, member)
    return member


def _friday(staff_id, **changes):
    data = {"name": "Friday member day", "discount_bp": 1000, "channels": ["POS"],
            "schedule": {"frequency": "weekly", "days": [4], "times": "window",
                         "window": ["10:00", "22:00"]}}
    data.update(changes)
    return manage.create(db.session, BenefitKind.MEMBER_DAY, data, operator_id=staff_id)


def test_my_benefits_shows_what_the_tier_has_and_hides_the_rest(client, harbour, staff_id):
    manage.create(db.session, BenefitKind.DISCOUNT, {"name": "Gold 20% off",
                                                     "brief": "For Gold members",
                                                     "discount_bp": 2000, "channels": ["POS"],
                                                     "tier_ids": [_tier("Gold")]},
                  operator_id=staff_id)
    manage.create(db.session, BenefitKind.MULTIPLIER, {"name": "Double points",
                                                       "multiplier_bp": 20_000},
                  operator_id=staff_id)
    off = manage.create(db.session, BenefitKind.CUSTOM, {"name": "Old perk"},
                        operator_id=staff_id)
    manage.deactivate(db.session, off.id, operator_id=staff_id)
    _sign_in_member(client, harbour, "Gold")
    page = client.get("/benefits").get_data(as_text=True)
    assert "Gold 20% off" in page and "20% off" in page and "× 2 points" in page
    assert "Old perk" not in page
    assert "What" not in page.split("What your card gives you")[1]  # top tier: nothing next


def test_my_benefits_next_tier_adds(client, harbour, staff_id):
    manage.create(db.session, BenefitKind.DISCOUNT, {"name": "Silver 5% off",
                                                     "discount_bp": 500, "channels": ["POS"],
                                                     "tier_ids": [_tier("Silver"),
                                                                  _tier("Gold")]},
                  operator_id=staff_id)
    _sign_in_member(client, harbour, "Member")
    page = client.get("/benefits").get_data(as_text=True)
    assert "What Silver adds" in page and "Silver 5% off" in page.split("What Silver adds")[1]
    assert "Your card has no benefits yet" in page


def test_member_day_today_until_the_window_ends(client, harbour, staff_id):
    clock.freeze(datetime(2026, 12, 11, 6, 0, tzinfo=UTC))   # Friday 14:00 in Shanghai
    _friday(staff_id)
    _sign_in_member(client, harbour)
    page = client.get("/benefits").get_data(as_text=True)
    assert "Today, until 22:00" in page


def test_member_day_next_date_and_window(client, harbour, staff_id):
    clock.freeze(datetime(2026, 12, 11, 15, 0, tzinfo=UTC))  # Friday 23:00: over
    _friday(staff_id)
    _sign_in_member(client, harbour)
    page = client.get("/benefits").get_data(as_text=True)
    assert "Next member day" in page and "December 18, 2026" in page and "10:00 to 22:00" in page


def test_birthday_week_window_shown(client, harbour, staff_id):
    clock.freeze(datetime(2026, 12, 29, 4, 0, tzinfo=UTC))
    manage.create(db.session, BenefitKind.BIRTHDAY, {"name": "Birthday week",
                                                     "birthday_window": "week",
                                                     "discount_bp": 3000, "channels": ["POS"]},
                  operator_id=staff_id)
    _sign_in_member(client, harbour, born_on=date(1990, 1, 1))
    page = client.get("/benefits").get_data(as_text=True)
    assert "December 28, 2026 to January 3, 2027" in page and "On now" in page


def test_birthday_prompt_without_a_birth_date(client, harbour, staff_id):
    manage.create(db.session, BenefitKind.BIRTHDAY, {"name": "Birthday", "birthday_window": "day",
                                                     "channels": ["POS"]}, operator_id=staff_id)
    _sign_in_member(client, harbour)
    page = client.get("/benefits").get_data(as_text=True)
    assert "Add your birthday to your profile" in page


def test_benefit_detail_shows_prices_and_404s_out_of_scope(client, harbour, staff_id):
    prices = manage.create(db.session, BenefitKind.MEMBER_PRICE, {
        "name": "Member prices", "prices": [{"product_id": "LATTE", "price_minor": 1800}]},
        operator_id=staff_id)
    gold = manage.create(db.session, BenefitKind.CUSTOM, {"name": "Gold lounge",
                                                          "tier_ids": [_tier("Gold")]},
                         operator_id=staff_id)
    _sign_in_member(client, harbour)
    page = client.get(f"/benefits/{prices.id}").get_data(as_text=True)
    assert "LATTE" in page and "18.00" in page
    assert client.get(f"/benefits/{gold.id}").status_code == 404


def test_deactivated_benefit_gone_from_members_at_once(client, harbour, staff_id):
    b = manage.create(db.session, BenefitKind.CUSTOM, {"name": "Free Wi-Fi"},
                      operator_id=staff_id)
    _sign_in_member(client, harbour)
    assert "Free Wi-Fi" in client.get("/benefits").get_data(as_text=True)
    manage.deactivate(db.session, b.id, operator_id=staff_id)
    assert "Free Wi-Fi" not in client.get("/benefits").get_data(as_text=True)
    assert client.get(f"/benefits/{b.id}").status_code == 404


def test_member_without_a_card_is_told_to_join(client):
    member = MemberFactory()
    sign_in_as(client, member)
    assert "Benefits come with a membership card" in client.get("/benefits").get_data(
        as_text=True)


def test_benefits_page_needs_a_member(client):
    assert client.get("/benefits").status_code in (302, 303)


def test_benefits_page_query_count_does_not_grow(client, harbour, staff_id):
    _friday(staff_id)
    _sign_in_member(client, harbour, born_on=date(1990, 5, 5))
    few = count_queries(client, "/benefits")
    for i in range(6):
        manage.create(db.session, BenefitKind.BIRTHDAY,
                      {"name": f"B{i}", "birthday_window": "month", "channels": ["POS"]},
                      operator_id=staff_id)
        _friday(staff_id, name=f"Day {i}")
    assert count_queries(client, "/benefits") == few


def test_birthday_window_past_this_year_shows_the_next(client, harbour, staff_id):
    clock.freeze(datetime(2026, 8, 1, 4, 0, tzinfo=UTC))
    manage.create(db.session, BenefitKind.BIRTHDAY, {"name": "Birthday month",
                                                     "birthday_window": "month",
                                                     "channels": ["POS"]}, operator_id=staff_id)
    _sign_in_member(client, harbour, born_on=date(1990, 2, 14))
    page = client.get("/benefits").get_data(as_text=True)
    assert "February 1, 2027 to February 28, 2027" in page
