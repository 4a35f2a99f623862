from decimal import Decimal

import pytest

from portal.money import CurrencyMismatch, Money


def test_parse_uses_minor_units_of_the_currency():
    assert Money.parse("12.50", "CNY") == Money(1250, "CNY")
    assert Money.parse("1200", "JPY") == Money(1200, "JPY")


def test_parse_refuses_more_decimals_than_the_currency_has():
    with pytest.raises(ValueError):
        Money.parse("1.005", "USD")


def test_floats_are_refused():
    with pytest.raises(TypeError):
        Money(1.5, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(100, "USD").multiply(1.1)  # type: ignore[arg-type]


def test_adding_different_currencies_fails():
    with pytest.raises(CurrencyMismatch):
        Money(1, "USD") + Money(1, "CNY")


def test_multiply_rounds_once_with_the_chosen_rule():
    assert Money(999, "CNY").multiply(Decimal("0.15")) == Money(150, "CNY")  # 149.85
    assert Money(999, "CNY").multiply(Decimal("0.15"), "down") == Money(149, "CNY")
    assert Money(1001, "CNY").multiply(Decimal("0.5"), "up") == Money(501, "CNY")


def test_allocate_never_loses_a_minor_unit():
    shares = Money(100, "USD").allocate([1, 1, 1])
    assert [s.minor for s in shares] == [34, 33, 33]
    assert sum(s.minor for s in shares) == 100


def test_format_follows_the_locale():
    assert Money(128000, "CNY").format("zh_Hans_CN") == "¥1,280.00"
    assert Money(128000, "USD").format("en_US") == "$1,280.00"


def test_format_uses_the_narrow_symbol():
    assert Money(128000, "CNY").format("en") == "¥1,280.00"
    assert Money(500, "EUR").format("de_DE") == "5,00\xa0€"
    assert Money(500, "CHF").format("en").startswith("CHF")  # a code stays a code
