from datetime import UTC, datetime, timedelta

from portal import clock
from portal.db import transaction
from portal.members import services
from portal.members.models import CardStatus
from tests.factories import CardPlanFactory, MemberFactory


def test_card_numbers_carry_a_valid_check_digit():
    numbers = {services.new_card_number() for _ in range(500)}
    assert len(numbers) == 500
    assert all(services.is_valid_card_number(n) for n in numbers)


def test_card_numbers_drawn_together_are_valid_distinct_and_spread_over_every_digit():
    numbers = services.new_card_numbers(5000)
    assert len(set(numbers)) == 5000
    assert all(services.is_valid_card_number(n) and n[0] != "0" for n in numbers)
    # Every body digit takes every value; leading digits 1-9 all occur.
    assert {n[0] for n in numbers} == set("123456789")
    assert all({n[i] for n in numbers} == set("0123456789") for i in range(1, 16))


def test_luhn_check_digit_matches_known_numbers():
    # Published test numbers: Visa, Mastercard, American Express.
    for number in ("4111111111111111", "5555555555554444", "378282246310005",
                   "79927398713"):
        assert services.luhn_check_digit(number[:-1]) == number[-1]


def test_a_mistyped_digit_fails_the_check():
    number = services.new_card_number()
    wrong = number[:5] + str((int(number[5]) + 1) % 10) + number[6:]
    assert not services.is_valid_card_number(wrong)


def test_card_numbers_are_not_sequential():
    a, b = services.new_card_number(), services.new_card_number()
    assert abs(int(a) - int(b)) > 1000


def test_issuing_a_card_makes_the_customer_a_member_in_the_lowest_tier(session):
    plan = CardPlanFactory(tier="Classic")
    customer = MemberFactory()
    assert not customer.is_member
    with transaction(session):
        card = services.issue_card(session, customer, plan)
    assert customer.is_member
    assert card.tier.name == "Classic" and card.status == CardStatus.ACTIVE
    assert card.expires_at is None


def test_card_of_a_limited_plan_expires_after_its_validity(session):
    clock.freeze(datetime(2026, 1, 1, tzinfo=UTC))
    plan = CardPlanFactory(validity_days=365)
    customer = MemberFactory()
    with transaction(session):
        card = services.issue_card(session, customer, plan)
    assert card.expires_at == datetime(2027, 1, 1, tzinfo=UTC)
    clock.advance(timedelta(days=366))
    assert card.current_status() == CardStatus.EXPIRED


def test_one_card_per_plan_per_member(session):
    plan = CardPlanFactory()
    m = MemberFactory()
    with transaction(session):
        first = services.issue_card(session, m, plan)
        second = services.issue_card(session, m, plan)
    assert first.id == second.id
