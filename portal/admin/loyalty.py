"""Loyalty in the merchant area: earning rules per card plan, balance adjustments."""
from __future__ import annotations

import secrets
from decimal import InvalidOperation

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _

from portal.admin.forms import AdjustForm, EarningRuleForm
from portal.admin.views import EVERYONE, MANAGERS, bp
from portal.coupons.services import parse_product_ids
from portal.db import db
from portal.loyalty import services as loyalty
from portal.loyalty.errors import LoyaltyError
from portal.members.models import CardPlan
from portal.money import Money
from portal.web.auth import current_staff, staff_required
from portal.web.forms import apply_error, shown_status
from portal.web.render import render


@bp.get("/loyalty")
@staff_required(*MANAGERS)
def loyalty_rules():
    return render("admin/loyalty/rules.html", rows=loyalty.earning_rules(db.session))


def _split_names(text: str) -> list[str]:
    return list(dict.fromkeys(n.strip() for n in (text or "").splitlines() if n.strip()))


@bp.route("/loyalty/<int:plan_id>", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def loyalty_rule_edit(plan_id: int):
    plan = db.session.get(CardPlan, plan_id)
    if plan is None:
        abort(404)
    rule = dict(loyalty.earning_rules(db.session)).get(plan)
    form = EarningRuleForm()
    if request.method == "GET" and rule is not None:
        form.points_amount.data = str(rule.points_amount)
        form.points_per.data = str(Money(rule.points_per_minor, plan.currency).amount)
        form.experience_amount.data = str(rule.experience_amount)
        form.experience_per.data = str(Money(rule.experience_per_minor, plan.currency).amount)
        form.product_filter.data = rule.product_filter
        form.filter_product_ids.data = "\n".join(rule.filter_product_ids or [])
        form.filter_names.data = "\n".join(rule.filter_names or [])
        form.points_expiry.data = "never" if rule.points_expiry_years is None \
            else str(rule.points_expiry_years)
    if form.validate_on_submit():
        errors, data = {}, {}
        for name in ("points_amount", "experience_amount"):
            raw = (form[name].data or "").strip()
            data[name] = int(raw) if raw.isdigit() else None
        for name, field in (("points_per_minor", "points_per"),
                            ("experience_per_minor", "experience_per")):
            try:
                data[name] = Money.parse((form[field].data or "").strip(), plan.currency).minor
            except (ValueError, InvalidOperation):
                data[name] = None
                errors[field] = _("Enter an amount such as 10 or 0.50.")
        data["product_filter"] = form.product_filter.data
        data["filter_names"] = _split_names(form.filter_names.data)
        expiry = form.points_expiry.data
        data["points_expiry_years"] = None if expiry == "never" else int(expiry) \
            if (expiry or "").isdigit() else -1
        try:
            data["filter_product_ids"] = parse_product_ids(form.filter_product_ids.data)
        except Exception as e:  # noqa: BLE001 - a CouponError from the shared parser
            errors["filter_product_ids"] = next(iter(e.details["errors"].values()))
        try:
            if errors:
                raise LoyaltyError("invalid", "", errors=errors)
            loyalty.save_earning_rule(db.session, plan.id, data,
                                      operator_id=current_staff().id)
        except LoyaltyError as e:
            names = {"points_per_minor": "points_per", "experience_per_minor": "experience_per",
                     "points_expiry_years": "points_expiry"}
            e.details["errors"] = {names.get(k, k): v
                                   for k, v in e.details.get("errors", {}).items()}
            apply_error(form, e)
            return render("admin/loyalty/rule.html", plan=plan, form=form, status=422)
        flash(_("The earning rule is saved. It applies to orders from now on."), "success")
        return redirect(url_for("admin.loyalty_rules"), 303)
    return render("admin/loyalty/rule.html", plan=plan, form=form, status=shown_status())


def adjust_form() -> AdjustForm:
    form = AdjustForm()
    if not form.nonce.data:
        form.nonce.data = secrets.token_urlsafe(12)
    return form


@bp.post("/members/<int:member_id>/adjust")
@staff_required(*EVERYONE)
def member_adjust(member_id: int):
    form = adjust_form()
    if not form.validate_on_submit():
        abort(400)
    raw = (form.delta.data or "").strip().replace("+", "")
    delta = int(raw) if raw.lstrip("-").isdigit() else 0
    try:
        balance = loyalty.adjust(db.session, member_id=member_id, kind=form.kind.data,
                                 delta=delta, reason=form.reason.data,
                                 key=f"{member_id}:{form.nonce.data}",
                                 operator_id=current_staff().id)
    except LoyaltyError as e:
        flash(next(iter(e.details.get("errors", {}).values()), str(e)), "error")
    else:
        flash(_("Saved. The balance is now %(n)d.", n=balance), "success")
    return redirect(url_for("admin.member_detail", member_id=member_id), 303)
