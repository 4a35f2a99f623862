"""Member benefits in the merchant area (spec 2.1): the management list, choosing a kind,
the form of that kind (member-price and tier-perk rows grow with "add row"), deactivate
and activate."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from flask import abort, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, MultipleFileField
from wtforms import SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.widgets import CheckboxInput, ListWidget

from portal.admin.reading import FormReader
from portal.admin.topups import _date_rows, _days, _major, _pct, _per_date
from portal.admin.views import MANAGERS, bp
from portal.benefits import manage
from portal.benefits.errors import BenefitError, BenefitErrorCode
from portal.benefits.models import BenefitKind, BenefitStatus
from portal.db import db
from portal.wallet import schedule as schedules
from portal.web.auth import current_staff, staff_required
from portal.web.forms import EmptyForm, apply_error, shown_status
from portal.web.render import render
from portal.web.uploads import UploadError, save_public_image

IMAGE_KW = {"accept": "image/png,image/jpeg"}
NEW_IMAGE = "\0new"          # stands for an upload not stored yet (counted, not saved)


def kind_label(kind: str) -> str:
    return {BenefitKind.MARKETING: _("Marketing"), BenefitKind.PROMOTION: _("Promotion"),
            BenefitKind.MEMBER_PRICE: _("Member pricing"),
            BenefitKind.DISCOUNT: _("Member discount"), BenefitKind.MEMBER_DAY: _("Member day"),
            BenefitKind.BIRTHDAY: _("Birthday privileges"),
            BenefitKind.MULTIPLIER: _("Multiplier points"),
            BenefitKind.CARD_EXTENSION: _("Card extension"),
            BenefitKind.SERVICE: _("Exclusive service"),
            BenefitKind.CUSTOM: _("Custom benefit")}.get(kind, kind)


def kind_hint(kind: str) -> str:
    return {
        BenefitKind.MARKETING: _("Linked to an activity, such as a gift for completing the "
                                 "profile."),
        BenefitKind.PROMOTION: _("A member-only order promotion, such as 20 off orders of "
                                 "100."),
        BenefitKind.MEMBER_PRICE: _("Member prices for chosen products, at the till or "
                                    "online."),
        BenefitKind.DISCOUNT: _("A percentage off eligible purchases, such as 10 percent off."),
        BenefitKind.MEMBER_DAY: _("Special offers on set days of the week or month, with "
                                  "extras per tier."),
        BenefitKind.BIRTHDAY: _("Offers on the birthday, its week or its month, with extras "
                                "per tier."),
        BenefitKind.MULTIPLIER: _("More points on purchases, such as double points."),
        BenefitKind.CARD_EXTENSION: _("More days on cards that expire (not on permanent "
                                      "cards)."),
        BenefitKind.SERVICE: _("A premium service, shown with up to 6 pictures."),
        BenefitKind.CUSTOM: _("Anything else you offer members, described in your words."),
    }.get(kind, "")


def status_label(status: str) -> str:
    return {BenefitStatus.ACTIVE: _("Active"),
            BenefitStatus.INACTIVE: _("Inactive")}.get(status, status)


@bp.app_context_processor
def _benefit_labels():
    return {"benefit_kind_label": kind_label, "benefit_status_label": status_label}


def _checkboxes(label):
    return SelectMultipleField(label, choices=[], validate_choice=False,
                               widget=ListWidget(prefix_label=False),
                               option_widget=CheckboxInput())


class BenefitForm(FlaskForm):
    """A benefit's fields as typed; amounts in major units, percentages as "12.5",
    multipliers as "1.5". The member-price rows (`price-<i>-product`, `price-<i>-price`),
    tier-perk rows (`perk-<i>-…`) and per-date times are read from the request."""

    name = StringField(_l("Benefit name"), render_kw={"maxlength": 80, "required": True})
    brief = StringField(_l("Brief"), render_kw={"maxlength": 160})
    description = TextAreaField(_l("Description"), render_kw={"rows": 4})
    icon = FileField(_l("Icon"), render_kw=IMAGE_KW)
    plan_ids = _checkboxes(_l("Card plans"))
    tier_ids = _checkboxes(_l("Tiers"))
    channels = _checkboxes(_l("Channels"))
    activity_id = SelectField(_l("Linked activity"), choices=[], validate_choice=False)
    threshold = StringField(_l("Orders of at least"), render_kw={"inputmode": "decimal"})
    off = StringField(_l("Amount off"), render_kw={"inputmode": "decimal"})
    discount = StringField(_l("Percent off"), render_kw={"inputmode": "decimal"})
    multiplier = StringField(_l("Points multiplier"), render_kw={"inputmode": "decimal"})
    restriction_rule = SelectField(_l("Restriction on the prepaid balance"), choices=[],
                                   validate_choice=False)
    restriction_amount = StringField(_l("Balance amount"), render_kw={"inputmode": "decimal"})
    exclusions_mode = SelectField(_l("Items"), choices=[], validate_choice=False)
    exclusions_values = TextAreaField(_l("Left out"), render_kw={"rows": 3})
    schedule_frequency = SelectField(_l("Member days"), choices=[], validate_choice=False)
    schedule_weekdays = _checkboxes(_l("Days of the week"))
    schedule_monthdays = _checkboxes(_l("Days of the month"))
    schedule_times = SelectField(_l("Effective time"), choices=[], validate_choice=False)
    schedule_window_from = StringField(_l("From"), render_kw={"type": "time"})
    schedule_window_to = StringField(_l("Until"), render_kw={"type": "time"})
    birthday_window = SelectField(_l("Effective dates"), choices=[], validate_choice=False)
    extension_days = StringField(_l("Days added to the card"),
                                 render_kw={"inputmode": "numeric"})
    images = MultipleFileField(_l("Add detail images"), render_kw=IMAGE_KW)
    remove_images = _checkboxes(_l("Remove"))


# The service speaks in stored names; the form in what people type.
FORM_NAMES = {"threshold_minor": "threshold", "off_minor": "off", "discount_bp": "discount",
              "multiplier_bp": "multiplier", "restriction_amount_minor": "restriction_amount",
              "schedule_window": "schedule_window_from", "schedule_per_date": "schedule_times"}


# --- the list -------------------------------------------------------------------------------

@bp.get("/benefits")
@staff_required(*MANAGERS)
def benefit_list():
    args = request.args
    kind = args.get("kind", "") if args.get("kind", "") in set(BenefitKind) else ""
    status = args.get("status", "") if args.get("status", "") in set(BenefitStatus) else ""
    operator = args.get("operator", "")
    filters = manage.BenefitFilters(q=args.get("q", "").strip()[:80], kind=kind,
                                    status=status,
                                    operator_id=int(operator) if operator.isdecimal() else None)
    rows, more = manage.benefit_list(db.session, filters,
                                     before_id=args.get("before", type=int))
    return render("admin/benefits/list.html", block="results", rows=rows, more=more,
                  filters=filters, kinds=list(BenefitKind), statuses=list(BenefitStatus),
                  operators=manage.operators(db.session) if not request.htmx else [],
                  status_form=EmptyForm(), paging="before" in args)


@bp.get("/benefits/new")
@staff_required(*MANAGERS)
def benefit_kinds():
    return render("admin/benefits/kinds.html",
                  kinds=[(k, kind_label(k), kind_hint(k)) for k in BenefitKind])


# --- parsing the form -----------------------------------------------------------------------

def _rows(prefix: str, names: tuple[str, ...]) -> list[dict[str, str]]:
    """The numbered rows of the request (`<prefix>-<i>-<name>`), in order, without the ones
    left empty."""
    pattern = re.compile(rf"^{prefix}-(\d+)-")
    indexes = sorted({int(m.group(1)) for key in request.form if (m := pattern.match(key))})
    rows = [{n: request.form.get(f"{prefix}-{i}-{n}", "").strip() for n in names}
            for i in indexes[:500]]
    return [r for r in rows if any(r.values())]


def _multiple(raw: str, name: str, errors: dict) -> int | None:
    """"1.5" (×) → 15000 basis points."""
    raw = (raw or "").strip().lstrip("×xX").strip()
    if not raw:
        return None
    try:
        bp = Decimal(raw) * 10_000
        if not bp.is_finite() or bp != bp.to_integral_value():
            raise InvalidOperation
        return int(bp)
    except InvalidOperation:
        errors[name] = _("Enter a number such as 1.5 or 2.")
        return None


def _lines(raw: str) -> list[str]:
    return [v.strip() for v in re.split(r"[\n,，]+", raw or "") if v.strip()]


def _input(form: BenefitForm, kind: str, benefit=None) -> tuple[dict, list, list, list]:
    """The service's input, and the price and perk rows as typed (to show them again)."""
    currency = benefit.currency if benefit else current_app.config["DEFAULT_CURRENCY"]
    read = FormReader(currency)
    days = _days(form)
    schedule = {"frequency": form.schedule_frequency.data or "",
                "times": form.schedule_times.data or "all_day", "days": days}
    if schedule["times"] == "window":
        schedule["window"] = [(form.schedule_window_from.data or "").strip(),
                              (form.schedule_window_to.data or "").strip()]
    elif schedule["times"] == "per_date":
        schedule["per_date"] = _per_date(days)
    price_rows = _rows("price", ("product", "price"))
    perk_rows = _rows("perk", ("tier", "discount", "multiplier", "note"))
    prices = [{"product_id": r["product"], "price_minor": read.money(
        r["price"], f"prices-{i}-price_minor")} for i, r in enumerate(price_rows)]
    perks = [{"tier_id": int(r["tier"]) if r["tier"].isdecimal() else None,
              "discount_bp": read.percent(r["discount"], f"tier_perks-{i}-discount_bp"),
              "multiplier_bp": _multiple(r["multiplier"], f"tier_perks-{i}-multiplier_bp",
                                         read.errors),
              "note": r["note"]} for i, r in enumerate(perk_rows)]
    kept = [i for i in (benefit.images if benefit else [])
            if i not in (form.remove_images.data or [])]
    uploads = [f for f in request.files.getlist(form.images.name) if f and f.filename]
    data = {
        "name": form.name.data or "", "brief": form.brief.data or "",
        "description": form.description.data or "", "currency": currency,
        "plan_ids": [int(v) for v in form.plan_ids.data or [] if str(v).isdecimal()],
        "tier_ids": [int(v) for v in form.tier_ids.data or [] if str(v).isdecimal()],
        "channels": list(form.channels.data or []),
        "activity_id": int(form.activity_id.data)
        if str(form.activity_id.data or "").isdecimal() else None,
        "threshold_minor": read.money(form.threshold.data, "threshold_minor"),
        "off_minor": read.money(form.off.data, "off_minor"),
        "prices": prices,
        "discount_bp": read.percent(form.discount.data, "discount_bp"),
        "multiplier_bp": _multiple(form.multiplier.data, "multiplier_bp", read.errors),
        "restriction": {"rule": form.restriction_rule.data or "none",
                        "amount_minor": read.money(form.restriction_amount.data,
                                                   "restriction_amount_minor")},
        "exclusions": {"mode": form.exclusions_mode.data or "none",
                       "values": _lines(form.exclusions_values.data)},
        "schedule": schedule, "birthday_window": form.birthday_window.data or None,
        "tier_perks": perks,
        "extension_days": read.whole(form.extension_days.data, "extension_days"),
        "images": kept + [NEW_IMAGE] * len(uploads), "errors": read.errors,
    }
    return data, price_rows, perk_rows, uploads


def _store_images(form: BenefitForm, data: dict, uploads: list) -> dict[str, str]:
    """Store the icon and new detail images once the rest is valid; what failed, by field."""
    errors = {}
    if form.icon.data and getattr(form.icon.data, "filename", ""):
        try:
            data["icon"] = save_public_image(form.icon.data)
        except UploadError as e:
            errors["icon"] = str(e)
    stored = []
    for upload in uploads:
        try:
            stored.append(save_public_image(upload))
        except UploadError as e:
            errors["images"] = str(e)
    data["images"] = [i for i in data["images"] if i != NEW_IMAGE] + stored
    return errors


# --- showing the form -----------------------------------------------------------------------

def _choices(form: BenefitForm, plans, activities) -> None:
    form.plan_ids.choices = [SelectChoice(str(p.id), p.name + ("" if p.validity_days else
                                                                 _(" (never expires)")))
                             for p in plans]
    form.tier_ids.choices = [SelectChoice(str(t.id), f"{p.name} · {t.name}") for p in plans
                             for t in p.tiers]
    form.channels.choices = [SelectChoice("POS", _("POS (at the till)")),
                             SelectChoice("ONLINE", _("Online"))]
    form.activity_id.choices = [SelectChoice("", _("Choose an activity"))] + [
        SelectChoice(str(a.id), a.name) for a in activities]
    form.restriction_rule.choices = [
        SelectChoice("none", _("No restriction")),
        SelectChoice("balance_below_amount", _("Not valid if the prepaid balance is below an "
                                               "amount")),
        SelectChoice("balance_below_due", _("Not valid if the prepaid balance is below the "
                                            "amount due")),
        SelectChoice("balance_below_discounted_due", _("Not valid if the prepaid balance is "
                                                       "below the discounted amount due"))]
    form.exclusions_mode.choices = [
        SelectChoice("none", _("No exclusions")),
        SelectChoice("products", _("Leave out products")),
        SelectChoice("categories", _("Leave out categories"))]
    form.schedule_frequency.choices = [
        SelectChoice("weekly", _("Some days of the week")),
        SelectChoice("monthly", _("Some days of the month"))]
    names = schedules.weekday_names()
    form.schedule_weekdays.choices = [SelectChoice(str(d), names[d]) for d in schedules.WEEKDAYS]
    form.schedule_monthdays.choices = [SelectChoice(str(d), str(d)) for d in range(1, 32)] + [
        SelectChoice("last", _("Last day"))]
    form.schedule_times.choices = [
        SelectChoice("all_day", _("All day")), SelectChoice("window", _("The same hours")),
        SelectChoice("per_date", _("Hours per date"))]
    form.birthday_window.choices = [
        SelectChoice("day", _("The birthday only")),
        SelectChoice("week", _("The birthday week (Monday to Sunday)")),
        SelectChoice("month", _("The birthday month"))]


def _fill(form: BenefitForm, b) -> tuple[list, list, dict]:
    """The form as the benefit is; returns its price and perk rows and per-date times."""
    c = b.currency
    form.name.data, form.brief.data, form.description.data = b.name, b.brief, b.description
    form.plan_ids.data = [str(v) for v in b.plan_ids or []]
    form.tier_ids.data = [str(v) for v in b.tier_ids or []]
    form.channels.data = list(b.channels or [])
    form.activity_id.data = str(b.activity_id or "")
    form.threshold.data, form.off.data = _major(b.threshold_minor, c), _major(b.off_minor, c)
    form.discount.data = _pct(b.discount_bp)
    form.multiplier.data = _times(b.multiplier_bp)
    r = b.restriction or {}
    form.restriction_rule.data = r.get("rule", "none")
    form.restriction_amount.data = _major(r.get("amount_minor"), c)
    ex = b.exclusions or {}
    form.exclusions_mode.data = ex.get("mode", "none")
    form.exclusions_values.data = "\n".join(ex.get("values") or [])
    s = b.schedule or {}
    form.schedule_frequency.data = s.get("frequency", "weekly")
    form.schedule_times.data = s.get("times", "all_day")
    days = [str(d) for d in s.get("days", [])]
    form.schedule_weekdays.data = days if s.get("frequency") == "weekly" else []
    form.schedule_monthdays.data = days if s.get("frequency") == "monthly" else []
    window = s.get("window") or ["", ""]
    if window and isinstance(window[0], list):
        window = window[0]
    form.schedule_window_from.data, form.schedule_window_to.data = window
    form.birthday_window.data = b.birthday_window or "day"
    form.extension_days.data = "" if b.extension_days is None else str(b.extension_days)
    prices = [{"product": p["product_id"], "price": _major(p["price_minor"], c)}
              for p in b.prices or []]
    perks = [{"tier": str(p.get("tier_id") or ""), "discount": _pct(p.get("discount_bp")),
              "multiplier": _times(p.get("multiplier_bp")), "note": p.get("note") or ""}
             for p in b.tier_perks or []]
    return prices, perks, {k: list(v) for k, v in (s.get("per_date") or {}).items()}


def _times(bp: int | None) -> str:
    if bp is None:
        return ""
    return format(Decimal(bp) / 10_000, "f").rstrip("0").rstrip(".")


def _with_blank(rows: list[dict], names: tuple[str, ...], extra: bool) -> list[dict]:
    """The rows to show: at least one, and one more empty row when asked for."""
    rows = list(rows)
    if extra or not rows:
        rows.append(dict.fromkeys(names, ""))
    return rows


PRICE_NAMES = ("product", "price")
PERK_NAMES = ("tier", "discount", "multiplier", "note")


def _page(form, kind, benefit=None, *, prices=(), perks=(), per_date=None, errors=None,
          add: str = "", status=200):
    plans, activities = manage.choices(db.session)
    errors = errors or {}
    return render(
        "admin/benefits/edit.html", form=form, kind=kind, benefit=benefit,
        groups=manage.KIND_FIELDS[kind], kind_hint=kind_hint(kind),
        price_rows=_with_blank(prices, PRICE_NAMES, add == "price"),
        perk_rows=_with_blank(perks, PERK_NAMES, add == "perk"),
        tiers=[(t.id, f"{p.name} · {t.name}") for p in plans for t in p.tiers],
        date_rows=_date_rows(form, per_date or {}, errors),
        row_errors={k: v for k, v in errors.items()
                    if k.startswith(("prices-", "tier_perks-"))},
        list_errors={k: errors[k] for k in ("prices", "tier_perks", "images") if k in errors},
        status_form=EmptyForm(), status=status)


def _apply(form: BenefitForm, e: BenefitError) -> dict:
    errors = dict(e.details.get("errors", {}))
    mapped = {}
    for key, message in errors.items():
        if key.startswith(("prices", "tier_perks", "schedule_per_date-")) or key == "images":
            continue
        name = FORM_NAMES.get(key, key)
        if key == "schedule_days":
            name = "schedule_weekdays" if form.schedule_frequency.data == "weekly" \
                else "schedule_monthdays"
        mapped[name] = message
    apply_error(form, type("Refusal", (), {"details": {"errors": mapped}})())
    if not errors:
        form.form_errors.append(str(e))
    return errors


def _save(form: BenefitForm, kind: str, benefit=None):
    """Check, store the images, then create or change; returns the page to show on a
    refusal, else None."""
    data, prices, perks, uploads = _input(form, kind, benefit)
    add = request.form.get("add", "")
    if add in ("price", "perk"):
        # "Add row" without JavaScript: the same form again with one more empty row.
        page = _page(form, kind, benefit, prices=prices, perks=perks,
                     per_date=_per_date(_days(form)), add=add)
        return page, None
    staff_id = current_staff().id
    try:
        manage.clean(db.session, kind, data, benefit)
        if found := _store_images(form, data, uploads):
            data["errors"] = found
            manage.clean(db.session, kind, data, benefit)
        if benefit is None:
            saved = manage.create(db.session, kind, data, operator_id=staff_id)
        else:
            saved = manage.update(db.session, benefit.id, data, operator_id=staff_id)
    except BenefitError as e:
        db.session.rollback()
        if e.code == BenefitErrorCode.NOT_FOUND:
            abort(404)
        errors = _apply(form, e)
        return _page(form, kind, benefit and manage.get(db.session, benefit.id),
                     prices=prices, perks=perks, per_date=_per_date(_days(form)),
                     errors=errors, status=422), None
    return None, saved


@bp.route("/benefits/new/<kind>", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def benefit_new(kind: str):
    if kind not in set(BenefitKind):
        abort(404)
    form = BenefitForm()
    _choices(form, *manage.choices(db.session))
    if request.method == "GET":
        form.channels.data = ["POS", "ONLINE"]
        form.schedule_frequency.data = "weekly"
        form.birthday_window.data = "day"
    if form.validate_on_submit():
        page, saved = _save(form, kind)
        if page is not None:
            return page
        flash(_("The benefit is saved and active: members of its plans and tiers have it "
                "now."), "success")
        return redirect(url_for("admin.benefit_list"), 303)
    return _page(form, kind, status=shown_status())


@bp.route("/benefits/<int:benefit_id>", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def benefit_edit(benefit_id: int):
    benefit = manage.get(db.session, benefit_id)
    if benefit is None:
        abort(404)
    form = BenefitForm()
    _choices(form, *manage.choices(db.session))
    if request.method == "GET":
        prices, perks, per_date = _fill(form, benefit)
        return _page(form, benefit.kind, benefit, prices=prices, perks=perks,
                     per_date=per_date)
    if form.validate_on_submit():
        page, _saved = _save(form, benefit.kind, benefit)
        if page is not None:
            return page
        flash(_("The benefit is saved."), "success")
        return redirect(url_for("admin.benefit_edit", benefit_id=benefit_id), 303)
    return _page(form, benefit.kind, benefit, status=shown_status())


@bp.post("/benefits/<int:benefit_id>/status")
@staff_required(*MANAGERS)
def benefit_status(benefit_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    action = request.form.get("action", "")
    moves = {"activate": manage.activate, "deactivate": manage.deactivate}
    if action not in moves:
        abort(400)
    try:
        moves[action](db.session, benefit_id, operator_id=current_staff().id)
    except BenefitError:
        abort(404)
    flash(_("The benefit is active: members have it now.") if action == "activate"
          else _("The benefit is deactivated: members no longer have it."), "success")
    if request.form.get("back") == "list":
        return redirect(request.form.get("next") if str(request.form.get("next", ""))
                        .startswith("/admin/benefits") else url_for("admin.benefit_list"), 303)
    return redirect(url_for("admin.benefit_edit", benefit_id=benefit_id), 303)
