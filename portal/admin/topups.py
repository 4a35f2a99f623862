"""Top-up plans in the merchant area: the list, create and edit (fixed, range, custom),
activate / deactivate / archive, member top-up details and recharge codes."""
from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal

from flask import Response, abort, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from portal import clock
from portal.admin.forms import RechargeCodeForm, TopupPlanForm
from portal.admin.reading import LOCAL_FORMAT
from portal.admin.reading import FormReader as _Reader
from portal.admin.views import MANAGERS, bp
from portal.coupons.errors import CouponError
from portal.coupons.services import parse_product_ids
from portal.db import db
from portal.imports import xlsx
from portal.members import services as members
from portal.members.models import Segment, Tag
from portal.money import Money
from portal.wallet import plans
from portal.wallet import schedule as schedules
from portal.wallet.models import PlanKind, PlanStatus
from portal.wallet.plans import PlanError, PlanErrorCode
from portal.web.auth import current_staff, staff_required
from portal.web.forms import EmptyForm, apply_error, shown_status
from portal.web.render import render
from portal.web.uploads import UploadError, save_public_image

# The service speaks in stored names; the form in what people type.
FORM_NAMES = {"amount_minor": "amount", "bonus_minor": "bonus", "min_minor": "min_amount",
              "max_minor": "max_amount", "bonus_bp": "bonus_percent",
              "points_bp": "points_percent", "bonus_min_minor": "bonus_min",
              "bonus_max_minor": "bonus_max", "first_bonus_bp": "first_bonus_percent",
              "first_points_bp": "first_points_percent", "stock_total": "stock",
              "same_day_usable_bp": "same_day_percent", "schedule_window": "schedule_window_from",
              "schedule_frequency": "schedule_frequency", "schedule_times": "schedule_times",
              "schedule_per_date": "schedule_times", "cover_image": "cover"}


def kind_label(kind: str) -> str:
    return {PlanKind.FIXED: _("Fixed top-up"), PlanKind.RANGE: _("Range top-up"),
            PlanKind.CUSTOM: _("Custom top-up")}.get(kind, kind)


def status_label(status: str) -> str:
    return {"draft": _("Draft"), "active": _("Active"), "inactive": _("Inactive"),
            "archived": _("Archived")}.get(status, status)


@bp.app_context_processor
def _topup_labels():
    return {"topup_kind_label": kind_label, "topup_status_label": status_label}


@bp.get("/topups")
@staff_required(*MANAGERS)
def topup_list():
    kind = request.args.get("kind", "")
    status = request.args.get("status", "")
    kind = kind if kind in set(PlanKind) else ""
    status = status if status in set(PlanStatus) else ""
    return render("admin/topups/list.html", block="results",
                  rows=plans.plan_list(db.session, kind or None, status or None),
                  kind=kind, chosen_status=status, kinds=list(PlanKind),
                  statuses=list(PlanStatus))


# --- parsing the form -----------------------------------------------------------------------

def _local(value: datetime | None) -> str:
    return clock.local(value).strftime(LOCAL_FORMAT) if value else ""


def _offer(value: str) -> tuple[int | None, int | None]:
    kind, _sep, ident = (value or "").partition(":")
    if not ident.isdecimal():
        return None, None
    return (int(ident), None) if kind == "t" else (None, int(ident)) if kind == "p" \
        else (None, None)


def _days(form: TopupPlanForm) -> list:
    if form.schedule_frequency.data == "weekly":
        return [int(d) for d in form.schedule_weekdays.data or [] if str(d).isdecimal()]
    if form.schedule_frequency.data == "monthly":
        return [d if d == "last" else int(d) for d in form.schedule_monthdays.data or []
                if d == "last" or str(d).isdecimal()]
    return []


def _per_date(days: list) -> dict[str, list[str]]:
    out = {}
    for d in days:
        key = schedules.day_key(d)
        start = request.form.get(f"per_date-{key}-from", "").strip()
        end = request.form.get(f"per_date-{key}-to", "").strip()
        if start or end:
            out[key] = [start, end]
    return out


def _input(form: TopupPlanForm, kind: str, currency: str) -> dict:
    read = _Reader(currency)
    days = _days(form)
    schedule = {"frequency": form.schedule_frequency.data or "daily",
                "times": form.schedule_times.data or "all_day"}
    if schedule["frequency"] != "daily":
        schedule["days"] = days
    if schedule["times"] == "window":
        schedule["window"] = [(form.schedule_window_from.data or "").strip(),
                              (form.schedule_window_to.data or "").strip()]
    elif schedule["times"] == "per_date":
        schedule["per_date"] = _per_date(days)
    gift_t, gift_p = _offer(form.gift.data)
    first_t, first_p = _offer(form.first_gift.data)
    data = {
        "name": form.name.data or "", "currency": form.currency.data or currency,
        "starts_at": read.moment(form.starts_at.data, "starts_at"),
        "ends_at": read.moment(form.ends_at.data, "ends_at"), "schedule": schedule,
        "store_scope": {"mode": form.store_mode.data or "all",
                        "store_ids": [int(v) for v in form.store_ids.data or []
                                      if str(v).isdecimal()],
                        "organisations": list(form.organisations.data or []),
                        "groups": list(form.groups.data or [])},
        "upgrade_tier_id": int(form.upgrade_tier_id.data)
        if str(form.upgrade_tier_id.data or "").isdecimal() else None,
        "amount_minor": read.money(form.amount.data, "amount_minor"),
        "bonus_minor": read.money(form.bonus.data, "bonus_minor"),
        "bonus_points": read.whole(form.bonus_points.data, "bonus_points"),
        "min_minor": read.money(form.min_amount.data, "min_minor"),
        "max_minor": read.money(form.max_amount.data, "max_minor"),
        "bonus_bp": read.percent(form.bonus_percent.data, "bonus_bp"),
        "points_bp": read.percent(form.points_percent.data, "points_bp"),
        "bonus_min_minor": read.money(form.bonus_min.data, "bonus_min_minor"),
        "bonus_max_minor": read.money(form.bonus_max.data, "bonus_max_minor"),
        "points_min": read.whole(form.points_min.data, "points_min"),
        "points_max": read.whole(form.points_max.data, "points_max"),
        "gift_template_id": gift_t, "gift_package_id": gift_p,
        "first_bonus": bool(form.first_bonus.data),
        "first_bonus_bp": read.percent(form.first_bonus_percent.data, "first_bonus_bp"),
        "first_points_bp": read.percent(form.first_points_percent.data, "first_points_bp"),
        "first_gift_template_id": first_t, "first_gift_package_id": first_p,
        "first_topup_only": bool(form.first_topup_only.data),
        "stock_total": read.whole(form.stock.data, "stock_total"),
        "visible": bool(form.visible.data), "channels": list(form.channels.data or []),
        "per_member_limit": read.whole(form.per_member_limit.data, "per_member_limit"),
        "same_day_usable_bp": read.percent(form.same_day_percent.data, "same_day_usable_bp")
        if form.same_day_rule.data == "percent" else None,
        "bonus_locked_same_day": form.same_day_rule.data == "bonus_locked",
        "agreement": form.agreement.data or "", "description": form.description.data or "",
    }
    if form.same_day_rule.data == "percent" and data["same_day_usable_bp"] is None \
            and "same_day_usable_bp" not in read.errors:
        read.errors["same_day_usable_bp"] = _("Enter the share usable on the day.")
    for name in ("plan_ids", "tier_ids", "segment_ids", "tag_ids"):
        data[name] = [int(v) for v in form[name].data or [] if str(v).isdecimal()]
    raw = (form.benefit_ids.data or "").replace("，", ",")
    data["benefit_ids"] = [int(v) for v in raw.replace(",", " ").split() if v.isdecimal()]
    if any(not v.isdecimal() for v in raw.replace(",", " ").split()):
        read.errors["benefit_ids"] = _("Enter benefit ids separated by commas.")
    try:
        data["spend_product_ids"] = parse_product_ids(form.spend_product_ids.data or "")
    except CouponError as e:
        read.errors["spend_product_ids"] = e.details["errors"]["product_ids"]
        data["spend_product_ids"] = []
    data["errors"] = read.errors
    return data


# --- showing the form -----------------------------------------------------------------------

def _choices(form: TopupPlanForm, plan=None) -> None:
    plan_rows = members.plans(db.session)
    default = current_app.config["DEFAULT_CURRENCY"]
    currencies = sorted({default, *(p.currency for p in plan_rows)})
    form.currency.choices = [SelectChoice(c, c) for c in currencies]
    form.schedule_frequency.choices = [
        SelectChoice("daily", _("Every day")), SelectChoice("weekly", _("Some days of the week")),
        SelectChoice("monthly", _("Some days of the month"))]
    names = schedules.weekday_names()
    form.schedule_weekdays.choices = [SelectChoice(str(d), names[d]) for d in schedules.WEEKDAYS]
    form.schedule_monthdays.choices = [SelectChoice(str(d), str(d)) for d in range(1, 32)] + [
        SelectChoice("last", _("Last day"))]
    form.schedule_times.choices = [
        SelectChoice("all_day", _("All day")), SelectChoice("window", _("The same hours")),
        SelectChoice("per_date", _("Hours per date"))]
    stores, orgs, groups = plans.store_choices(db.session)
    form.store_mode.choices = [
        SelectChoice("all", _("All stores")), SelectChoice("include", _("Only the chosen")),
        SelectChoice("exclude", _("All but the chosen"))]
    form.store_ids.choices = [SelectChoice(str(s.id), s.name) for s in stores]
    form.organisations.choices = [SelectChoice(o, o) for o in orgs]
    form.groups.choices = [SelectChoice(g, g) for g in groups]
    form.plan_ids.choices = [SelectChoice(str(p.id), p.name) for p in plan_rows]
    tiers = [SelectChoice(str(t.id), f"{p.name} · {t.name}") for p in plan_rows
             for t in p.tiers]
    form.tier_ids.choices = tiers
    form.upgrade_tier_id.choices = [SelectChoice("", _("No upgrade"))] + tiers
    form.segment_ids.choices = [SelectChoice(str(i), n) for i, n in db.session.execute(
        select(Segment.id, Segment.name).order_by(Segment.name))]
    form.tag_ids.choices = [SelectChoice(str(i), n) for i, n in db.session.execute(
        select(Tag.id, Tag.name).order_by(Tag.name))]
    templates, packages = plans.offers(db.session)
    offers = [SelectChoice("", _("No gift"))] + [
        SelectChoice(f"t:{t.id}", _("Coupon: %(title)s", title=t.internal_name or t.title))
        for t in templates] + [
        SelectChoice(f"p:{p.id}", _("Package: %(name)s", name=p.name)) for p in packages]
    if plan is not None:   # keep a gift chosen before it was deactivated
        for tid, pid in ((plan.gift_template_id, plan.gift_package_id),
                         (plan.first_gift_template_id, plan.first_gift_package_id)):
            value = f"t:{tid}" if tid else f"p:{pid}" if pid else ""
            if value and value not in {c.value for c in offers}:
                offers.append(SelectChoice(value, _("(not active) %(v)s", v=value)))
    form.gift.choices = form.first_gift.choices = offers
    form.channels.choices = [SelectChoice("POS", _("POS (at the till)")),
                             SelectChoice("ONLINE", _("Online"))]
    form.same_day_rule.choices = [
        SelectChoice("none", _("No restriction")),
        SelectChoice("percent", _("Only part of the top-up is usable")),
        SelectChoice("bonus_locked", _("The bonus is not usable"))]


def _major(minor: int | None, currency: str) -> str:
    return str(Money(minor, currency).amount) if minor is not None else ""


def _pct(bp: int | None) -> str:
    if bp is None:
        return ""
    return format(Decimal(bp) / 100, "f").rstrip("0").rstrip(".") if bp % 100 else str(bp // 100)


def _fill(form: TopupPlanForm, p) -> dict[str, list[str]]:
    """The form as the plan is; returns the per-date times."""
    c = p.currency
    form.name.data, form.currency.data = p.name, p.currency
    form.starts_at.data, form.ends_at.data = _local(p.starts_at), _local(p.ends_at)
    s = p.schedule or {}
    form.schedule_frequency.data = s.get("frequency", "daily")
    form.schedule_times.data = s.get("times", "all_day")
    days = [str(d) for d in s.get("days", [])]
    form.schedule_weekdays.data = days if s.get("frequency") == "weekly" else []
    form.schedule_monthdays.data = days if s.get("frequency") == "monthly" else []
    window = s.get("window") or ["", ""]
    if window and isinstance(window[0], list):
        window = window[0]
    form.schedule_window_from.data, form.schedule_window_to.data = window
    scope = p.store_scope or {}
    form.store_mode.data = scope.get("mode", "all")
    form.store_ids.data = [str(i) for i in scope.get("store_ids", [])]
    form.organisations.data = list(scope.get("organisations", []))
    form.groups.data = list(scope.get("groups", []))
    for name in ("plan_ids", "tier_ids", "segment_ids", "tag_ids"):
        form[name].data = [str(v) for v in getattr(p, name) or []]
    form.upgrade_tier_id.data = str(p.upgrade_tier_id or "")
    form.amount.data, form.bonus.data = _major(p.amount_minor, c), _major(p.bonus_minor, c)
    form.bonus_points.data = "" if p.bonus_points is None else str(p.bonus_points)
    form.min_amount.data, form.max_amount.data = _major(p.min_minor, c), _major(p.max_minor, c)
    form.bonus_percent.data, form.points_percent.data = _pct(p.bonus_bp), _pct(p.points_bp)
    form.bonus_min.data = _major(p.bonus_min_minor, c)
    form.bonus_max.data = _major(p.bonus_max_minor, c)
    form.points_min.data = "" if p.points_min is None else str(p.points_min)
    form.points_max.data = "" if p.points_max is None else str(p.points_max)
    form.gift.data = f"t:{p.gift_template_id}" if p.gift_template_id else \
        f"p:{p.gift_package_id}" if p.gift_package_id else ""
    form.first_bonus.data = p.first_bonus
    form.first_bonus_percent.data = _pct(p.first_bonus_bp) if p.first_bonus else ""
    form.first_points_percent.data = _pct(p.first_points_bp) if p.first_bonus else ""
    form.first_gift.data = f"t:{p.first_gift_template_id}" if p.first_gift_template_id else \
        f"p:{p.first_gift_package_id}" if p.first_gift_package_id else ""
    form.benefit_ids.data = ", ".join(str(i) for i in p.benefit_ids or [])
    form.first_topup_only.data, form.visible.data = p.first_topup_only, p.visible
    form.stock.data = "" if p.stock_total is None else str(p.stock_total)
    form.channels.data = list(p.channels or [])
    form.spend_product_ids.data = "\n".join(p.spend_product_ids or [])
    form.per_member_limit.data = "" if p.per_member_limit is None else str(p.per_member_limit)
    form.same_day_rule.data = "bonus_locked" if p.bonus_locked_same_day else \
        "percent" if p.same_day_usable_bp is not None else "none"
    form.same_day_percent.data = _pct(p.same_day_usable_bp)
    form.agreement.data, form.description.data = p.agreement, p.description
    return {k: list(v) for k, v in (s.get("per_date") or {}).items()}


def _date_rows(form: TopupPlanForm, per_date: dict, errors: dict) -> list[dict]:
    """The per-date time rows to show: one per chosen day."""
    if form.schedule_frequency.data not in ("weekly", "monthly"):
        return []
    names = schedules.weekday_names()
    rows = []
    for d in _days(form):
        key = schedules.day_key(d)
        label = names[d] if form.schedule_frequency.data == "weekly" else (
            _("Last day") if d == "last" else _("Day %(n)s", n=d))
        start, end = (per_date.get(key) or ["", ""])[:2]
        rows.append({"key": key, "label": label, "from": start, "to": end,
                     "error": errors.get(f"schedule_per_date-{key}")})
    return rows


def _examples(plan) -> list[tuple[str, plans.Quote]]:
    """What a few top-ups give, for the live summary."""
    if plan is None:
        return []
    low, high = plans.amount_range(plan)
    amounts = [low] if low == high else [low, high]
    out = []
    for amount in amounts:
        try:
            out.append(("", plans.quote(plan, amount, first=False)))
            if plan.first_bonus:
                out.append(("first", plans.quote(plan, amount, first=True)))
        except (PlanError, TypeError):
            pass
    return out


def _page(form, kind, plan=None, per_date=None, errors=None, status=200):
    return render("admin/topups/edit.html", form=form, kind=kind, plan=plan,
                  date_rows=_date_rows(form, per_date or {}, errors or {}),
                  status_form=EmptyForm(), examples=_examples(plan),
                  has_topups=plan is not None and plans.has_topups(db.session, plan.id),
                  status=status)


def _apply(form: TopupPlanForm, e: PlanError) -> dict:
    errors = dict(e.details.get("errors", {}))
    mapped = {}
    for key, message in errors.items():
        if key.startswith("schedule_per_date-"):
            continue
        name = FORM_NAMES.get(key, key)
        if key == "schedule_days":
            name = "schedule_weekdays" if form.schedule_frequency.data == "weekly" \
                else "schedule_monthdays"
        if key in ("gift", "first_gift", "first_bonus"):
            name = {"gift": "gift", "first_gift": "first_gift",
                    "first_bonus": "first_bonus_percent"}[key]
        mapped[name] = message
    apply_error(form, type("Refusal", (), {"details": {"errors": mapped}})())
    if not errors:
        form.form_errors.append(str(e))
    return errors


def _cover(form: TopupPlanForm, data: dict) -> bool:
    upload = form.cover.data
    if upload and getattr(upload, "filename", ""):
        try:
            data["cover_image"] = save_public_image(upload)
        except UploadError as e:
            data["errors"]["cover_image"] = str(e)
            return False
    return True


@bp.route("/topups/new/<kind>", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def topup_new(kind: str):
    if kind not in set(PlanKind):
        abort(404)
    form = TopupPlanForm()
    _choices(form)
    if request.method == "GET":
        form.currency.data = current_app.config["DEFAULT_CURRENCY"]
        form.channels.data = ["POS", "ONLINE"]
        form.visible.data = True
        now = clock.local().replace(second=0, microsecond=0)
        form.starts_at.data = now.strftime(LOCAL_FORMAT)
    if form.validate_on_submit():
        data = _input(form, kind, form.currency.data or current_app.config["DEFAULT_CURRENCY"])
        try:
            if data["errors"]:
                # Unreadable input: the service reports it with its own findings (and
                # raises), before an image is stored for nothing.
                plans.clean(db.session, kind, data)
            _cover(form, data)
            plan = plans.create(db.session, kind, data, operator_id=current_staff().id,
                                activate=request.form.get("action") == "activate")
        except PlanError as e:
            db.session.rollback()
            errors = _apply(form, e)
            return _page(form, kind, per_date=_per_date(_days(form)), errors=errors,
                         status=422)
        flash(_("The plan is active.") if plan.status == PlanStatus.ACTIVE
              else _("The plan is saved as a draft."), "success")
        return redirect(url_for("admin.topup_edit", plan_id=plan.id), 303)
    return _page(form, kind, status=shown_status())


@bp.route("/topups/<int:plan_id>", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def topup_edit(plan_id: int):
    plan = plans.get(db.session, plan_id)
    if plan is None:
        abort(404)
    form = TopupPlanForm()
    _choices(form, plan)
    per_date = None
    if request.method == "GET":
        per_date = _fill(form, plan)
    if form.validate_on_submit():
        data = _input(form, plan.kind, plan.currency)
        try:
            if data["errors"]:
                plans.clean(db.session, plan.kind, data, plan)
            _cover(form, data)
            plans.update(db.session, plan_id, data, operator_id=current_staff().id)
        except PlanError as e:
            db.session.rollback()
            errors = _apply(form, e)
            return _page(form, plan.kind, plans.get(db.session, plan_id),
                         per_date=_per_date(_days(form)), errors=errors, status=422)
        flash(_("The plan is saved."), "success")
        return redirect(url_for("admin.topup_edit", plan_id=plan_id), 303)
    return _page(form, plan.kind, plan, per_date=per_date, status=shown_status())


@bp.post("/topups/<int:plan_id>/status")
@staff_required(*MANAGERS)
def topup_status(plan_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    return status_move(plans.set_status, plan_id, "admin.topup_list", "admin.topup_edit")


def status_move(set_status, plan_id: int, list_endpoint: str, edit_endpoint: str):
    """Activate / deactivate / archive a top-up or smart top-up plan from its page or the
    list, flashing the outcome."""
    action = request.form.get("action", "")
    try:
        set_status(db.session, plan_id, action, operator_id=current_staff().id)
    except PlanError as e:
        if e.code == PlanErrorCode.NOT_FOUND:
            abort(404)
        flash(str(e), "error")
    else:
        flash({"activate": _("The plan is active."),
               "deactivate": _("The plan is deactivated."),
               "archive": _("The plan is archived.")}[action], "success")
    if request.form.get("back") == "list":
        return redirect(url_for(list_endpoint), 303)
    return redirect(url_for(edit_endpoint, plan_id=plan_id), 303)


@bp.get("/topups/<int:plan_id>/details")
@staff_required(*MANAGERS)
def topup_details(plan_id: int):
    plan = plans.get(db.session, plan_id)
    if plan is None:
        abort(404)
    page = max(1, request.args.get("page", 1, type=int) or 1)
    return render("admin/topups/details.html", block="results", plan=plan,
                  details=plans.topup_details(db.session, plan_id, page))


# --- recharge codes -------------------------------------------------------------------------

def _code_form(plan) -> RechargeCodeForm:
    form = RechargeCodeForm()
    stores, _orgs, _groups = plans.store_choices(db.session)
    form.store_ids.choices = [SelectChoice(str(s.id), s.name) for s in stores]
    form.channels.choices = [SelectChoice("POS", _("POS (at the till)")),
                             SelectChoice("ONLINE", _("Online"))]
    if request.method == "GET":
        form.channels.data = ["POS", "ONLINE"]
        if plan.kind == PlanKind.FIXED:
            form.amount.data = _major(plan.amount_minor, plan.currency)
    return form


@bp.route("/topups/<int:plan_id>/codes", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def topup_codes(plan_id: int):
    plan = plans.get(db.session, plan_id)
    if plan is None:
        abort(404)
    form = _code_form(plan)
    if form.validate_on_submit():
        read = _Reader(plan.currency)
        try:
            batch = plans.generate_codes(
                db.session, plan_id, count=read.whole(form.count.data, "count"),
                amount_minor=read.money(form.amount.data, "amount_minor"),
                scenario=form.scenario.data or "",
                store_ids=[int(v) for v in form.store_ids.data or [] if str(v).isdecimal()],
                channels=list(form.channels.data or []),
                valid_until=read.moment(form.valid_until.data, "valid_until"),
                operator_id=current_staff().id, errors=read.errors)
        except PlanError as e:
            db.session.rollback()
            errors = {FORM_NAMES.get(k, k): v for k, v in e.details.get("errors", {}).items()}
            apply_error(form, type("Refusal", (), {"details": {"errors": errors}})()
                        if errors else e)
            return render("admin/topups/codes.html", plan=plan, form=form,
                          batches=plans.code_batches(db.session, plan_id), status=422)
        flash(_("%(n)s codes are ready: download them below.", n=batch.count), "success")
        return redirect(url_for("admin.topup_codes", plan_id=plan_id), 303)
    return render("admin/topups/codes.html", plan=plan, form=form,
                  batches=plans.code_batches(db.session, plan_id), status=shown_status())


@bp.get("/topups/codes/<int:batch_id>.csv")
@staff_required(*MANAGERS)
def topup_codes_csv(batch_id: int):
    found = plans.batch_codes(db.session, batch_id, operator_id=current_staff().id)
    if found is None:
        abort(404)
    batch, codes = found
    plan = plans.get(db.session, batch.plan_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["code", "amount", "currency", "scenario", "valid_until", "redeemed_at"])
    amount = str(Money(batch.amount_minor, plan.currency).amount)
    until = clock.local(batch.valid_until).isoformat() if batch.valid_until else ""
    # A scenario starting with = + - @ (or a tab, CR or NUL) would be a formula in a
    # spreadsheet.
    scenario = xlsx.safe(batch.scenario)
    for c in codes:
        writer.writerow([c.code, amount, plan.currency, scenario, until,
                         clock.local(c.redeemed_at).isoformat() if c.redeemed_at else ""])
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="recharge-codes-{batch.id}.csv"',
        "Cache-Control": "no-store"})
