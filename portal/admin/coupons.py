"""Coupons in the merchant area: templates, packages, claim links, quick issue."""
from __future__ import annotations

import secrets
from datetime import date
from decimal import Decimal, InvalidOperation

from flask import abort, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from wtforms.fields.choices import SelectChoice

from portal.admin.forms import (
    ApiClientForm,
    ClaimLinkForm,
    CouponTemplateForm,
    PackageForm,
    QuickIssueForm,
)
from portal.admin.views import EVERYONE, MANAGERS, bp
from portal.api import services as api_services
from portal.coupons import services as coupons
from portal.coupons.errors import CouponError, CouponErrorCode
from portal.db import db
from portal.members import services as members
from portal.money import Money
from portal.staff.models import Role
from portal.web.auth import current_staff, staff_required
from portal.web.forms import EmptyForm, apply_error, shown_status
from portal.web.render import render

MAX_UPLOAD = 512 * 1024


def _parse(form: CouponTemplateForm, currency: str) -> tuple[dict, dict]:
    """The form as typed values; what cannot be read is reported by field."""
    errors: dict[str, str] = {}

    def money(name):
        raw = (form[name].data or "").strip().replace(",", "")
        if not raw:
            return None
        try:
            return Money.parse(raw, currency).minor
        except (ValueError, InvalidOperation):
            errors[name] = _("Enter an amount such as 12.50.")
            return None

    def whole(name):
        raw = (form[name].data or "").strip().replace(",", "")
        if not raw:
            return None
        if not raw.isdecimal():
            errors[name] = _("Enter a whole number.")
            return None
        return int(raw)

    def day(name):
        raw = (form[name].data or "").strip()
        if not raw:
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            errors[name] = _("Enter a date.")
            return None

    percent = None
    raw_percent = (form.percent.data or "").strip().rstrip("%")
    if raw_percent:
        try:
            percent = int((Decimal(raw_percent) * 100).to_integral_value())
        except InvalidOperation:
            errors["percent"] = _("Enter a percentage such as 15 or 12.5.")
    products = form.product_ids.data or ""
    upload = form.products_file.data
    if upload and getattr(upload, "filename", ""):
        content = upload.read(MAX_UPLOAD + 1)
        if len(content) > MAX_UPLOAD:
            errors["products_file"] = _("The list is larger than 512 KB.")
        else:
            try:
                products += "\n" + content.decode("utf-8-sig")
            except UnicodeDecodeError:
                errors["products_file"] = _("Upload a plain text or CSV file (UTF-8).")
    data = {
        "kind": form.kind.data, "internal_name": form.internal_name.data,
        "title": form.title.data, "subtitle": form.subtitle.data or "",
        "instructions": form.instructions.data or "", "theme": form.theme.data,
        "currency": currency, "amount_minor": money("amount"), "percent_off": percent,
        "cap_minor": money("cap"), "gift_item": form.gift_item.data,
        "min_spend_minor": money("min_spend"), "validity_kind": form.validity_kind.data,
        "valid_from_on": day("valid_from_on"), "valid_until_on": day("valid_until_on"),
        "starts_after_days": whole("starts_after_days"), "valid_days": whole("valid_days"),
        "inventory_total": whole("inventory_total"),
        "per_member_limit": whole("per_member_limit"),
        "online_url": form.online_url.data, "external_id": form.external_id.data,
        "channels": [c for c in ("POS", "ONLINE") if c in (form.channels.data or [])],
    }
    for name, parse in (("product_ids", coupons.parse_product_ids),
                        ("extra_fields", coupons.parse_extra_fields)):
        try:
            data[name] = parse(products if name == "product_ids" else form[name].data)
        except CouponError as e:
            errors.update(e.details["errors"])
    return data, errors


# The service speaks in stored names; the form in what people type.
FORM_NAMES = {"amount_minor": "amount", "percent_off": "percent", "cap_minor": "cap",
              "min_spend_minor": "min_spend"}


def _apply(form, error: CouponError) -> None:
    errors = {FORM_NAMES.get(k, k): v for k, v in error.details.get("errors", {}).items()}
    apply_error(form, type("Refusal", (), {"details": {"errors": errors}})())


def _fill(form: CouponTemplateForm, t) -> None:
    def major(minor):
        return str(Money(minor, t.currency).amount) if minor is not None else ""

    form.kind.data, form.internal_name.data, form.title.data = t.kind, t.internal_name, t.title
    form.subtitle.data, form.instructions.data, form.theme.data = (t.subtitle, t.instructions,
                                                                    t.theme)
    form.amount.data, form.cap.data = major(t.amount_minor), major(t.cap_minor)
    form.min_spend.data = major(t.min_spend_minor)
    form.percent.data = str(Decimal(t.percent_off) / 100) if t.percent_off else ""
    form.gift_item.data, form.validity_kind.data = t.gift_item or "", t.validity_kind
    form.valid_from_on.data = t.valid_from_on.isoformat() if t.valid_from_on else ""
    form.valid_until_on.data = t.valid_until_on.isoformat() if t.valid_until_on else ""
    form.starts_after_days.data = "" if t.starts_after_days is None else str(t.starts_after_days)
    form.valid_days.data = "" if t.valid_days is None else str(t.valid_days)
    form.inventory_total.data = "" if t.inventory_total is None else str(t.inventory_total)
    form.per_member_limit.data = "" if t.per_member_limit is None else str(t.per_member_limit)
    form.product_ids.data = "\n".join(t.product_ids or [])
    form.extra_fields.data = "\n".join(f"{k} = {v}" for k, v in (t.extra_fields or {}).items())
    form.online_url.data, form.external_id.data = t.online_url or "", t.external_id or ""
    form.channels.data = list(t.channels or [])


@bp.get("/coupons")
@staff_required(*MANAGERS)
def coupon_list():
    return render("admin/coupons/list.html", rows=coupons.template_list(db.session))


@bp.route("/coupons/new", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def coupon_new():
    form = CouponTemplateForm()
    currency = current_app.config["DEFAULT_CURRENCY"]
    if form.validate_on_submit():
        data, errors = _parse(form, currency)
        try:
            if errors:
                raise coupons._invalid(errors)
            template = coupons.create_template(db.session, data,
                                               operator_id=current_staff().id)
        except CouponError as e:
            _apply(form, e)
            return render("admin/coupons/edit.html", form=form, template=None,
                          currency=currency, status=422)
        flash(_("The coupon is saved as a draft. Activate it to start issuing."), "success")
        return redirect(url_for("admin.coupon_edit", template_id=template.id), 303)
    return render("admin/coupons/edit.html", form=form, template=None, currency=currency,
                  status=shown_status())


@bp.route("/coupons/<int:template_id>", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def coupon_edit(template_id: int):
    template = db.session.get(coupons.CouponTemplate, template_id)
    if template is None:
        abort(404)
    form = CouponTemplateForm()
    if request.method == "GET":
        _fill(form, template)
    issued = coupons.issued_count(db.session, template.id)
    context = {"template": template, "currency": template.currency, "issued": issued,
               "links": coupons.claim_links(db.session, template.id),
               "link_form": _claim_link_form(), "action_form": EmptyForm()}
    if form.validate_on_submit():
        data, errors = _parse(form, template.currency)
        try:
            if errors:
                raise coupons._invalid(errors)
            coupons.update_template(db.session, template.id, data,
                                    operator_id=current_staff().id)
        except CouponError as e:
            _apply(form, e)
            return render("admin/coupons/edit.html", form=form, status=422, **context)
        flash(_("The coupon is saved."), "success")
        return redirect(url_for("admin.coupon_edit", template_id=template.id), 303)
    return render("admin/coupons/edit.html", form=form, status=shown_status(), **context)


def _claim_link_form() -> ClaimLinkForm:
    form = ClaimLinkForm()
    form.registration_page_id.choices = [SelectChoice(0, _("The sign-in page"))] + [
        SelectChoice(p.id, p.name) for p, _funnel in members.page_list(db.session)
        if p.is_published]
    return form


@bp.post("/coupons/<int:template_id>/status")
@staff_required(*MANAGERS)
def coupon_status(template_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        coupons.set_template_status(db.session, template_id, request.form.get("status", ""),
                                    operator_id=current_staff().id)
    except CouponError as e:
        if e.code == CouponErrorCode.NOT_FOUND:
            abort(404)
        flash(str(e), "error")
    return redirect(url_for("admin.coupon_edit", template_id=template_id), 303)


@bp.post("/coupons/<int:template_id>/claim-links")
@staff_required(*MANAGERS)
def claim_link_add(template_id: int):
    form = _claim_link_form()
    if not form.validate_on_submit():
        abort(400)
    try:
        coupons.create_claim_link(db.session, template_id, form.registration_page_id.data,
                                  operator_id=current_staff().id)
    except CouponError:
        abort(404)
    flash(_("The claim link is ready."), "success")
    return redirect(url_for("admin.coupon_edit", template_id=template_id), 303)


@bp.post("/claim-links/<int:link_id>/status")
@staff_required(*MANAGERS)
def claim_link_status(link_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        link = coupons.set_claim_link_active(db.session, link_id,
                                             request.form.get("active") == "1",
                                             operator_id=current_staff().id)
    except CouponError:
        abort(404)
    return redirect(url_for("admin.coupon_edit", template_id=link.template_id), 303)


@bp.get("/claim-links/<int:link_id>/print")
@staff_required(*MANAGERS)
def claim_link_print(link_id: int):
    link = db.session.get(coupons.ClaimLink, link_id)
    if link is None:
        abort(404)
    return render("admin/coupons/claim_print.html", link=link)


@bp.route("/coupon-packages", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def package_list():
    form = PackageForm()
    templates = coupons.active_templates(db.session)
    if form.validate_on_submit():
        items = []
        for t in templates:
            raw = request.form.get(f"qty-{t.id}", "").strip()
            if raw:
                items.append((t.id, int(raw) if raw.isdecimal() else 0))
        try:
            coupons.create_package(db.session, form.name.data, items,
                                   operator_id=current_staff().id)
        except CouponError as e:
            apply_error(form, e)
            return render("admin/coupons/packages.html", form=form, templates=templates,
                          packages=coupons.packages(db.session), status=422)
        flash(_("The package is saved."), "success")
        return redirect(url_for("admin.package_list"), 303)
    return render("admin/coupons/packages.html", form=form, templates=templates,
                  packages=coupons.packages(db.session), status=shown_status())


@bp.post("/coupon-packages/<int:package_id>/status")
@staff_required(*MANAGERS)
def package_status(package_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        coupons.set_package_status(db.session, package_id, request.form.get("active") == "1",
                                   operator_id=current_staff().id)
    except CouponError:
        abort(404)
    return redirect(url_for("admin.package_list"), 303)


def quick_issue_form() -> QuickIssueForm:
    form = QuickIssueForm()
    form.offer.choices = [SelectChoice(f"t:{t.id}", t.title)
                          for t in coupons.active_templates(db.session)] + [
        SelectChoice(f"p:{p.id}", _("Package: %(name)s", name=p.name))
        for p in coupons.active_packages(db.session)]
    if not form.nonce.data:
        # One form, one issue: a double submit sends the same nonce, so issues once.
        form.nonce.data = secrets.token_urlsafe(12)
    return form


@bp.post("/members/<int:member_id>/coupons")
@staff_required(*EVERYONE)
def member_issue(member_id: int):
    form = quick_issue_form()
    if not form.validate_on_submit():
        abort(400)
    kind, _sep, raw_id = (form.offer.data or "").partition(":")
    quantity = form.quantity.data.strip()
    reason = (form.reason.data or "").strip()
    if kind not in ("t", "p") or not raw_id.isdecimal():
        flash(_("Choose a coupon or a package."), "error")
    elif not quantity.isdecimal():
        flash(_("Enter a whole number."), "error")
    elif not reason:
        flash(_("Say why you are giving this (it goes in the audit log)."), "error")
    else:
        target = {"template_id": int(raw_id)} if kind == "t" else {"package_id": int(raw_id)}
        try:
            coupons.issue(db.session, member_id=member_id, quantity=int(quantity),
                          source=coupons.Source("admin", reason=reason[:200]),
                          key=f"admin:{member_id}:{form.nonce.data}",
                          operator_id=current_staff().id, **target)
        except CouponError as e:
            flash(str(e), "error")
        else:
            flash(_("Issued."), "success")
    return redirect(url_for("admin.member_detail", member_id=member_id), 303)


# --- API clients (owners) ----------------------------------------------------------------

def _api_client_form() -> ApiClientForm:
    form = ApiClientForm()
    form.store.choices = [SelectChoice(s.code, f"{s.name} ({s.code})")
                          for s in members.stores(db.session)]
    return form


@bp.route("/api-clients", methods=["GET", "POST"])
@staff_required(Role.OWNER)
def api_client_list():
    form = _api_client_form()
    new_key = None
    status = shown_status()
    if form.validate_on_submit():
        try:
            client, new_key = api_services.create_client(
                db.session, name=form.name.data, store_code=form.store.data,
                channel=form.channel.data, operator_id=current_staff().id)
        except api_services.ApiClientError as e:
            form[e.field].errors = [str(e)] if e.field in form else []
            status = 422
        else:
            # Shown on this response only: the key is not stored, so it cannot be shown again.
            form = _api_client_form()
            status = 201
    return render("admin/api_clients.html", form=form, new_key=new_key, status=status,
                  clients=api_services.clients(db.session))


@bp.post("/api-clients/<int:client_id>/revoke")
@staff_required(Role.OWNER)
def api_client_revoke(client_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    api_services.revoke(db.session, client_id, operator_id=current_staff().id)
    flash(_("The key no longer works."), "success")
    return redirect(url_for("admin.api_client_list"), 303)
