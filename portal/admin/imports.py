"""Customer and member imports in the merchant area (spec: member information 2.1.2–2.1.3):
the template, the upload with its policy, the run's progress and result, the history and
the failed rows."""
from __future__ import annotations

from flask import abort, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import RadioField
from wtforms.fields.choices import SelectChoice

from portal.admin.views import MANAGERS, bp
from portal.db import db
from portal.imports import customers, xlsx
from portal.web.auth import current_staff, staff_required
from portal.web.render import render

STATUS_LABELS = {"queued": _l("Waiting to start"), "running": _l("Importing"),
                 "done": _l("Done"), "failed": _l("Not imported")}


class CustomerImportForm(FlaskForm):
    file = FileField(_l("Filled-in template (.xlsx)"),
                     render_kw={"accept": ".xlsx," + xlsx.MIME, "required": True})
    policy = RadioField(_l("Numbers already on file"), default="skip", choices=[
        SelectChoice("skip", _l("Skip them: keep the customers on file as they are")),
        SelectChoice("update", _l("Update them with the values in the file"))])


def _page(form: CustomerImportForm, status: int = 200):
    return render("admin/imports/customers.html", form=form,
                  runs=customers.history(db.session), max_rows=customers.MAX_ROWS,
                  status_labels=STATUS_LABELS, status=status)


@bp.route("/members/import", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def customer_import():
    form = CustomerImportForm()
    if not form.validate_on_submit():
        return _page(form, status=422 if request.method == "POST" else 200)
    upload = form.file.data
    if not upload or not upload.filename:
        form.file.errors = [_("Choose the filled-in template to upload.")]
        return _page(form, status=422)
    try:
        run = customers.start(db.session, upload.stream, filename=upload.filename,
                              policy=form.policy.data, operator_id=current_staff().id)
    except customers.ImportRefused as e:
        db.session.rollback()
        form.file.errors = [str(e)]
        return _page(form, status=422)
    return redirect(url_for("admin.customer_import_run", run_id=run.id), 303)


@bp.get("/members/import/template.xlsx")
@staff_required(*MANAGERS)
def customer_import_template():
    return xlsx.response("customers-template.xlsx", customers.template_sheets(
        customers.custom_attributes(db.session)))


@bp.get("/members/import/<int:run_id>")
@staff_required(*MANAGERS)
def customer_import_run(run_id: int):
    run = customers.get(db.session, run_id)
    if run is None:
        abort(404)
    return render("admin/imports/run.html", block="progress", run=run,
                  status_labels=STATUS_LABELS)


@bp.get("/members/import/<int:run_id>/failed.xlsx")
@staff_required(*MANAGERS)
def customer_import_failed(run_id: int):
    run = customers.get(db.session, run_id)
    if run is None or not run.failed:
        abort(404)
    return xlsx.response(f"failed-rows-{run.id}.xlsx", customers.failed_sheet(db.session, run))
