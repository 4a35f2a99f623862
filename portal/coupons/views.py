"""The member's coupon wallet, one coupon at the till, and claim links."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, session, url_for
from flask_babel import gettext as _

from portal.coupons import services as coupons
from portal.coupons.errors import CouponError, CouponErrorCode
from portal.db import db
from portal.web.auth import current_member, member_required
from portal.web.forms import EmptyForm
from portal.web.render import render

bp = Blueprint("coupons", __name__)


@bp.get("/wallet")
@member_required
def wallet():
    tab = request.args.get("tab", "available")
    if tab not in coupons.WALLET_TABS:
        abort(404)
    items, counts = coupons.wallet(db.session, current_member.id, tab)
    return render("coupons/wallet.html", block="coupons", tab=tab, items=items,
                  counts=counts, days_left=coupons.days_left)


@bp.get("/wallet/<int:coupon_id>")
@member_required
def coupon(coupon_id: int):
    found = coupons.member_coupon(db.session, current_member.id, coupon_id)
    if found is None:
        abort(404)
    return render("coupons/coupon.html", coupon=found, state=found.state(),
                  days_left=coupons.days_left(found))


@bp.route("/c/<token>", methods=["GET", "POST"])
def claim(token: str):
    link = coupons.claim_link(db.session, token)
    if link is None:
        abort(404)
    if not link.is_active or not link.template.is_active:
        session.pop("claim_after", None)
        return render("coupons/claim.html", block="result", link=link, status=410,
                      error=CouponError(CouponErrorCode.INACTIVE,
                                        _("This offer is not available.")))
    if not current_member:
        # Not a member yet (spec 7.2): sign up first, then straight back here.
        session["claim_after"] = token
        if link.registration_page_id and link.registration_page is not None \
                and link.registration_page.is_published:
            return redirect(url_for("members.register", slug=link.registration_page.slug), 303)
        return redirect(url_for("members.sign_in"), 303)
    if request.method == "POST":
        if not EmptyForm().validate_on_submit():
            abort(400)
        try:
            issued = coupons.claim(db.session, token, current_member.id)
        except CouponError as e:
            session.pop("claim_after", None)
            return render("coupons/claim.html", block="result", link=link, error=e,
                          status=409)
        session.pop("claim_after", None)
        flash(_("The coupon is in your wallet."), "success")
        return redirect(url_for("coupons.coupon", coupon_id=issued[0].id), 303)
    return render("coupons/claim.html", block="result", link=link, error=None)
