"""When a top-up plan may be used: its validity period and its effective dates and times.

All in the merchant's time zone (`portal.clock.local`). The `schedule` JSON of a plan:

| key         | values                                                                  |
|-------------|-------------------------------------------------------------------------|
| `frequency` | `daily`, `weekly` (`days`: weekdays 0 = Monday … 6 = Sunday) or         |
|             | `monthly` (`days`: 1 … 31 and `"last"`, the month's last day)           |
| `times`     | `all_day`; `window`: `["10:00", "22:00"]` every chosen day; or          |
|             | `per_date`: `{"5": ["18:00", "22:00"], "last": ["00:00", "12:00"]}`     |

A window is `["HH:MM", "HH:MM"]` (or a list of such windows); it starts at its first time
and ends just before its second; an end of `"00:00"` (or `"24:00"`) is midnight at the
end of the day. A window
does not cross midnight: 22:00-02:00 is refused as reversed; use two days instead.

A monthly day 31 means the 31st only: months with 30 days or fewer skip it (the same for
29 and 30 in February). "last" is every month's last day (28, 29, 30 or 31); a day that
is both (the 31st of March with 31 and "last" chosen) takes the windows of both.

An empty schedule (`{}`) is "every day, all day". The validity period is `starts_at`
(included) to `ends_at` (excluded); either may be None (no bound).
"""
from __future__ import annotations

import calendar
import re
from datetime import date, datetime

from flask_babel import gettext as _

from portal import clock

FREQUENCIES = ("daily", "weekly", "monthly")
TIMES = ("all_day", "window", "per_date")
WEEKDAYS = tuple(range(7))
MONTHDAYS = (*range(1, 32), "last")
HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _minutes(text: str) -> int:
    """"HH:MM" → minutes since midnight; "24:00" → 1440 (the end of the day)."""
    if text == "24:00":
        return 24 * 60
    m = HHMM.match(text)
    if m is None:
        raise ValueError(text)
    return int(m.group(1)) * 60 + int(m.group(2))


def _end(text: str) -> int:
    """An end time: "00:00" (what a time input gives for midnight) and "24:00" are the end
    of the day."""
    minutes = _minutes(text)
    return 24 * 60 if minutes == 0 else minutes


def _windows(value) -> list[list[str]]:
    """One window or a list of them, as a list of windows."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, str) for v in value):
        return [list(value)]
    return [list(w) for w in value or []]


def day_key(day) -> str:
    return str(day)


def _days_of(schedule: dict) -> list:
    days = []
    for d in schedule.get("days") or []:
        if d == "last":
            days.append("last")
        elif isinstance(d, str) and d.isdecimal():
            days.append(int(d))
        else:
            days.append(d)
    return days


def _matching_days(schedule: dict, local: date) -> list | None:
    """The chosen days `local` falls on (None: every day, for a daily plan)."""
    frequency = schedule.get("frequency", "daily")
    if frequency == "daily":
        return None
    days = _days_of(schedule)
    if frequency == "weekly":
        return [d for d in days if d == local.weekday()]
    last = calendar.monthrange(local.year, local.month)[1]
    return [d for d in days if d == local.day or (d == "last" and local.day == last)]


def _in(windows: list[list[str]], minute: int) -> bool:
    return any(_minutes(a) <= minute < _end(b) for a, b in windows)


def is_scheduled(schedule: dict | None, at: datetime) -> bool:
    """Whether the effective dates and times include the moment `at` (aware)."""
    schedule = schedule or {}
    local = clock.local(at)
    days = _matching_days(schedule, local)
    if days is not None and not days:
        return False
    minute = local.hour * 60 + local.minute
    times = schedule.get("times", "all_day")
    if times == "window":
        return _in(_windows(schedule.get("window")), minute)
    if times == "per_date":
        per_date = schedule.get("per_date") or {}
        if days is None:        # daily has no dates to set times for: all day
            return True
        return any(_in(_windows(per_date.get(day_key(d))), minute) for d in days)
    return True


def windows_on(schedule: dict | None, day: date) -> list[tuple[str, str]]:
    """The time windows a schedule opens on the local date `day` (empty: not on that day),
    earliest first; an all-day day is ("00:00", "24:00")."""
    schedule = schedule or {}
    days = _matching_days(schedule, day)
    if days is not None and not days:
        return []
    times = schedule.get("times", "all_day")
    if times == "window":
        windows = _windows(schedule.get("window"))
    elif times == "per_date" and days is not None:
        per_date = schedule.get("per_date") or {}
        windows = [w for d in days for w in _windows(per_date.get(day_key(d)))]
    else:
        windows = [["00:00", "24:00"]]
    return sorted((a, "24:00" if _end(b) == 24 * 60 else b) for a, b in windows)


def in_period(plan_like, at: datetime) -> bool:
    starts_at, ends_at = getattr(plan_like, "starts_at", None), getattr(plan_like, "ends_at",
                                                                        None)
    return (starts_at is None or starts_at <= at) and (ends_at is None or at < ends_at)


def is_open(plan_like, at: datetime | None = None) -> bool:
    """Within the validity period (end excluded) and the effective dates and times."""
    at = at or clock.now()
    return in_period(plan_like, at) and is_scheduled(getattr(plan_like, "schedule", None), at)


def _window_error(windows) -> str | None:
    try:
        spans = sorted((_minutes(a), _end(b)) for a, b in _windows(windows))
    except (ValueError, TypeError):
        return _("Enter times as HH:MM, such as 09:30.")
    if not spans:
        return _("Give a start and an end time.")
    for a, b in spans:
        if a >= 24 * 60:
            return _("Enter times as HH:MM, such as 09:30.")
        if b <= a:
            return _("The end time must be after the start time (a window cannot cross "
                     "midnight).")
    for (_a1, b1), (a2, _b2) in zip(spans, spans[1:], strict=False):
        if a2 < b1:
            return _("These times overlap.")
    return None


def validate_schedule(data: dict | None) -> dict[str, str]:
    """What is wrong with a schedule, by key: "frequency", "days", "times", "window",
    "per_date" and "per_date-<day>". Empty when it can be saved."""
    errors: dict[str, str] = {}
    data = data or {}
    if not isinstance(data, dict):
        return {"frequency": _("Choose how often the plan is on.")}
    frequency = data.get("frequency", "daily")
    if frequency not in FREQUENCIES:
        errors["frequency"] = _("Choose daily, weekly or monthly.")
        return errors
    days = _days_of(data)
    if frequency == "weekly":
        if not days:
            errors["days"] = _("Choose at least one day of the week.")
        elif any(d not in WEEKDAYS for d in days):
            errors["days"] = _("Days of the week are Monday to Sunday.")
    elif frequency == "monthly":
        if not days:
            errors["days"] = _("Choose at least one day of the month.")
        elif any(d not in MONTHDAYS for d in days):
            errors["days"] = _("Days of the month are 1 to 31, or the last day.")
    times = data.get("times", "all_day")
    if times not in TIMES:
        errors["times"] = _("Choose all day, one time window or times per date.")
    elif times == "window":
        if (message := _window_error(data.get("window"))) is not None:
            errors["window"] = message
    elif times == "per_date":
        if frequency == "daily":
            errors["times"] = _("Times per date need weekly or monthly dates.")
        elif "days" not in errors:
            per_date = data.get("per_date") or {}
            if not isinstance(per_date, dict):
                errors["per_date"] = _("Give times for each chosen day.")
                return errors
            chosen = {day_key(d) for d in days}
            if set(per_date) - chosen:
                errors["per_date"] = _("Times are given for a day that is not chosen.")
            for d in days:
                key = day_key(d)
                if key not in per_date:
                    errors.setdefault(f"per_date-{key}", _("Give times for this day."))
                elif (message := _window_error(per_date[key])) is not None:
                    errors[f"per_date-{key}"] = message
    return errors


def clean_schedule(data: dict | None) -> dict:
    """A valid schedule in its stored form: days sorted, without what does not apply."""
    data = data or {}
    frequency = data.get("frequency", "daily")
    out: dict = {"frequency": frequency, "times": data.get("times", "all_day")}
    if frequency != "daily":
        days = _days_of(data)
        numbers = sorted({d for d in days if d != "last"})
        out["days"] = numbers + (["last"] if "last" in days else [])
    if out["times"] == "window":
        windows = _windows(data.get("window"))
        out["window"] = windows[0] if len(windows) == 1 else sorted(windows)
    elif out["times"] == "per_date":
        out["per_date"] = {day_key(d): data["per_date"][day_key(d)] for d in out["days"]}
    return out


def weekday_names() -> dict[int, str]:
    from babel.dates import get_day_names
    from flask_babel import get_locale

    names = get_day_names("wide", locale=get_locale())
    return {i: names[i] for i in WEEKDAYS}

