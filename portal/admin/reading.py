"""Reading what staff type into admin forms: amounts, whole numbers, percentages, local
moments. What cannot be read is kept by field, for the page to show next to it."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

from flask_babel import gettext as _

from portal import clock
from portal.money import Money

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"


class FormReader:
    """Reads typed text into values; what cannot be read is kept by (service) field."""

    def __init__(self, currency: str):
        self.currency = currency
        self.errors: dict[str, str] = {}

    def money(self, raw: str | None, name: str) -> int | None:
        raw = (raw or "").strip().replace(",", "")
        if not raw:
            return None
        try:
            return Money.parse(raw, self.currency).minor
        except (ValueError, InvalidOperation):
            self.errors[name] = _("Enter an amount such as 12.50.")
            return None

    def whole(self, raw: str | None, name: str) -> int | None:
        raw = (raw or "").strip().replace(",", "")
        if not raw:
            return None
        if not raw.isdecimal():
            self.errors[name] = _("Enter a whole number.")
            return None
        return int(raw)

    def percent(self, raw: str | None, name: str) -> int | None:
        """"12.5" (%) → 1250 basis points."""
        raw = (raw or "").strip().rstrip("%").strip()
        if not raw:
            return None
        try:
            bp = Decimal(raw) * 100
            if not bp.is_finite() or bp != bp.to_integral_value() or bp < 0:
                raise InvalidOperation
            return int(bp)
        except InvalidOperation:
            self.errors[name] = _("Enter a percentage such as 15 or 12.5.")
            return None

    def moment(self, raw: str | None, name: str) -> datetime | None:
        raw = (raw or "").strip()
        if not raw:
            return None
        try:
            return datetime.strptime(raw, LOCAL_FORMAT).replace(tzinfo=clock.timezone())
        except ValueError:
            self.errors[name] = _("Enter a date and time.")
            return None
