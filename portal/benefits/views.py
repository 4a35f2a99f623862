"""The member's "My benefits": what their card and tier give today, member days, the
birthday window and what the next tier adds."""
from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_decimal, format_percent
from flask import Blueprint, abort
from flask_babel import get_locale

from portal import clock
from portal.benefits import services
from portal.db import db
from portal.web.auth import current_member, member_required
from portal.web.render import render

bp = Blueprint("benefits", __name__)


def percent_off(bp: int | None) -> str:
    """2000 basis points → "20%"."""
    return format_percent(Decimal(bp or 0) / 10_000, "#,##0.##%", locale=str(get_locale()))


def times(bp: int | None) -> str:
    """20000 basis points → "2"; 15000 → "1.5"."""
    return format_decimal(Decimal(bp or 0) / 10_000, "#,##0.##", locale=str(get_locale()))


@bp.app_context_processor
def _formats():
    return {"percent_off": percent_off, "times": times}


@bp.get("/benefits")
@member_required
def mine():
    return render("benefits/mine.html",
                  mine=services.my_benefits(db.session, current_member.id, clock.now()))


@bp.get("/benefits/<int:benefit_id>")
@member_required
def detail(benefit_id: int):
    held = services.held_benefit(db.session, current_member.id, benefit_id, clock.now())
    if held is None:
        abort(404)
    return render("benefits/detail.html", held=held)
