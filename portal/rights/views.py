"""The member's side of data rights: the data page, the download, asking to close."""
from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, stream_with_context, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField

from portal import clock
from portal.db import db
from portal.extensions import limiter
from portal.rights import services as rights
from portal.rights.errors import RightsError, RightsErrorCode
from portal.rights.models import RequestKind, RequestStatus
from portal.web.auth import current_member, member_required
from portal.web.forms import EmptyForm, apply_error
from portal.web.render import render

bp = Blueprint("rights", __name__)

KIND_LABELS = {RequestKind.EXPORT: _l("Data download"), RequestKind.CLOSURE: _l("Account closure")}
STATUS_LABELS = {RequestStatus.REQUESTED: _l("Waiting for staff"), RequestStatus.DONE: _l("Done"),
                 RequestStatus.REFUSED: _l("Refused")}


@bp.app_template_filter("data_request_kind")
def kind_label(kind: str) -> str:
    return str(KIND_LABELS.get(kind, kind))


@bp.app_template_filter("data_request_status")
def status_label(status: str) -> str:
    return str(STATUS_LABELS.get(status, status))


class ClosureForm(FlaskForm):
    confirmation = StringField(_l("Last four digits of your mobile number"),
                               render_kw={"required": True, "inputmode": "numeric",
                                          "autocomplete": "off", "maxlength": 8})
    note = TextAreaField(_l("Anything you want us to know (optional)"),
                         render_kw={"rows": 3, "maxlength": rights.NOTE_MAX})


def _data_page(status: int = 200, error: str | None = None):
    member_id = current_member.id
    return render("rights/data.html", requests=rights.member_requests(db.session, member_id),
                  pending=rights.open_closure(db.session, member_id), form=EmptyForm(),
                  error=error, status=status)


@bp.get("/me/data")
@member_required
def data():
    return _data_page()


def _member_key() -> str:
    return f"member:{current_member.id if current_member else 'none'}"


@bp.post("/me/data/export")
@member_required
# Each download reads the member's whole history: a few an hour is plenty for a person.
@limiter.limit("10 per hour", key_func=_member_key)
def export():
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        pieces = rights.export(db.session, current_member.id)
    except RightsError:
        abort(404)
    name = f"my-data-{clock.today().isoformat()}.json"
    response = Response(stream_with_context(pieces), mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _close_page(form: ClosureForm, status: int = 200, error: str | None = None):
    member = current_member._get_current_object()
    return render("rights/close.html", form=form, error=error, status=status,
                  holdings=rights.holdings(db.session, member.id),
                  pending=rights.open_closure(db.session, member.id))


@bp.get("/me/close")
@member_required
def close():
    return _close_page(ClosureForm())


@bp.post("/me/close")
@member_required
def request_closure():
    form = ClosureForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        rights.request_closure(db.session, current_member.id,
                               confirmation=form.confirmation.data or "",
                               note=form.note.data or "")
    except RightsError as e:
        if e.code == RightsErrorCode.INVALID:
            apply_error(form, e)
            return _close_page(form, status=422)
        return _close_page(form, status=409, error=str(e))
    flash(_("We have your request. Staff will close your account and let you know."),
          "success")
    return redirect(url_for("rights.data"), 303)


@bp.post("/me/close/withdraw")
@member_required
def withdraw():
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        rights.withdraw_closure(db.session, current_member.id)
    except RightsError as e:
        return _data_page(status=409, error=str(e))
    flash(_("Your account stays open."), "success")
    return redirect(url_for("rights.data"), 303)
