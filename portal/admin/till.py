"""The member centre for the till (every role, clerks included): one search box for a card
number, a scanned card QR code or a mobile number, and "add member" on the spot with the
same form and service as Members → Add customer."""
from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_babel import gettext as _

from portal.admin.views import EVERYONE, add_customer_from, bp, customer_form
from portal.db import db
from portal.members import till as centre_service
from portal.members.errors import MemberError, MemberErrorCode
from portal.web.auth import staff_required
from portal.web.forms import apply_error, shown_status
from portal.web.render import render

QUERY_MAX = 64


@bp.get("/till")
@staff_required(*EVERYONE)
def till():
    query = request.args.get("q", "").strip()[:QUERY_MAX]
    found = centre_service.find(db.session, query) if query else None
    centre = centre_service.centre(db.session, found.member.id) \
        if found is not None and found.member is not None else None
    return render("admin/till/centre.html", block="result", query=query, found=found,
                  centre=centre)


@bp.route("/till/join", methods=["GET", "POST"])
@staff_required(*EVERYONE)
def till_join():
    form = customer_form()
    form.kind.data = "member"
    if request.method == "GET" and (mobile := request.args.get("mobile", "")[:QUERY_MAX]):
        form.mobile.data = mobile
    if form.validate_on_submit():
        try:
            member = add_customer_from(form)
        except MemberError as e:
            if e.code == MemberErrorCode.MOBILE_TAKEN:
                # Already on file: the cashier sees that member rather than a second one.
                flash(_("This number already belongs to %(name)s.",
                        name=_existing_name(form.mobile.data)), "info")
                return redirect(url_for("admin.till", q=form.mobile.data), 303)
            apply_error(form, e)
            return render("admin/till/join.html", form=form, status=422)
        flash(_("%(name)s is a member now.", name=member.display_name), "success")
        return redirect(url_for("admin.till", q=member.cards[0].number), 303)
    return render("admin/till/join.html", form=form, status=shown_status())


def _existing_name(raw_mobile: str) -> str:
    found = centre_service.find(db.session, raw_mobile)
    return found.member.display_name if found.member is not None else raw_mobile
