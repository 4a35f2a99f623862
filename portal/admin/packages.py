"""Paid benefit packages in the merchant area: the list (with sales figures), create and
edit (sales rules and items grow by rows), activate / deactivate / archive, sales data and
the merchant-wide validity rule."""
from __future__ import annotations

from datetime import datetime

from flask import abort, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from portal import clock
from portal.admin.reading import LOCAL_FORMAT
from portal.admin.reading import FormReader as _Reader
from portal.admin.views import MANAGERS, bp
from portal.benefits import packages
from portal.benefits.models import PackageItemKind, PackageStatus
from portal.benefits.packages import ITEM_LABELS, STATUS_LABELS, VALIDITY_LABELS, PackageError
from portal.coupons import services as coupons
from portal.db import db
from portal.members import services as members
from portal.members.models import Segment, Tag
from portal.money import Money
from portal.wallet import schedule as schedules
from portal.web.auth import current_staff, staff_required
from portal.web.forms import EmptyForm
from portal.web.render import render

PRICES = ("original_minor", "first_minor", "repeat_minor", "renewal_minor", "promo_minor")


@bp.app_context_processor
def _package_labels():
    return {"package_status_label": lambda s: str(STATUS_LABELS.get(s, s)),
            "package_kind_label": lambda k: str(ITEM_LABELS.get(k, k))}


@bp.get("/packages")
@staff_required(*MANAGERS)
def paid_package_list():
    q = request.args.get("q", "")[:80]
    status = request.args.get("status", "")
    status = status if status in set(PackageStatus) else ""
    return render("admin/packages/list.html", block="results",
                  rows=packages.package_list(db.session, q=q, status=status or None),
                  q=q, chosen_status=status, statuses=list(PackageStatus),
                  status_form=EmptyForm())


# --- reading the form -----------------------------------------------------------------------

def _ints(name: str) -> list[int]:
    return [int(v) for v in request.form.getlist(name) if v.isdecimal()]


def _schedule() -> dict:
    f = request.form
    schedule = {"frequency": f.get("schedule_frequency", "daily"),
                "times": f.get("schedule_times", "all_day")}
    days: list = []
    if schedule["frequency"] == "weekly":
        days = _ints("schedule_weekdays")
    elif schedule["frequency"] == "monthly":
        days = [d if d == "last" else int(d) for d in f.getlist("schedule_monthdays")
                if d == "last" or d.isdecimal()]
    if schedule["frequency"] != "daily":
        schedule["days"] = days
    if schedule["times"] == "window":
        schedule["window"] = [f.get("schedule_window_from", "").strip(),
                              f.get("schedule_window_to", "").strip()]
    elif schedule["times"] == "per_date":
        per_date = {}
        for d in days:
            key = schedules.day_key(d)
            start = f.get(f"per_date-{key}-from", "").strip()
            end = f.get(f"per_date-{key}-to", "").strip()
            if start or end:
                per_date[key] = [start, end]
        schedule["per_date"] = per_date
    return schedule


def _rows(prefix: str) -> list[int]:
    """The row numbers the form sent for `prefix` ("rules" or "items"), in order."""
    seen = set()
    for key in request.form:
        head, _sep, rest = key.partition("-")
        number = rest.split("-", 1)[0]
        if head == prefix and number.isdecimal():
            seen.add(int(number))
    return sorted(seen)


def _offer(value: str) -> tuple[int | None, int | None]:
    kind, _sep, ident = (value or "").partition(":")
    if not ident.isdecimal():
        return None, None
    return (int(ident), None) if kind == "t" else (None, int(ident)) if kind == "p" \
        else (None, None)


def _input(currency: str) -> dict:
    f = request.form
    read = _Reader(currency)
    rules, items = [], []
    for n in _rows("rules"):
        raw = {k: f.get(f"rules-{n}-{k}", "").strip()
               for k in ("duration_days", *PRICES, "promo_starts_at", "promo_ends_at")}
        if not any(raw.values()):
            continue                       # the blank row offered for a new rule
        i = len(rules)
        rule = {"duration_days": read.whole(raw["duration_days"], f"rules-{i}-duration_days")}
        for name in PRICES:
            rule[name] = _price(read, raw[name], f"rules-{i}-{name}")
        for name in ("promo_starts_at", "promo_ends_at"):
            rule[name] = read.moment(raw[name], f"rules-{i}-{name}")
        rules.append(rule)
    for n in _rows("items"):
        kind = f.get(f"items-{n}-kind", "")
        if not kind:
            continue
        i = len(items)
        template_id, package_id = _offer(f.get(f"items-{n}-gift", ""))
        items.append({
            "kind": kind, "name": f.get(f"items-{n}-name", ""),
            "description": f.get(f"items-{n}-description", ""),
            "rule_positions": [int(p) - 1 for p in f.getlist(f"items-{n}-rules")
                               if p.isdecimal() and int(p) > 0],
            "points": read.whole(f.get(f"items-{n}-points"), f"items-{i}-points") or 0,
            "coupon_template_id": template_id, "coupon_package_id": package_id,
            "distribution": f.get(f"items-{n}-distribution") or None,
            "benefit_id": int(f.get(f"items-{n}-benefit_id")) if
            f.get(f"items-{n}-benefit_id", "").isdecimal() else None,
            "tier_id": int(f.get(f"items-{n}-tier_id")) if
            f.get(f"items-{n}-tier_id", "").isdecimal() else None})
    data = {"name": f.get("name", ""), "currency": f.get("currency", currency),
            "tags": [t for t in f.get("tags", "").replace("，", ",").split(",")],
            "plan_ids": _ints("plan_ids"), "tier_ids": _ints("tier_ids"),
            "segment_ids": _ints("segment_ids"), "tag_ids": _ints("tag_ids"),
            "starts_at": read.moment(f.get("starts_at"), "starts_at"),
            "ends_at": read.moment(f.get("ends_at"), "ends_at"), "schedule": _schedule(),
            "channels": f.getlist("channels"),
            "refund_restricted": f.get("refund_restricted") == "y",
            "agreement": f.get("agreement", ""), "terms": f.get("terms", ""),
            "faq": f.get("faq", ""), "description": f.get("description", ""),
            "rules": rules, "items": items}
    data["errors"] = read.errors
    return data


def _price(read: _Reader, raw: str, name: str) -> int | None:
    """Money as typed; a minus sign is read, so that the service says why it is refused."""
    if raw.startswith("-"):
        value = read.money(raw[1:], name)
        return -value if value else (-1 if value == 0 else None)
    return read.money(raw, name)


# --- showing the form -----------------------------------------------------------------------

def _local(value: datetime | None) -> str:
    return clock.local(value).strftime(LOCAL_FORMAT) if value else ""


def _major(minor: int | None, currency: str) -> str:
    return str(Money(minor, currency).amount) if minor is not None else ""


def _values_of(p) -> dict:
    """The form's values as the package is."""
    s = p.schedule or {}
    window = s.get("window") or ["", ""]
    if window and isinstance(window[0], list):
        window = window[0]
    return {
        "name": p.name, "currency": p.currency, "tags": ", ".join(p.tags or []),
        "plan_ids": p.plan_ids, "tier_ids": p.tier_ids, "segment_ids": p.segment_ids,
        "tag_ids": p.tag_ids, "starts_at": _local(p.starts_at), "ends_at": _local(p.ends_at),
        "schedule_frequency": s.get("frequency", "daily"),
        "schedule_times": s.get("times", "all_day"),
        "schedule_days": [str(d) for d in s.get("days", [])],
        "schedule_window": window, "per_date": s.get("per_date") or {},
        "channels": p.channels, "refund_restricted": p.refund_restricted,
        "agreement": p.agreement, "terms": p.terms, "faq": p.faq,
        "description": p.description,
        "rules": [{"duration_days": str(r.duration_days),
                   **{n: _major(getattr(r, n), p.currency) for n in PRICES},
                   "promo_starts_at": _local(r.promo_starts_at),
                   "promo_ends_at": _local(r.promo_ends_at)} for r in p.rules],
        "items": [{"kind": i.kind, "name": i.name, "description": i.description,
                   "rules": [str(n + 1) for n in i.rule_positions or []],
                   "points": str(i.points or ""), "distribution": i.distribution or "",
                   "gift": f"t:{i.coupon_template_id}" if i.coupon_template_id else
                   f"p:{i.coupon_package_id}" if i.coupon_package_id else "",
                   "benefit_id": str(i.benefit_id or ""), "tier_id": str(i.tier_id or "")}
                  for i in p.items]}


def _values_posted() -> dict:
    f = request.form
    return {
        "name": f.get("name", ""), "currency": f.get("currency", ""), "tags": f.get("tags", ""),
        "plan_ids": _ints("plan_ids"), "tier_ids": _ints("tier_ids"),
        "segment_ids": _ints("segment_ids"), "tag_ids": _ints("tag_ids"),
        "starts_at": f.get("starts_at", ""), "ends_at": f.get("ends_at", ""),
        "schedule_frequency": f.get("schedule_frequency", "daily"),
        "schedule_times": f.get("schedule_times", "all_day"),
        "schedule_days": f.getlist("schedule_weekdays") if f.get("schedule_frequency") ==
        "weekly" else f.getlist("schedule_monthdays"),
        "schedule_window": [f.get("schedule_window_from", ""), f.get("schedule_window_to", "")],
        "per_date": _schedule().get("per_date", {}),
        "channels": f.getlist("channels"), "refund_restricted": f.get("refund_restricted") == "y",
        "agreement": f.get("agreement", ""), "terms": f.get("terms", ""),
        "faq": f.get("faq", ""), "description": f.get("description", ""),
        "rules": [{k: f.get(f"rules-{n}-{k}", "") for k in
                   ("duration_days", *PRICES, "promo_starts_at", "promo_ends_at")}
                  for n in _rows("rules")
                  if any(f.get(k) for k in f if k.startswith(f"rules-{n}-"))],
        "items": [{"kind": f.get(f"items-{n}-kind", ""), "name": f.get(f"items-{n}-name", ""),
                   "description": f.get(f"items-{n}-description", ""),
                   "rules": f.getlist(f"items-{n}-rules"),
                   "points": f.get(f"items-{n}-points", ""),
                   "distribution": f.get(f"items-{n}-distribution", ""),
                   "gift": f.get(f"items-{n}-gift", ""),
                   "benefit_id": f.get(f"items-{n}-benefit_id", ""),
                   "tier_id": f.get(f"items-{n}-tier_id", "")}
                  for n in _rows("items") if f.get(f"items-{n}-kind")]}


def _choices() -> dict:
    plan_rows = members.plans(db.session)
    default = current_app.config["DEFAULT_CURRENCY"]
    names = schedules.weekday_names()
    benefits = packages.benefit_choices(db.session)
    return {
        "currencies": sorted({default, *(p.currency for p in plan_rows)}),
        "plans": [(p.id, p.name) for p in plan_rows],
        "tiers": [(t.id, f"{p.name} · {t.name}") for p in plan_rows for t in p.tiers],
        "segments": db.session.execute(select(Segment.id, Segment.name)
                                       .order_by(Segment.name)).all(),
        "tags": db.session.execute(select(Tag.id, Tag.name).order_by(Tag.name)).all(),
        "weekdays": [(str(d), names[d]) for d in schedules.WEEKDAYS],
        "monthdays": [(str(d), str(d)) for d in range(1, 32)] + [("last", _("Last day"))],
        "gifts": [("", _("No coupon"))] + [
            (f"t:{t.id}", _("Coupon: %(title)s", title=t.internal_name or t.title))
            for t in coupons.active_templates(db.session)] + [
            (f"p:{p.id}", _("Coupon package: %(name)s", name=p.name))
            for p in coupons.active_packages(db.session)],
        "benefits": benefits,
        "benefit_ids": {str(b.id) for rows in benefits.values() for b in rows},
        "kinds": [(str(k), str(ITEM_LABELS[k])) for k in PackageItemKind],
    }


def _date_rows(values: dict, errors: dict) -> list[dict]:
    """One row of hours per chosen day, named as the merchant chose it."""
    if values.get("schedule_frequency") not in ("weekly", "monthly"):
        return []
    names = schedules.weekday_names()
    rows = []
    for d in values.get("schedule_days") or []:
        key = schedules.day_key(int(d) if str(d).isdecimal() else d)
        label = names[int(d)] if values["schedule_frequency"] == "weekly" else (
            _("Last day") if d == "last" else _("Day %(n)s", n=d))
        start, end = (values.get("per_date", {}).get(key) or ["", ""])[:2]
        rows.append({"key": key, "label": label, "from": start, "to": end,
                     "error": errors.get(f"schedule_per_date-{key}")})
    return rows


def _page(values: dict, package=None, errors=None, status=200):
    errors = errors or {}
    return render("admin/packages/edit.html", v=values, package=package,
                  errors=errors, c=_choices(), max_rules=packages.MAX_RULES,
                  date_rows=_date_rows(values, errors), status_form=EmptyForm(),
                  form=EmptyForm(), status=status)


BLANK = {"rules": [], "items": [], "channels": ["POS", "ONLINE"], "refund_restricted": True,
         "schedule_frequency": "daily", "schedule_times": "all_day", "schedule_days": [],
         "schedule_window": ["", ""], "per_date": {}, "plan_ids": [], "tier_ids": [],
         "segment_ids": [], "tag_ids": []}


@bp.route("/packages/new", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def paid_package_new():
    form = EmptyForm()
    if request.method == "GET":
        return _page({**BLANK, "currency": current_app.config["DEFAULT_CURRENCY"],
                      "rules": [{"duration_days": "30"}]})
    if not form.validate_on_submit():
        abort(400)
    data = _input(request.form.get("currency") or current_app.config["DEFAULT_CURRENCY"])
    try:
        package = packages.create(db.session, data, operator_id=current_staff().id,
                                  activate=request.form.get("activate") == "y")
    except PackageError as e:
        return _page(_values_posted(), errors=e.errors, status=422)
    flash(_("Package “%(name)s” saved.", name=package.name), "success")
    return redirect(url_for("admin.paid_package_edit", package_id=package.id), 303)


@bp.route("/packages/<int:package_id>", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def paid_package_edit(package_id: int):
    package = packages.get(db.session, package_id)
    if package is None:
        abort(404)
    form = EmptyForm()
    if request.method == "GET":
        return _page(_values_of(package), package)
    if not form.validate_on_submit():
        abort(400)
    try:
        packages.update(db.session, package_id, _input(package.currency),
                        operator_id=current_staff().id)
    except PackageError as e:
        db.session.rollback()
        return _page(_values_posted(), packages.get(db.session, package_id),
                     errors=e.errors or {"form": e.message}, status=422)
    flash(_("Package “%(name)s” saved.", name=package.name), "success")
    return redirect(url_for("admin.paid_package_edit", package_id=package_id), 303)


@bp.post("/packages/per-date")
@staff_required(*MANAGERS)
def paid_package_per_date():
    """The hours-per-date rows for the days the form has chosen so far (htmx, on change):
    the rows appear as the days are ticked, not only after a save."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    values = _values_posted()
    return render("admin/packages/edit.html", block="per_date", v=values, errors={},
                  date_rows=_date_rows(values, {}))


@bp.get("/packages/row/<kind>")
@staff_required(*MANAGERS)
def paid_package_row(kind: str):
    """One more empty sales-rule or item row (the "add" buttons)."""
    if kind not in ("rule", "item"):
        abort(404)
    n = request.args.get("n", type=int) or 0
    return render("admin/packages/_row.html", kind=kind, n=n, r={}, i={}, errors={},
                  c=_choices(), max_rules=packages.MAX_RULES)


@bp.post("/packages/<int:package_id>/<action>")
@staff_required(*MANAGERS)
def paid_package_status(package_id: int, action: str):
    if action not in packages.ACTIONS:
        abort(404)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        package = packages.set_status(db.session, package_id, action,
                                      operator_id=current_staff().id)
    except PackageError as e:
        flash(e.message, "error")
    else:
        flash({"activate": _("“%(name)s” is on sale."),
               "deactivate": _("“%(name)s” is off sale; members keep what they bought."),
               "archive": _("“%(name)s” is archived.")}[action] % {"name": package.name},
              "success")
    return redirect(request.form.get("next") or url_for("admin.paid_package_list"), 303)


@bp.get("/packages/<int:package_id>/sales")
@staff_required(*MANAGERS)
def paid_package_sales(package_id: int):
    package = packages.get(db.session, package_id)
    if package is None:
        abort(404)
    return render("admin/packages/sales.html", package=package,
                  report=packages.sales(db.session, package_id))


@bp.route("/packages/settings", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def paid_package_settings():
    form, errors = EmptyForm(), {}
    mode = packages.settings(db.session).validity_mode
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        mode = request.form.get("validity_mode", "")
        try:
            packages.save_settings(db.session, mode, operator_id=current_staff().id)
        except PackageError as e:
            errors = e.errors
        else:
            flash(_("Package validity rule saved."), "success")
            return redirect(url_for("admin.paid_package_settings"), 303)
    return render("admin/packages/settings.html", form=form, mode=mode, errors=errors,
                  labels=VALIDITY_LABELS, status=422 if errors else 200)
