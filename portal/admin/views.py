"""The merchant area: thin views over the member and staff services."""
from __future__ import annotations

import re
from dataclasses import fields as dc_fields

from flask import Blueprint, abort, current_app, flash, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import login_user, logout_user
from wtforms.fields.choices import SelectChoice

from portal.admin.forms import CustomerForm, SignInForm
from portal.db import db
from portal.extensions import limiter
from portal.members import services as members
from portal.members.errors import MemberError, MemberErrorCode
from portal.staff import services as staff_services
from portal.staff.errors import StaffError
from portal.staff.models import Role
from portal.web.auth import StaffPrincipal, current_staff, staff_required
from portal.web.forms import EmptyForm, apply_error, shown_status
from portal.web.render import render

bp = Blueprint("admin", __name__)

EVERYONE = (Role.OWNER, Role.MANAGER, Role.CLERK)
MANAGERS = (Role.OWNER, Role.MANAGER)


@bp.route("/sign-in", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def sign_in():
    form = SignInForm()
    if form.validate_on_submit():
        cfg = current_app.config
        try:
            user = staff_services.authenticate(
                db.session, form.email.data, form.password.data,
                max_failed=cfg["STAFF_MAX_FAILED_SIGNINS"], lockout=cfg["STAFF_LOCKOUT"])
        except StaffError as e:
            form.form_errors.append(str(e))
            return render("admin/sign_in.html", form=form, status=422)
        session.clear()
        login_user(StaffPrincipal(user))
        target = request.args.get("next", "")
        if not (target.startswith("/admin") and "//" not in target):
            target = url_for("admin.dashboard")
        return redirect(target, 303)
    return render("admin/sign_in.html", form=form, status=shown_status())


@bp.post("/sign-out")
@staff_required()
def sign_out():
    if not EmptyForm().validate_on_submit():
        abort(400)
    staff_services.sign_out(db.session, current_staff().id)
    logout_user()
    session.clear()
    flash(_("You are signed out."), "success")
    return redirect(url_for("admin.sign_in"), 303)


# --- members ---------------------------------------------------------------------------

def _filters_from_args() -> members.MemberFilters:
    args = request.args
    values = {}
    for f in dc_fields(members.MemberFilters):
        raw = args.get(f.name, "").strip()[:64]
        if f.name in ("page_id", "link_id", "plan_id", "store_id"):
            values[f.name] = int(raw) if raw.isdecimal() else None
        else:
            values[f.name] = raw
    return members.MemberFilters(**values)


@bp.get("/members")
@staff_required(*EVERYONE)
def member_list():
    filters = _filters_from_args()
    before = request.args.get("before", type=int)
    rows = members.search_members(db.session, filters, before_id=before, limit=25)
    return render(
        "admin/members/list.html", block="results", filters=filters, rows=rows,
        total=members.count_members(db.session, filters) if not before else None,
        pages=[p for p, _funnel in members.page_list(db.session)] if not request.htmx else [],
        tracking=members.tracking_values(db.session) if not request.htmx else {},
        tags=members.tag_names(db.session) if not request.htmx else [],
        attributes=members.custom_attributes(db.session) if not request.htmx else [],
        plans=members.plans(db.session) if not request.htmx else [],
        args={k: v for k, v in request.args.items() if k != "before" and v})


def customer_form() -> CustomerForm:
    """The add-customer form with the plans, and the stores the signed-in staff may use."""
    staff = current_staff()
    form = CustomerForm()
    form.plan_id.choices = [SelectChoice(0, _("Choose…"))] + [
        SelectChoice(p.id, p.name) for p in members.plans(db.session)]
    if staff.role == Role.CLERK:
        form.store_id.choices = [SelectChoice(staff.store.id, staff.store.name)]
    else:
        form.store_id.choices = [SelectChoice(0, _("No store"))] + [
            SelectChoice(s.id, s.name) for s in members.stores(db.session)]
    return form


def add_customer_from(form: CustomerForm):
    """Add the customer the form describes (clerks always for their own store)."""
    staff = current_staff()
    return members.add_customer(
        db.session, raw_mobile=form.mobile.data, as_member=form.kind.data == "member",
        plan_id=form.plan_id.data or None,
        answers={n: form[n].data for n in members.PROFILE_FIELDS},
        operator_id=staff.id,
        store_id=staff.store_id if staff.role == Role.CLERK else (form.store_id.data or None))


@bp.route("/members/new", methods=["GET", "POST"])
@staff_required(*EVERYONE)
def member_new():
    form = customer_form()
    if form.validate_on_submit():
        try:
            member = add_customer_from(form)
        except MemberError as e:
            apply_error(form, e)
            return render("admin/members/new.html", form=form, status=422)
        flash(_("%(name)s is added.", name=member.display_name), "success")
        return redirect(url_for("admin.member_detail", member_id=member.id), 303)
    return render("admin/members/new.html", form=form, status=shown_status())


@bp.get("/members/<int:member_id>")
@staff_required(*EVERYONE)
def member_detail(member_id: int):
    member = members.member_detail(db.session, member_id)
    if member is None:
        abort(404)
    staff = current_staff()
    history = staff_services.audit_page(db.session, object_type="members",
                                        object_id=str(member.id), limit=20) \
        if staff.role == Role.OWNER else []
    from portal.admin.coupons import quick_issue_form
    from portal.admin.loyalty import adjust_form
    from portal.coupons.services import member_coupons
    from portal.loyalty.services import experience_on_timeline, tiers
    from portal.loyalty.services import history as ledger_history

    return render("admin/members/detail.html", member=member, history=history,
                  custom=members.custom_values(db.session, member),
                  coupons=member_coupons(db.session, member.id),
                  issue_form=quick_issue_form() if member.is_member else None,
                  adjust_form=adjust_form() if member.is_member else None,
                  ledger_history=ledger_history(
                      db.session, member.id, limit=10,
                      with_experience=experience_on_timeline(db.session)),
                  manual_tier_plans=tiers.manual_tier_plans(db.session),
                  preview_form=EmptyForm(), show_id=staff.role == Role.OWNER)


@bp.post("/members/<int:member_id>/tags")
@staff_required(*EVERYONE)
def member_tags(member_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        # Chinese keyboards type "，": both commas separate tags.
        members.set_tags(db.session, member_id,
                         re.split(r"[,，]", request.form.get("tags", "")),
                         operator_id=current_staff().id)
    except MemberError as e:
        if e.code == MemberErrorCode.NOT_FOUND:
            abort(404)
        flash(str(e), "error")
    else:
        flash(_("Tags are saved."), "success")
    return redirect(url_for("admin.member_detail", member_id=member_id), 303)


@bp.post("/members/<int:member_id>/preview")
@staff_required(*EVERYONE)
def start_preview(member_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        member = members.start_preview(db.session, member_id, operator_id=current_staff().id)
    except MemberError:
        abort(404)
    session.pop("preview_profile", None)
    session.pop("preview_return", None)
    session["preview_member_id"] = member.id
    return redirect(url_for("members.card"), 303)


@bp.post("/preview/end")
@staff_required()
def end_preview():
    if not EmptyForm().validate_on_submit():
        abort(400)
    member_id = session.pop("preview_member_id", None)
    session.pop("preview_profile", None)
    back = session.pop("preview_return", None)
    if back:
        return redirect(back, 303)
    if member_id:
        return redirect(url_for("admin.member_detail", member_id=member_id), 303)
    return redirect(url_for("admin.dashboard"), 303)


# --- audit log -------------------------------------------------------------------------

@bp.get("/audit")
@staff_required(Role.OWNER)
def audit():
    action = request.args.get("action", "")[:64]
    before = request.args.get("before", type=int)
    entries = staff_services.audit_page(db.session, action=action or None, before_id=before)
    return render("admin/audit/list.html", block="results", entries=entries, action=action,
                  actions=staff_services.audit_actions(db.session) if not request.htmx
                  else [])


from portal.admin import (  # noqa: E402,F401 - register routes on bp
    activities,
    benefits,
    cards,
    consistency,
    coupons,
    dashboard,
    giftcard_imports,
    giftcards,
    imports,
    loyalty,
    messages,
    packages,
    pages,
    payments,
    previews,
    quotes,
    rights,
    segments,
    smart,
    students,
    till,
    topups,
)
