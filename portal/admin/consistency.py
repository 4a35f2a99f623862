"""The consistency check's runs and what they found: the owners' to read (they get the
e-mail too). Running it again changes nothing but adds a run."""
from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from portal.admin.views import bp
from portal.consistency import services as consistency
from portal.db import db
from portal.staff.models import Role
from portal.web.auth import current_staff, staff_required
from portal.web.forms import EmptyForm
from portal.web.render import render


@bp.get("/consistency")
@staff_required(Role.OWNER)
def consistency_runs():
    runs = consistency.runs(db.session, before_id=request.args.get("before", type=int))
    return render("admin/consistency/list.html", block="results", runs=runs,
                  form=EmptyForm())


@bp.get("/consistency/<int:run_id>")
@staff_required(Role.OWNER)
def consistency_run(run_id: int):
    run = consistency.get_run(db.session, run_id)
    if run is None:
        abort(404)
    return render("admin/consistency/run.html", run=run, label=consistency.label)


@bp.post("/consistency")
@staff_required(Role.OWNER)
def consistency_check():
    if not EmptyForm().validate_on_submit():
        abort(400)
    result = consistency.run_check(db.session, trigger="staff",
                                   operator_id=current_staff().id)
    if result.ok:
        flash(_("Everything agrees: no mismatches."), "success")
    else:
        flash(ngettext("%(num)d mismatch found: the owners have been mailed.",
                       "%(num)d mismatches found: the owners have been mailed.",
                       result.mismatch_count), "error")
    return redirect(url_for("admin.consistency_run", run_id=result.run_id), 303)
