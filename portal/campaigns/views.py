"""The member's side of a profile completion gift: what is missing, fill it in, claim."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, url_for
from flask_babel import gettext as _

from portal.campaigns import services as campaigns
from portal.campaigns.errors import CampaignError
from portal.coupons.errors import CouponError
from portal.db import db
from portal.members import services as members
from portal.members.errors import MemberError
from portal.members.forms import profile_form
from portal.web.auth import current_member, member_required
from portal.web.forms import EmptyForm, apply_error
from portal.web.render import render

bp = Blueprint("campaigns", __name__)


def _page(activity, form=None, status=200, error=None):
    member = current_member._get_current_object()
    check = campaigns.eligibility(db.session, activity, member)
    fillable = {n: a for n, a in members.attribute_catalogue(db.session).items()
                if n in check.missing}
    return render("campaigns/profile_gift.html", activity=activity, check=check,
                  form=form or profile_form(fillable), claim_form=EmptyForm(),
                  titles=campaigns.gift_titles(db.session, activity), error=error,
                  participation=campaigns.participation_for(db.session, activity.id,
                                                            member.id),
                  status=status)


@bp.get("/activities/<code>")
@member_required
def profile_gift(code: str):
    activity = campaigns.activity_by_code(db.session, code)
    if activity is None:
        abort(404)
    return _page(activity)


@bp.post("/activities/<code>/profile")
@member_required
def complete_profile(code: str):
    activity = campaigns.activity_by_code(db.session, code)
    if activity is None:
        abort(404)
    check = campaigns.eligibility(db.session, activity, current_member._get_current_object())
    fillable = {n: a for n, a in members.attribute_catalogue(db.session).items()
                if n in check.missing}
    form = profile_form(fillable)
    if not form.validate_on_submit():
        abort(400)
    try:
        members.complete_fields(db.session, current_member.id,
                                {name: form[name].data for name in fillable})
    except MemberError as e:
        apply_error(form, e)
        return _page(activity, form=form, status=422)
    return redirect(url_for("campaigns.profile_gift", code=code), 303)


@bp.post("/activities/<code>/claim")
@member_required
def claim(code: str):
    activity = campaigns.activity_by_code(db.session, code)
    if activity is None or not EmptyForm().validate_on_submit():
        abort(404)
    try:
        campaigns.claim(db.session, activity.id, current_member.id)
    except (CampaignError, CouponError) as e:
        return _page(activity, status=409, error=e)
    flash(_("Your gift is yours: see below what arrives and when."), "success")
    return redirect(url_for("campaigns.profile_gift", code=code), 303)
