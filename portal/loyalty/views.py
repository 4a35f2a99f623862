"""The member's points and experience."""
from __future__ import annotations

from flask import Blueprint, request

from portal.db import db
from portal.loyalty import services as loyalty
from portal.web.auth import current_member, member_required
from portal.web.render import render

bp = Blueprint("loyalty", __name__)
PAGE = 20


@bp.get("/points")
@member_required
def points():
    member = current_member._get_current_object()
    entries = loyalty.history(db.session, member.id, before_id=request.args.get(
        "before", type=int), limit=PAGE)
    standing = loyalty.standing(db.session, member, member.cards[0]) if member.cards \
        else None
    return render("loyalty/points.html", standing=standing, entries=entries, page_size=PAGE)
