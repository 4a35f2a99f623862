"""The one clock. Everything asks it for the time; tests move it.

`now()` is aware UTC. `today()` and `local()` use the merchant's timezone, which decides
"0 o'clock", birthdays, member days and "days since last purchase".
"""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

_frozen: datetime | None = None
_default_tz = "UTC"


def set_timezone(name: str) -> None:
    global _default_tz
    ZoneInfo(name)  # fail at start on a bad name
    _default_tz = name


def timezone() -> ZoneInfo:
    return ZoneInfo(_default_tz)


def now() -> datetime:
    return _frozen if _frozen is not None else datetime.now(UTC)


def local(moment: datetime | None = None) -> datetime:
    return (moment or now()).astimezone(timezone())


def today() -> date:
    return local().date()


def start_of_local_day(day: date) -> datetime:
    """The UTC instant at which `day` begins in the merchant's timezone."""
    return datetime(day.year, day.month, day.day, tzinfo=timezone()).astimezone(UTC)


def freeze(moment: datetime) -> None:
    """Stop the clock at `moment` (tests only)."""
    global _frozen
    if moment.tzinfo is None:
        raise ValueError("freeze() needs an aware datetime")
    _frozen = moment.astimezone(UTC)


def advance(delta: timedelta) -> datetime:
    """Move a frozen clock forward (tests only)."""
    global _frozen
    _frozen = now() + delta
    return _frozen


def unfreeze() -> None:
    global _frozen
    _frozen = None
