"""The member's side of student ID verification: the page, the request, the photo."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, send_file, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, DateField, StringField

from portal.db import db
from portal.students import services as students
from portal.students.errors import StudentError, StudentErrorCode
from portal.web.auth import current_member, member_required
from portal.web.forms import apply_error
from portal.web.render import render

bp = Blueprint("students", __name__)


class VerificationForm(FlaskForm):
    school = StringField(_l("School"), render_kw={"required": True, "maxlength": 120,
                                                  "autocomplete": "organization"})
    student_number = StringField(_l("Student number"),
                                 render_kw={"required": True, "maxlength": 40})
    graduation_on = DateField(_l("Expected graduation date"), render_kw={"required": True})
    photo = FileField(_l("Photo of your student card"),
                      render_kw={"required": True, "accept": "image/png,image/jpeg"})
    consent = BooleanField(_l("I agree that staff see this photo to check my student ID. "
                              "It is deleted after the check."))


def _page(form: VerificationForm | None = None, status: int = 200, error=None):
    member_id = current_member.id
    current = students.current_approval(db.session, member_id)
    return render("students/verify.html", form=form or VerificationForm(),
                  conf=students.settings(db.session),
                  latest=students.latest(db.session, member_id), current=current,
                  packages=students.student_packages(db.session) if current else [],
                  error=error, status=status)


@bp.get("/student")
@member_required
def verify():
    return _page()


@bp.post("/student")
@member_required
def submit():
    form = VerificationForm()
    if not form.validate_on_submit():
        # A date the browser could not send as one: the service says what is wrong with
        # every field at once, the date included.
        if "csrf_token" in form.errors:
            abort(400)
    try:
        students.submit(db.session, current_member.id, school=form.school.data or "",
                        student_number=form.student_number.data or "",
                        graduation_on=form.graduation_on.data,
                        consent=bool(form.consent.data), photo=form.photo.data)
    except StudentError as e:
        if e.code == StudentErrorCode.PENDING:
            return _page(form, status=422, error=str(e))
        form.graduation_on.errors = []  # the service's message replaces WTForms' own
        apply_error(form, e)
        return _page(form, status=422)
    flash(_("Thank you. We will check your student ID soon."), "success")
    return redirect(url_for("students.verify"), 303)


@bp.get("/student/photo/<int:verification_id>")
@member_required
def photo(verification_id: int):
    path = students.member_photo(db.session, current_member.id, verification_id)
    if path is None:
        abort(404)
    return private_image(path)


def private_image(path):
    """A card photo: never cached by a shared cache, never kept by the browser."""
    response = send_file(path, max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response
