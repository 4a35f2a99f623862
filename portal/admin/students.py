"""Student ID in the merchant area (spec 2.6): the dashboard, the review queue, settings."""
from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import RadioField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.widgets import CheckboxInput, ListWidget

from portal.admin.reading import FormReader
from portal.admin.views import MANAGERS, bp
from portal.coupons import services as coupons
from portal.db import db
from portal.members.models import Segment, Tag
from portal.students import services as students
from portal.students.errors import StudentError
from portal.students.models import GiftKind, GiftRule, VerificationStatus
from portal.students.views import private_image
from portal.web import charts
from portal.web.auth import current_staff, staff_required
from portal.web.forms import EmptyForm, apply_error
from portal.web.render import render


class RejectForm(FlaskForm):
    reason = TextAreaField(_l("Reason the member will read"),
                           render_kw={"required": True, "maxlength": 500, "rows": 3})


class SettingsForm(FlaskForm):
    validity_months = StringField(_l("Valid for (months after approval)"),
                                  render_kw={"inputmode": "numeric", "required": True})
    tag_name = StringField(_l("Student tag"), render_kw={"required": True, "maxlength": 40})
    page_title = StringField(_l("Page title"), render_kw={"maxlength": 120})
    page_intro = TextAreaField(_l("Introduction"), render_kw={"rows": 3, "maxlength": 2000})
    perks = TextAreaField(_l("Perks (one a line)"), render_kw={"rows": 4, "maxlength": 2000})
    package_ids = SelectMultipleField(_l("Student-only paid packages"), coerce=str,
                                      widget=ListWidget(prefix_label=False),
                                      option_widget=CheckboxInput())
    gift_kind = RadioField(_l("Verification gift"))
    gift_template_id = SelectField(_l("Coupon"))
    gift_package_id = SelectField(_l("Coupon package"))
    gift_rule = RadioField(_l("Give the gift"))
    reminder_days = StringField(_l("Remind before expiry (days)"),
                                render_kw={"inputmode": "numeric", "required": True})
    photo_retention_days = StringField(_l("Delete card photos after the decision (days)"),
                                       render_kw={"inputmode": "numeric", "required": True})


STATUS_LABELS = {
    VerificationStatus.PENDING: _l("Waiting for review"),
    VerificationStatus.APPROVED: _l("Approved"),
    VerificationStatus.REJECTED: _l("Rejected"),
    VerificationStatus.EXPIRED: _l("Expired"),
    VerificationStatus.REPLACED: _l("Replaced by a newer approval"),
}


@bp.app_template_filter("student_status")
def student_status(status: str) -> str:
    return str(STATUS_LABELS.get(status, status))


# --- dashboard ------------------------------------------------------------------------------

def _chart(days: list[students.Day]) -> charts.Chart:
    """New (left) and expired (right) student members per day, ticks weekly."""
    on = [d.on for d in days]
    return charts.bar_chart(on, [
        charts.Series("new", _("New student members"), [d.new for d in days]),
        charts.Series("expired", _("Expired"), [d.expired for d in days])], label_every=7)


@bp.get("/students")
@staff_required(*MANAGERS)
def students_dashboard():
    board = students.dashboard(db.session)
    return render("admin/students/dashboard.html", board=board, chart=_chart(board.days),
                  counts=students.status_counts(db.session))


# --- review -----------------------------------------------------------------------------------

@bp.get("/students/requests")
@staff_required(*MANAGERS)
def student_requests():
    state = request.args.get("status", VerificationStatus.PENDING)
    if state not in set(VerificationStatus) and state != "all":
        state = VerificationStatus.PENDING
    q = request.args.get("q", "")[:80]
    rows = students.review_queue(db.session, state, q=q,
                                 before_id=request.args.get("after", type=int))
    return render("admin/students/requests.html", block="results", rows=rows, state=state,
                  q=q, counts=students.status_counts(db.session),
                  labels=STATUS_LABELS, more=len(rows) == students.QUEUE_PAGE)


def _review_page(verification_id: int, reject_form: RejectForm | None = None,
                 error: str | None = None, status: int = 200):
    v = students.get(db.session, verification_id)
    if v is None:
        abort(404)
    return render("admin/students/review.html", v=v, reject_form=reject_form or RejectForm(),
                  approve_form=EmptyForm(), error=error,
                  has_photo=students.photo_path(v) is not None,
                  conf=students.settings(db.session), status=status)


@bp.get("/students/requests/<int:verification_id>")
@staff_required(*MANAGERS)
def student_review(verification_id: int):
    return _review_page(verification_id)


@bp.post("/students/requests/<int:verification_id>/approve")
@staff_required(*MANAGERS)
def student_approve(verification_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        v = students.approve(db.session, verification_id, operator_id=current_staff().id)
    except StudentError as e:
        return _review_page(verification_id, error=str(e), status=409)
    flash(_("Approved: %(name)s is a student until %(date)s.", name=v.member.display_name,
            date=v.valid_until_on.isoformat()), "success")
    return redirect(url_for("admin.student_requests"), 303)


@bp.post("/students/requests/<int:verification_id>/reject")
@staff_required(*MANAGERS)
def student_reject(verification_id: int):
    form = RejectForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        students.reject(db.session, verification_id, form.reason.data or "",
                        operator_id=current_staff().id)
    except StudentError as e:
        if e.details.get("errors"):
            apply_error(form, e)
            return _review_page(verification_id, reject_form=form, status=422)
        return _review_page(verification_id, error=str(e), status=409)
    flash(_("Rejected. The member reads your reason in their inbox."), "success")
    return redirect(url_for("admin.student_requests"), 303)


@bp.get("/students/requests/<int:verification_id>/photo")
@staff_required(*MANAGERS)
def student_photo(verification_id: int):
    path = students.photo_path(students.get(db.session, verification_id))
    if path is None:
        abort(404)
    return private_image(path)


# --- settings --------------------------------------------------------------------------------

def _choices(form: SettingsForm) -> None:
    form.gift_kind.choices = [(GiftKind.NONE, _("No gift")), (GiftKind.COUPON, _("A coupon")),
                              (GiftKind.PACKAGE, _("A coupon package"))]
    form.gift_rule.choices = [(GiftRule.FIRST, _("Only on the first verification")),
                              (GiftRule.EACH, _("On every verification, re-verifications too"))]
    form.gift_template_id.choices = [("", _("Choose a coupon"))] + [
        (str(t.id), t.internal_name) for t in coupons.active_templates(db.session)]
    form.gift_package_id.choices = [("", _("Choose a coupon package"))] + [
        (str(p.id), p.name) for p in coupons.active_packages(db.session)]
    form.package_ids.choices = [(str(p.id), p.name)
                                for p in students.package_choices(db.session)]


def _fill(form: SettingsForm) -> None:
    conf = students.settings(db.session)
    tag = conf.tag_id and db.session.get(Tag, conf.tag_id)
    form.validity_months.data = str(conf.validity_months)
    form.tag_name.data = tag.name if tag else _("Student")
    form.page_title.data, form.page_intro.data = conf.page_title, conf.page_intro
    form.perks.data = conf.perks
    form.package_ids.data = [str(i) for i in students.student_package_ids(db.session)]
    form.gift_kind.data, form.gift_rule.data = conf.gift_kind, conf.gift_rule
    form.gift_template_id.data = str(conf.gift_template_id or "")
    form.gift_package_id.data = str(conf.gift_package_id or "")
    form.reminder_days.data = str(conf.reminder_days)
    form.photo_retention_days.data = str(conf.photo_retention_days)


def _values(form: SettingsForm, read: FormReader) -> dict:
    def number(name):
        return read.whole(form[name].data, name)

    def chosen(name):
        raw = form[name].data or ""
        return int(raw) if raw.isdecimal() else None

    return {"validity_months": number("validity_months"), "tag_name": form.tag_name.data,
            "page_title": form.page_title.data, "page_intro": form.page_intro.data,
            "perks": form.perks.data, "package_ids": form.package_ids.data or [],
            "gift_kind": form.gift_kind.data, "gift_rule": form.gift_rule.data,
            "gift_template_id": chosen("gift_template_id"),
            "gift_package_id": chosen("gift_package_id"),
            "reminder_days": number("reminder_days"),
            "photo_retention_days": number("photo_retention_days")}


def _settings_page(form: SettingsForm, status: int = 200):
    conf = students.settings(db.session)
    group = db.session.get(Segment, conf.segment_id) if conf.segment_id else None
    return render("admin/students/settings.html", form=form, group=group, status=status)


@bp.route("/students/settings", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def student_settings():
    form = SettingsForm()
    _choices(form)
    if request.method == "GET":
        _fill(form)
        return _settings_page(form)
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:
            abort(400)
        for name in ("gift_kind", "gift_rule", "gift_template_id", "gift_package_id",
                     "package_ids"):
            form[name].errors = []  # the service says what is wrong with a choice
    read = FormReader("")
    values = _values(form, read)
    try:
        # A number that could not be read goes on as None: the service refuses it along
        # with everything else wrong, and the reader's message is the one shown.
        students.save_settings(db.session, values, operator_id=current_staff().id)
    except StudentError as e:
        errors = {**e.details.get("errors", {}), **read.errors}
        apply_error(form, StudentError(e.code, str(e), errors=errors))
        return _settings_page(form, status=422)
    flash(_("The student ID settings are saved."), "success")
    return redirect(url_for("admin.student_settings"), 303)
