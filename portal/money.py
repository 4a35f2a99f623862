"""Money as integer minor units plus an ISO currency code. Never floats."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal

from babel.numbers import format_currency, get_currency_precision, get_currency_symbol

ROUNDING = {"half_up": ROUND_HALF_UP, "down": ROUND_DOWN, "up": ROUND_UP}


class CurrencyMismatch(ValueError):
    pass


def precision(currency: str) -> int:
    return get_currency_precision(currency)


@dataclass(frozen=True, slots=True)
class Money:
    minor: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.minor, int) or isinstance(self.minor, bool):
            raise TypeError("minor units must be an int")
        if len(self.currency) != 3 or not self.currency.isupper():
            raise ValueError(f"not an ISO currency code: {self.currency!r}")

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def parse(cls, amount: str | Decimal, currency: str) -> Money:
        """From a major-unit amount such as "12.50"; refuses more decimals than the currency has."""
        value = Decimal(str(amount).strip())
        scaled = value.scaleb(precision(currency))
        if scaled != scaled.to_integral_value():
            raise ValueError("too many decimal places for the currency")
        return cls(int(scaled), currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} and {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.minor <= other.minor

    def multiply(self, factor: Decimal | int, rounding: str = "half_up") -> Money:
        """Scale by a Decimal (a percentage, a multiplier) and round once, here."""
        if isinstance(factor, float):
            raise TypeError("use Decimal, not float")
        result = (Decimal(self.minor) * Decimal(factor)).quantize(Decimal(1), ROUNDING[rounding])
        return Money(int(result), self.currency)

    def allocate(self, weights: list[int]) -> list[Money]:
        """Split in proportion to `weights` without losing a minor unit: each share is
        within one unit of its exact part, the units left over going to the largest
        remainders (ties: the first share). A weight of 0 gets nothing."""
        total = sum(weights)
        if not weights or any(w < 0 for w in weights) or total <= 0:
            raise ValueError("weights must be ≥ 0 and add up to more than zero")
        if self.minor < 0:
            return [-share for share in (-self).allocate(weights)]
        shares = [self.minor * w // total for w in weights]
        by_remainder = sorted(range(len(weights)),
                              key=lambda i: (-(self.minor * weights[i] % total), i))
        for i in by_remainder[:self.minor - sum(shares)]:
            shares[i] += 1
        return [Money(s, self.currency) for s in shares]

    def split(self, parts: int) -> list[Money]:
        """`parts` equal shares, the first ones a minor unit larger where it does not divide."""
        if type(parts) is not int or parts < 1:
            raise ValueError("split into one part or more")
        return self.allocate([1] * parts)

    @property
    def amount(self) -> Decimal:
        return Decimal(self.minor).scaleb(-precision(self.currency))

    def format(self, locale: str = "en") -> str:
        """Babel's format in the viewer's locale, with the narrow symbol: "¥12.00", not
        "CN¥12.00" (Babel has no narrow symbols; they drop the territory letters)."""
        text = format_currency(self.amount, self.currency, locale=locale)
        symbol = get_currency_symbol(self.currency, locale)
        narrow = symbol.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        if narrow and narrow != symbol:
            text = text.replace(symbol, narrow, 1)
        return text

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
