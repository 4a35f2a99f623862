"""Loyalty in the merchant area: earning rules per card plan, balance adjustments."""
from __future__ import annotations

import secrets
from decimal import InvalidOperation

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _

from portal.admin.forms import (
    AdjustForm,
    EarningRuleForm,
    InteractionEventForm,
    PointsAlarmForm,
    TierLevelForm,
    TierSettingsForm,
)
from portal.admin.views import EVERYONE, MANAGERS, bp
from portal.coupons.services import parse_product_ids
from portal.db import db
from portal.loyalty import services as loyalty
from portal.loyalty.errors import LoyaltyError
from portal.members.models import CardPlan
from portal.money import Money
from portal.web.auth import current_staff, staff_required
from portal.web.forms import EmptyForm, apply_error, shown_status
from portal.web.render import render


@bp.get("/loyalty")
@staff_required(*MANAGERS)
def loyalty_rules():
    return render("admin/loyalty/rules.html", rows=loyalty.earning_rules(db.session),
                  timeline_on=loyalty.experience_on_timeline(db.session),
                  action_form=EmptyForm())


@bp.post("/loyalty/timeline")
@staff_required(*MANAGERS)
def loyalty_timeline():
    if not EmptyForm().validate_on_submit():
        abort(400)
    loyalty.set_experience_on_timeline(db.session, request.form.get("on") == "y",
                                       operator_id=current_staff().id)
    flash(_("Saved."), "success")
    return redirect(url_for("admin.loyalty_rules"), 303)


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
            data[name] = int(raw) if raw.isdecimal() else None
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
            if (expiry or "").isdecimal() else -1
        try:
            data["filter_product_ids"] = parse_product_ids(form.filter_product_ids.data)
        except Exception as e:  # noqa: BLE001 - a CouponError from the shared parser
            errors["filter_product_ids"] = next(iter(e.details["errors"].values()))
        try:
            if errors:
                # Report what could not be read together with everything else wrong.
                problems = {k: v for k, v in loyalty.earning_rule_errors(data).items()
                            if k not in ("points_per_minor", "experience_per_minor")}
                raise LoyaltyError("invalid", "", errors={**problems, **errors})
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
    delta = int(raw) if raw.lstrip("-").isdecimal() else 0
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


# --- tiers ----------------------------------------------------------------------------------

def _number(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    return int(raw) if raw.isdecimal() else None


def _tiers_page(plan, settings_form=None, level_form=None, status=200):

    settings = loyalty.tiers.settings_for(db.session, plan.id)
    db.session.commit()
    form = settings_form or TierSettingsForm(data={
        "enabled": settings.enabled, "recalc_day": settings.recalc_day or "",
        "on_change": settings.on_change, "validity": settings.validity,
        "validity_months": settings.validity_months or "",
        "after_expiry": settings.after_expiry})
    return render("admin/loyalty/tiers.html", plan=plan, settings=settings, form=form,
                  level_form=level_form or TierLevelForm(), levels=plan.tiers,
                  action_form=EmptyForm(), status=status)


def _plan_or_404(plan_id: int) -> CardPlan:
    plan = db.session.get(CardPlan, plan_id)
    if plan is None:
        abort(404)
    return plan


@bp.route("/loyalty/<int:plan_id>/tiers", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def tier_settings(plan_id: int):

    plan = _plan_or_404(plan_id)
    form = TierSettingsForm()
    if form.validate_on_submit():
        raw_day = (form.recalc_day.data or "").strip()
        data = {"enabled": form.enabled.data,
                "recalc_day": _number(raw_day) if raw_day.isdecimal() or not raw_day else -1,
                "on_change": form.on_change.data, "validity": form.validity.data,
                "validity_months": _number(form.validity_months.data),
                "after_expiry": form.after_expiry.data}
        try:
            loyalty.tiers.save_settings(db.session, plan.id, data,
                                        operator_id=current_staff().id)
        except LoyaltyError as e:
            apply_error(form, e)
            return _tiers_page(plan, settings_form=form, status=422)
        flash(_("Saved. Press “Save and release” to apply the rules to every member."),
              "success")
        return redirect(url_for("admin.tier_settings", plan_id=plan.id), 303)
    return _tiers_page(plan, status=shown_status())


@bp.post("/loyalty/<int:plan_id>/levels")
@staff_required(*MANAGERS)
def tier_level_add(plan_id: int):

    plan = _plan_or_404(plan_id)
    form = TierLevelForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        loyalty.tiers.save_level(db.session, plan.id, name=form.name.data,
                         threshold=_number(form.threshold.data), rule=form.rule.data,
                         window_months=_number(form.window_months.data),
                         operator_id=current_staff().id)
    except LoyaltyError as e:
        apply_error(form, e)
        return _tiers_page(plan, level_form=form, status=422)
    return redirect(url_for("admin.tier_settings", plan_id=plan.id), 303)


@bp.post("/loyalty/levels/<int:tier_id>/remove")
@staff_required(*MANAGERS)
def tier_level_remove(tier_id: int):
    from portal.members.models import Tier

    tier = db.session.get(Tier, tier_id)
    if tier is None or not EmptyForm().validate_on_submit():
        abort(404)
    plan_id = tier.plan_id
    try:
        loyalty.tiers.remove_level(db.session, tier_id, operator_id=current_staff().id)
    except LoyaltyError as e:
        flash(str(e), "error")
    return redirect(url_for("admin.tier_settings", plan_id=plan_id), 303)


@bp.post("/loyalty/<int:plan_id>/release")
@staff_required(*MANAGERS)
def tier_release(plan_id: int):

    plan = _plan_or_404(plan_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        loyalty.tiers.release(db.session, plan.id, operator_id=current_staff().id)
    except LoyaltyError as e:
        flash(next(iter(e.details.get("errors", {}).values()), str(e)), "error")
    else:
        flash(_("Released: every member's tier is being recalculated."), "success")
    return redirect(url_for("admin.tier_settings", plan_id=plan.id), 303)


# --- abnormal points ---------------------------------------------------------------------------

@bp.route("/loyalty/alarm", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def points_alarm():

    current = loyalty.alarm.settings(db.session)
    db.session.commit()
    form = PointsAlarmForm(data=None if request.method == "POST" else {
        "daily_threshold": current.daily_threshold or "",
        "block_earning": current.block_earning, "block_redeeming": current.block_redeeming,
        "emails": "\n".join(current.emails or [])})
    if form.validate_on_submit():
        raw = (form.daily_threshold.data or "").strip()
        try:
            if raw and not raw.isdecimal():
                raise LoyaltyError("invalid", "", errors={
                    "daily_threshold": _("A threshold above zero, or empty to switch it off.")})
            loyalty.alarm.save(db.session, daily_threshold=int(raw) if raw else None,
                       block_earning=form.block_earning.data,
                       block_redeeming=form.block_redeeming.data,
                       emails=[e.strip() for e in (form.emails.data or "").splitlines()
                               if e.strip()],
                       operator_id=current_staff().id)
        except LoyaltyError as e:
            apply_error(form, e)
            return render("admin/loyalty/alarm.html", form=form, status=422)
        flash(_("The alarm settings are saved."), "success")
        return redirect(url_for("admin.points_alarm"), 303)
    return render("admin/loyalty/alarm.html", form=form, status=shown_status())


@bp.post("/members/<int:member_id>/normal")
@staff_required(*MANAGERS)
def member_set_normal(member_id: int):

    if not EmptyForm().validate_on_submit():
        abort(400)
    loyalty.alarm.set_normal(db.session, member_id, operator_id=current_staff().id)
    flash(_("The member is marked normal again."), "success")
    return redirect(url_for("admin.member_detail", member_id=member_id), 303)


# --- interaction events ----------------------------------------------------------------------

@bp.route("/loyalty/events", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def interaction_events():

    form = InteractionEventForm()
    if form.validate_on_submit():
        try:
            loyalty.events.save_event(db.session, key=form.key.data, name=form.name.data,
                              points=_number(form.points.data),
                              experience=_number(form.experience.data),
                              daily_cap=_number(form.daily_cap.data),
                              monthly_cap=_number(form.monthly_cap.data),
                              total_cap=_number(form.total_cap.data),
                              operator_id=current_staff().id)
        except LoyaltyError as e:
            apply_error(form, e)
            return render("admin/loyalty/events.html", form=form,
                          events=loyalty.events.events(db.session), status=422)
        flash(_("The event is saved."), "success")
        return redirect(url_for("admin.interaction_events"), 303)
    return render("admin/loyalty/events.html", form=form,
                  events=loyalty.events.events(db.session),
                  status=shown_status())


@bp.post("/cards/<int:card_id>/tier")
@staff_required(*MANAGERS)
def card_tier(card_id: int):
    from portal.members.models import MemberCard

    card = db.session.get(MemberCard, card_id)
    if card is None or not EmptyForm().validate_on_submit():
        abort(404)
    member_id = card.member_id
    try:
        loyalty.tiers.record_tier(db.session, card_id,
                                  request.form.get("tier_id", type=int) or 0,
                          operator_id=current_staff().id)
    except LoyaltyError as e:
        flash(str(e), "error")
    else:
        flash(_("The tier is recorded."), "success")
    return redirect(url_for("admin.member_detail", member_id=member_id), 303)
