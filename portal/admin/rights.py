"""Data requests in the merchant area: the list, and closing or refusing a closure."""
from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import TextAreaField

from portal.admin.views import MANAGERS, bp
from portal.db import db
from portal.rights import services as rights
from portal.rights.errors import RightsError, RightsErrorCode
from portal.rights.models import RequestKind, RequestStatus
from portal.web.auth import current_staff, staff_required
from portal.web.forms import EmptyForm, apply_error
from portal.web.render import render


class RefuseForm(FlaskForm):
    reason = TextAreaField(_l("Reason the member will read"),
                           render_kw={"required": True, "maxlength": rights.NOTE_MAX,
                                      "rows": 3})


@bp.get("/data-requests")
@staff_required(*MANAGERS)
def data_requests():
    args = request.args
    kind = args.get("kind", "") if args.get("kind") in set(RequestKind) else ""
    # Open requests first: that is the work to do.
    status = args.get("status", RequestStatus.REQUESTED)
    status = status if status in set(RequestStatus) or status == "all" else ""
    q = args.get("q", "")[:80]
    rows = rights.requests_page(db.session, kind=kind, status=status, q=q,
                                before_id=args.get("before", type=int))
    return render("admin/rights/list.html", block="results", rows=rows, kind=kind,
                  state=status, q=q, more=len(rows) == rights.PAGE,
                  open_count=rights.open_count(db.session))


def _detail(request_id: int, *, refuse_form: RefuseForm | None = None,
            error: str | None = None, status: int = 200):
    req = rights.get(db.session, request_id)
    if req is None:
        abort(404)
    return render("admin/rights/detail.html", req=req, error=error, status=status,
                  holdings=None if req.member.is_closed
                  else rights.holdings(db.session, req.member_id),
                  refuse_form=refuse_form or RefuseForm(), close_form=EmptyForm())


@bp.get("/data-requests/<int:request_id>")
@staff_required(*MANAGERS)
def data_request(request_id: int):
    return _detail(request_id)


@bp.post("/data-requests/<int:request_id>/close")
@staff_required(*MANAGERS)
def data_request_close(request_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        rights.close_account(db.session, request_id, operator_id=current_staff().id)
    except RightsError as e:
        if e.code == RightsErrorCode.NOT_FOUND:
            abort(404)
        return _detail(request_id, error=str(e), status=409)
    flash(_("The account is closed and the personal details are erased."), "success")
    return redirect(url_for("admin.data_requests"), 303)


@bp.post("/data-requests/<int:request_id>/refuse")
@staff_required(*MANAGERS)
def data_request_refuse(request_id: int):
    form = RefuseForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        rights.refuse(db.session, request_id, form.reason.data or "",
                      operator_id=current_staff().id)
    except RightsError as e:
        if e.code == RightsErrorCode.NOT_FOUND:
            abort(404)
        if e.code == RightsErrorCode.INVALID:
            apply_error(form, e)
            return _detail(request_id, refuse_form=form, status=422)
        return _detail(request_id, error=str(e), status=409)
    flash(_("Refused. The member reads your reason on their data page."), "success")
    return redirect(url_for("admin.data_requests"), 303)
