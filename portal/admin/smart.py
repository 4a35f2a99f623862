"""Smart top-up plans in the merchant area: the list, create and edit with up to nine tier
rows, "Try a bill" (what each tier offers for a bill), activate / deactivate / archive."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from flask import abort, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from sqlalchemy import select
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice

from portal import clock
from portal.admin.forms import _checkboxes
from portal.admin.topups import LOCAL_FORMAT, _local, _major, _pct, _Reader, status_move
from portal.admin.views import MANAGERS, bp
from portal.coupons.models import CouponTemplate
from portal.db import db
from portal.members import services as members
from portal.money import Money
from portal.wallet import plans, smart, smart_plans
from portal.wallet.models import PlanStatus
from portal.wallet.plans import PlanError
from portal.web.auth import current_staff, staff_required
from portal.web.forms import EmptyForm, apply_error, shown_status
from portal.web.render import render
from portal.web.uploads import UploadError, save_public_image

# A tier row's inputs (`tier-<i>-<name>`) and the service field each one feeds.
TIER_INPUTS = {"multiplier": "multiplier_bp", "bonus_percent": "bonus_bp",
               "points_percent": "points_bp", "amount": "amount_minor", "bonus": "bonus_minor",
               "bonus_points": "bonus_points", "gift": "gift_template_id",
               "first_gift": "first_gift_template_id",
               "first_bonus_percent": "first_bonus_bp",
               "first_points_percent": "first_points_bp"}
TIER_NAMES = {v: k for k, v in TIER_INPUTS.items()}
FORM_NAMES = {"min_topup_minor": "min_topup", "rounding_minor": "rounding",
              "stock_total": "stock", "cover_image": "cover"}
EMPTY_ROWS = 3          # rows shown for a new plan; a saved plan gets its tiers and this many
# Rows read from a submission: more than the plan may have, so a 10th is refused with a
# message rather than dropped without one.
READ_ROWS = 20


class SmartPlanForm(FlaskForm):
    """A smart plan's own fields as typed; the tier rows are read from the request by the
    view (`tier-<i>-<name>`)."""

    name = StringField(_l("Plan name"), render_kw={"maxlength": 120, "required": True})
    currency = SelectField(_l("Currency"), choices=[], validate_choice=False)
    starts_at = StringField(_l("Valid from"), render_kw={"type": "datetime-local"})
    ends_at = StringField(_l("Valid until"), render_kw={"type": "datetime-local"})
    store_mode = SelectField(_l("Store scope"), choices=[], validate_choice=False)
    store_ids = _checkboxes(_l("Stores"))
    organisations = _checkboxes(_l("Organisations"))
    groups = _checkboxes(_l("Store groups"))
    plan_ids = _checkboxes(_l("Card plans"))
    tier_ids = _checkboxes(_l("Tiers"))
    min_topup = StringField(_l("Minimum top-up"), render_kw={"inputmode": "decimal"})
    rounding = SelectField(_l("Rounding precision"), choices=[], validate_choice=False)
    first_bonus = BooleanField(_l("First top-up bonus"))
    first_topup_only = BooleanField(_l("First top-up only"))
    stock = StringField(_l("Stock"), render_kw={"inputmode": "numeric"})
    channels = _checkboxes(_l("Channels"))
    cover = FileField(_l("Cover image"), render_kw={"accept": "image/png,image/jpeg"})
    agreement = TextAreaField(_l("Agreement"), render_kw={"rows": 3})
    description = TextAreaField(_l("Description"), render_kw={"rows": 3})


def kind_label(kind: str) -> str:
    return {"discount": _("Top-up discount"), "gift": _("Top-up gift"),
            "fixed": _("Fixed amount")}.get(kind, kind)


@bp.app_context_processor
def _smart_labels():
    return {"smart_kind_label": kind_label}


@bp.get("/smart-topups")
@staff_required(*MANAGERS)
def smart_list():
    status = request.args.get("status", "")
    status = status if status in set(PlanStatus) else ""
    return render("admin/smart/list.html", block="results",
                  rows=smart_plans.plan_list(db.session, status or None),
                  chosen_status=status, statuses=list(PlanStatus))


# --- parsing the form -----------------------------------------------------------------------

def _multiple(read: _Reader, raw: str | None, name: str) -> int | None:
    """"1.2" (×) → 12000 basis points."""
    raw = (raw or "").strip().rstrip("×xX").strip()
    if not raw:
        return None
    try:
        bp = Decimal(raw) * 10_000
        if not bp.is_finite() or bp != bp.to_integral_value() or bp < 0:
            raise InvalidOperation
        return int(bp)
    except InvalidOperation:
        read.errors[name] = _("Enter a multiple such as 1.2.")
        return None


def _coupon_id(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    return int(raw) if raw.isdecimal() else None


def _tier_rows(form_data, currency: str) -> tuple[list[dict], dict[str, str], list[dict]]:
    """The tier rows the merchant filled in (a row with nothing typed or chosen is skipped,
    whatever its kind): parsed tiers, errors keyed like the service's (`tier-<n>-<field>`),
    and the rows as typed."""
    tiers, typed = [], []
    read = _Reader(currency)
    for i in range(READ_ROWS):
        raw = {name: (form_data.get(f"tier-{i}-{name}") or "").strip()
               for name in ("kind", *TIER_INPUTS)}
        if not any(raw[name] for name in TIER_INPUTS):
            continue
        p = f"tier-{len(tiers)}-"
        typed.append(raw)
        tiers.append({
            "kind": raw["kind"],
            "multiplier_bp": _multiple(read, raw["multiplier"], p + "multiplier_bp"),
            "bonus_bp": read.percent(raw["bonus_percent"], p + "bonus_bp"),
            "points_bp": read.percent(raw["points_percent"], p + "points_bp"),
            "amount_minor": read.money(raw["amount"], p + "amount_minor"),
            "bonus_minor": read.money(raw["bonus"], p + "bonus_minor"),
            "bonus_points": read.whole(raw["bonus_points"], p + "bonus_points"),
            "gift_template_id": _coupon_id(raw["gift"]),
            "first_gift_template_id": _coupon_id(raw["first_gift"]),
            "first_bonus_bp": read.percent(raw["first_bonus_percent"], p + "first_bonus_bp"),
            "first_points_bp": read.percent(raw["first_points_percent"],
                                            p + "first_points_bp")})
    return tiers, read.errors, typed


def _input(form: SmartPlanForm, currency: str) -> dict:
    read = _Reader(currency)
    rounding = form.rounding.data or ""
    data = {
        "name": form.name.data or "", "currency": form.currency.data or currency,
        "starts_at": read.moment(form.starts_at.data, "starts_at"),
        "ends_at": read.moment(form.ends_at.data, "ends_at"),
        "store_scope": {"mode": form.store_mode.data or "all",
                        "store_ids": [int(v) for v in form.store_ids.data or []
                                      if str(v).isdecimal()],
                        "organisations": list(form.organisations.data or []),
                        "groups": list(form.groups.data or [])},
        "min_topup_minor": read.money(form.min_topup.data, "min_topup_minor"),
        "rounding_minor": int(rounding) if rounding.isdecimal() else rounding,
        "first_bonus": bool(form.first_bonus.data),
        "first_topup_only": bool(form.first_topup_only.data),
        "stock_total": read.whole(form.stock.data, "stock_total"),
        "channels": list(form.channels.data or []),
        "agreement": form.agreement.data or "", "description": form.description.data or "",
    }
    for name in ("plan_ids", "tier_ids"):
        data[name] = [int(v) for v in form[name].data or [] if str(v).isdecimal()]
    data["tiers"], tier_errors, _typed = _tier_rows(request.form, currency)
    data["errors"] = {**read.errors, **tier_errors}
    return data


# --- showing the form -----------------------------------------------------------------------

def _choices(form: SmartPlanForm, currency: str) -> None:
    plan_rows = members.plans(db.session)
    default = current_app.config["DEFAULT_CURRENCY"]
    form.currency.choices = [SelectChoice(c, c) for c in
                             sorted({default, *(p.currency for p in plan_rows)})]
    stores, orgs, groups = plans.store_choices(db.session)
    form.store_mode.choices = [
        SelectChoice("all", _("All stores")), SelectChoice("include", _("Only the chosen")),
        SelectChoice("exclude", _("All but the chosen"))]
    form.store_ids.choices = [SelectChoice(str(s.id), s.name) for s in stores]
    form.organisations.choices = [SelectChoice(o, o) for o in orgs]
    form.groups.choices = [SelectChoice(g, g) for g in groups]
    form.plan_ids.choices = [SelectChoice(str(p.id), p.name) for p in plan_rows]
    form.tier_ids.choices = [SelectChoice(str(t.id), f"{p.name} · {t.name}")
                             for p in plan_rows for t in p.tiers]
    form.rounding.choices = [SelectChoice(str(r), _step(r, currency))
                             for r in smart_plans.ROUNDINGS]
    form.channels.choices = [SelectChoice("POS", _("POS (at the till)")),
                             SelectChoice("ONLINE", _("Online"))]


def _step(minor: int, currency: str) -> str:
    """10 minor units of CNY → "0.1", 100 → "1"."""
    return format(Money(minor, currency).amount.normalize(), "f")


def _fill(form: SmartPlanForm, p) -> None:
    c = p.currency
    form.name.data, form.currency.data = p.name, p.currency
    form.starts_at.data, form.ends_at.data = _local(p.starts_at), _local(p.ends_at)
    scope = p.store_scope or {}
    form.store_mode.data = scope.get("mode", "all")
    form.store_ids.data = [str(i) for i in scope.get("store_ids", [])]
    form.organisations.data = list(scope.get("organisations", []))
    form.groups.data = list(scope.get("groups", []))
    for name in ("plan_ids", "tier_ids"):
        form[name].data = [str(v) for v in getattr(p, name) or []]
    form.min_topup.data = _major(p.min_topup_minor, c) if p.min_topup_minor else ""
    form.rounding.data = str(p.rounding_minor)
    form.first_bonus.data, form.first_topup_only.data = p.first_bonus, p.first_topup_only
    form.stock.data = "" if p.stock_total is None else str(p.stock_total)
    form.channels.data = list(p.channels or [])
    form.agreement.data, form.description.data = p.agreement, p.description


def _typed_tiers(plan) -> list[dict]:
    """A plan's tiers as the form shows them."""
    c = plan.currency
    return [{"kind": t.kind, "multiplier": _times(t.multiplier_bp),
             "bonus_percent": _pct(t.bonus_bp), "points_percent": _pct(t.points_bp),
             "amount": _major(t.amount_minor, c), "bonus": _major(t.bonus_minor, c),
             "bonus_points": "" if t.bonus_points is None else str(t.bonus_points),
             "gift": str(t.gift_template_id or ""),
             "first_gift": str(t.first_gift_template_id or ""),
             "first_bonus_percent": _pct(t.first_bonus_bp) if t.first_bonus_bp else "",
             "first_points_percent": _pct(t.first_points_bp) if t.first_points_bp else ""}
            for t in plan.tiers]


def _times(bp: int | None) -> str:
    """12000 → "1.2"."""
    if bp is None:
        return ""
    return format(Decimal(bp) / 10_000, "f").rstrip("0").rstrip(".") if bp % 10_000 \
        else str(bp // 10_000)


def _coupons(rows: list[dict]) -> tuple[list[CouponTemplate], dict[str, str]]:
    """Active coupons a tier may give, and the titles of inactive ones already chosen."""
    templates, _packages = plans.offers(db.session)
    active = {str(t.id) for t in templates}
    chosen = {int(r[k]) for r in rows for k in ("gift", "first_gift")
              if r.get(k, "").isdecimal() and r[k] not in active}
    others = {str(i): title for i, title in db.session.execute(
        select(CouponTemplate.id, CouponTemplate.internal_name)
        .where(CouponTemplate.id.in_(chosen)))} if chosen else {}
    return templates, others


def _preview(plan) -> dict | None:
    """What each tier offers for the bill in `?bill=` (first top-up or not)."""
    if plan is None or "bill" not in request.args:
        return None
    raw = (request.args.get("bill") or "").strip().replace(",", "")
    out = {"raw": raw, "error": None, "rows": [], "titles": {}}
    try:
        bill = Money.parse(raw, plan.currency).minor
        if bill <= 0:
            raise ValueError(raw)
    except (ValueError, InvalidOperation):
        out["error"] = _("Enter a bill such as 100 or 86.50.")
        return out
    out["bill"] = bill
    for tier in plan.tiers:
        out["rows"].append((tier, smart.tier_offer(plan, tier, bill, first=False),
                            smart.tier_offer(plan, tier, bill, first=True)
                            if plan.first_bonus else None))
    ids = {g for _t, a, b in out["rows"] for o in (a, b) if o for g in o.gift_template_ids}
    if ids:
        out["titles"] = dict(db.session.execute(
            select(CouponTemplate.id, CouponTemplate.title)
            .where(CouponTemplate.id.in_(ids))).all())
    return out


def _page(form, plan=None, rows=None, errors=None, status=200, currency=None,
          tiers_error=None):
    tier_rows = list(rows if rows is not None else (_typed_tiers(plan) if plan else []))
    tier_rows = tier_rows[:smart_plans.MAX_TIERS]
    # Room for more tiers: three empty rows below what is there, never past the maximum.
    wanted = min(smart_plans.MAX_TIERS, len(tier_rows) + EMPTY_ROWS)
    tier_rows += [dict.fromkeys(("kind", *TIER_INPUTS), "")
                  for _ in range(max(0, wanted - len(tier_rows)))]
    coupons, inactive = _coupons(tier_rows)
    preview = _preview(plan)
    return render("admin/smart/edit.html", block="preview" if preview else None, form=form,
                  plan=plan, tier_rows=tier_rows, tier_errors=errors or {},
                  coupons=coupons, inactive_coupons=inactive, preview=preview,
                  currency=plan.currency if plan else currency,
                  max_tiers=smart_plans.MAX_TIERS, tiers_error=tiers_error,
                  status_form=EmptyForm(),
                  has_topups=plan is not None and smart_plans.has_topups(db.session, plan.id),
                  status=status)


def _refused(form, e: PlanError, plan=None, currency=None):
    errors = dict(e.details.get("errors", {}))
    mapped, rows = {}, {}
    for key, message in errors.items():
        if key.startswith("tier-"):
            n, _sep, name = key[5:].partition("-")
            rows[f"tier-{n}-{TIER_NAMES.get(name, name)}"] = message
        else:
            mapped[FORM_NAMES.get(key, key)] = message
    tiers_error = mapped.pop("tiers", None)
    apply_error(form, type("Refusal", (), {"details": {"errors": mapped}})())
    if not errors:
        form.form_errors.append(str(e))
    elif tiers_error or rows:
        # The summary at the top says where to look; the tier rows are further down.
        form.form_errors.append(_("Please correct the marked fields."))
    typed = _tier_rows(request.form, currency or plan.currency)[2]
    return _page(form, plan, rows=typed, errors=rows, status=422, currency=currency,
                 tiers_error=tiers_error)


def _cover(form: SmartPlanForm, data: dict) -> None:
    upload = form.cover.data
    if upload and getattr(upload, "filename", ""):
        try:
            data["cover_image"] = save_public_image(upload)
        except UploadError as e:
            data["errors"]["cover_image"] = str(e)


@bp.route("/smart-topups/new", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def smart_new():
    default = current_app.config["DEFAULT_CURRENCY"]
    form = SmartPlanForm()
    currency = (form.currency.data or default) if request.method == "POST" else default
    _choices(form, currency)
    if request.method == "GET":
        form.currency.data = default
        form.channels.data = ["POS", "ONLINE"]
        form.rounding.data = "100"
        now = clock.local().replace(second=0, microsecond=0)
        form.starts_at.data = now.strftime(LOCAL_FORMAT)
    if form.validate_on_submit():
        data = _input(form, currency)
        try:
            if data["errors"]:
                # Unreadable input: the service reports it with its own findings (and
                # raises), before an image is stored for nothing.
                smart_plans.clean(db.session, data)
            _cover(form, data)
            plan = smart_plans.create(db.session, data, operator_id=current_staff().id,
                                      activate=request.form.get("action") == "activate")
        except PlanError as e:
            db.session.rollback()
            return _refused(form, e, currency=currency)
        flash(_("The plan is active.") if plan.status == PlanStatus.ACTIVE
              else _("The plan is saved as a draft."), "success")
        return redirect(url_for("admin.smart_edit", plan_id=plan.id), 303)
    return _page(form, status=shown_status(), currency=currency)


@bp.route("/smart-topups/<int:plan_id>", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def smart_edit(plan_id: int):
    plan = smart_plans.get(db.session, plan_id)
    if plan is None:
        abort(404)
    form = SmartPlanForm()
    _choices(form, plan.currency)
    if request.method == "GET":
        _fill(form, plan)
    if form.validate_on_submit():
        data = _input(form, plan.currency)
        try:
            if data["errors"]:
                smart_plans.clean(db.session, data, plan)
            _cover(form, data)
            smart_plans.update(db.session, plan_id, data, operator_id=current_staff().id)
        except PlanError as e:
            db.session.rollback()
            return _refused(form, e, smart_plans.get(db.session, plan_id))
        flash(_("The plan is saved."), "success")
        return redirect(url_for("admin.smart_edit", plan_id=plan_id), 303)
    return _page(form, plan, status=shown_status())


@bp.post("/smart-topups/<int:plan_id>/status")
@staff_required(*MANAGERS)
def smart_status(plan_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    return status_move(smart_plans.set_status, plan_id, "admin.smart_list",
                       "admin.smart_edit")

