"""The admin home: the merchant's figures for a chosen period, drawn as server-side SVG.

Clerks work at one store's till: the merchant-wide figures are not theirs to read, so
they get the member shortcuts only.
"""
from __future__ import annotations

from datetime import date

from flask import current_app, request
from flask_babel import gettext as _

from portal import clock, reports
from portal.admin.views import bp
from portal.consistency import services as consistency
from portal.db import db
from portal.members import services as members
from portal.staff.models import Role
from portal.web import charts
from portal.web.auth import current_staff, staff_required
from portal.web.render import render

SOURCE_LABELS = {None: lambda: _("Direct"), "staff": lambda: _("Added by staff"),
                 "pos": lambda: _("At the till"), reports.OTHER_SOURCE: lambda: _("Other")}


def _parse_day(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


def read_period(args) -> tuple[reports.Period, dict[str, str]]:
    """`?days=7|30|90`, or `?from=…&to=…` (local dates, both included); 30 days by
    default. Bad dates give field errors and the default period."""
    errors: dict[str, str] = {}
    raw_from, raw_to = args.get("from", "").strip()[:10], args.get("to", "").strip()[:10]
    if raw_from or raw_to:
        first, last = _parse_day(raw_from), _parse_day(raw_to)
        if first is None:
            errors["from"] = _("Enter a date.")
        if last is None:
            errors["to"] = _("Enter a date.")
        if first and last:
            if last < first:
                errors["to"] = _("The end comes before the start.")
            elif (last - first).days >= reports.MAX_DAYS:
                errors["to"] = _("Choose at most %(n)s days.", n=reports.MAX_DAYS)
            else:
                return reports.Period(first, last, None), errors
        return reports.last_days(30), errors
    days = args.get("days", type=int)
    return reports.last_days(days if days in reports.PRESETS else 30), errors


def _charts(board: reports.Dashboard) -> dict:
    days = board.days
    step = charts.day_label_step(len(days))
    palette = iter(charts.PALETTE)
    sources = [charts.Series(next(palette), (SOURCE_LABELS[s]() if s in SOURCE_LABELS else s),
                           values) for s, values in board.registrations.items()]
    out = {
        "registrations": charts.bar_chart(days, sources, stacked=True, label_every=step),
        "tiers": charts.bar_chart(
            [f"{t.plan} · {t.tier}" for t in board.tiers],
            [charts.Series("a", _("Members"), [t.members for t in board.tiers])]),
        "coupons": charts.bar_chart(days, [
            charts.Series("a", _("Coupons issued"), board.coupons_issued),
            charts.Series("b", _("Coupons used"), board.coupons_used)], label_every=step),
    }
    for name, found in (("topups", board.topups), ("giftcards", board.giftcards),
                        ("packages", board.packages)):
        out[name] = [charts.bar_chart(
            days, [charts.Series("a", _("Amount"), s.amounts, s.currency)], label_every=step,
            also=[charts.Series("b", _("How many"), s.counts)]) for s in found]
    return out


@bp.get("/")
@staff_required()
def dashboard():
    counts = members.dashboard_counts(db.session)
    if current_staff().role == Role.CLERK:
        return render("admin/dashboard.html", counts=counts, board=None)
    period, errors = read_period(request.args)
    board = reports.dashboard(db.session, period)
    # Owners get the consistency check's mail; the warning stays until a run is clean.
    check = consistency.latest(db.session) if current_staff().role == Role.OWNER else None
    return render("admin/dashboard.html", counts=counts, board=board, errors=errors,
                  check=check if check is not None and check.mismatch_count else None,
                  charts=_charts(board), presets=reports.PRESETS, today=clock.today(),
                  currency=current_app.config["DEFAULT_CURRENCY"],
                  args=request.args, status=422 if errors else 200)
