"""Gift card products in the merchant area: the list, create and edit, copy, and
activate / deactivate (spec 2.5.2–2.5.3)."""
from __future__ import annotations

from decimal import Decimal

from flask import abort, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.widgets import CheckboxInput, ListWidget

from portal.admin.reading import FormReader as _Reader
from portal.admin.views import MANAGERS, bp
from portal.db import db
from portal.giftcards import products, purchase, refunds, spending
from portal.giftcards import staff as giftcard_staff
from portal.giftcards.errors import GiftCardError, GiftCardErrorCode
from portal.giftcards.models import ProductStatus, TransactionKind
from portal.members import services as members
from portal.members.models import mask
from portal.money import Money
from portal.web.auth import current_staff, staff_required
from portal.web.filters import money
from portal.web.forms import EmptyForm, apply_error, shown_status
from portal.web.render import render
from portal.web.uploads import UploadError, save_public_image

# The service speaks in stored names; the form in what people type.
FORM_NAMES = {"discount_bp": "discount", "custom_min_minor": "custom_min",
              "custom_max_minor": "custom_max", "design_image": "design_upload"}
UPLOADED = "uploaded"    # the design radio's value for "the image uploaded before"


def _checkboxes(label):
    return SelectMultipleField(label, choices=[], validate_choice=False,
                               widget=ListWidget(prefix_label=False),
                               option_widget=CheckboxInput())


class GiftCardProductForm(FlaskForm):
    """A product's fields as typed; amounts in major units, the discount as "10" (%).
    The denominations are read from the request by the view (repeated `denominations`)."""

    kind = RadioField(_l("Card type"), choices=[
        SelectChoice("electronic", _l("Electronic card")),
        SelectChoice("physical", _l("Physical card"))], default="electronic",
        validate_choice=False)
    name = StringField(_l("Gift card name"), render_kw={"maxlength": 120, "required": True})
    currency = SelectField(_l("Currency"), choices=[], validate_choice=False)
    store_ids = _checkboxes(_l("Stores where it can be spent"))
    design = RadioField(_l("Design"), choices=[], validate_choice=False)
    design_upload = FileField(_l("Or upload your own design"),
                              render_kw={"accept": "image/png,image/jpeg"})
    discount = StringField(_l("Purchase discount, %"), render_kw={"inputmode": "decimal"})
    custom_amount = BooleanField(_l("Allow a custom amount"))
    custom_min = StringField(_l("Least amount"), render_kw={"inputmode": "decimal"})
    custom_max = StringField(_l("Most amount"), render_kw={"inputmode": "decimal"})
    buyer_name = SelectField(_l("Buyer name"), choices=[], validate_choice=False)
    buyer_phone = SelectField(_l("Buyer phone number"), choices=[], validate_choice=False)
    buyer_email = SelectField(_l("Buyer email"), choices=[], validate_choice=False)
    buyer_card_number = SelectField(_l("Card number (POS sales only)"), choices=[],
                                    validate_choice=False)
    validity_days = StringField(_l("Valid for (days after purchase)"),
                                render_kw={"inputmode": "numeric"})
    channels = _checkboxes(_l("Sales channels"))
    pos_recharge = BooleanField(_l("Allow recharging at the POS"))
    terms = TextAreaField(_l("Terms of use"), render_kw={"rows": 4})


class CopyForm(FlaskForm):
    new_name = StringField(_l("Name of the copy"), render_kw={"maxlength": 120})


def kind_label(kind: str) -> str:
    return {"electronic": _("Electronic"), "physical": _("Physical")}.get(kind, kind)


def status_label(status: str) -> str:
    return {"draft": _("Draft"), "active": _("On sale"),
            "inactive": _("Inactive")}.get(status, status)


def channel_label(channel: str) -> str:
    return {"POS": _("POS"), "ONLINE": _("Online")}.get(channel, channel)


@bp.app_context_processor
def _giftcard_labels():
    return {"giftcard_kind_label": kind_label, "giftcard_status_label": status_label,
            "giftcard_channel_label": channel_label,
            "giftcard_design_name": products.design_name,
            "giftcard_is_builtin": products.is_builtin}


@bp.get("/giftcards")
@staff_required(*MANAGERS)
def giftcard_list():
    status = request.args.get("status", "")
    status = status if status in set(ProductStatus) else ""
    return render("admin/giftcards/list.html", block="results",
                  rows=products.product_list(db.session, status or None),
                  chosen_status=status, statuses=list(ProductStatus))


# --- parsing the form -----------------------------------------------------------------------

def _denomination_inputs() -> list[str]:
    return [v.strip() for v in request.form.getlist("denominations")]


def _input(form: GiftCardProductForm, currency: str) -> dict:
    read = _Reader(currency)
    amounts = [read.money(v, "denominations") for v in _denomination_inputs() if v]
    design = form.design.data or ""
    return {
        "kind": form.kind.data or "", "name": form.name.data or "",
        "currency": form.currency.data or currency,
        "store_ids": [int(v) for v in form.store_ids.data or [] if str(v).isdecimal()],
        "design": "" if design == UPLOADED else design,
        "denominations": amounts,
        "discount_bp": read.percent(form.discount.data, "discount_bp"),
        "custom_amount": bool(form.custom_amount.data),
        "custom_min_minor": read.money(form.custom_min.data, "custom_min_minor"),
        "custom_max_minor": read.money(form.custom_max.data, "custom_max_minor"),
        "buyer_fields": {"name": form.buyer_name.data, "phone": form.buyer_phone.data,
                         "email": form.buyer_email.data,
                         "card_number": form.buyer_card_number.data},
        "validity_days": read.whole(form.validity_days.data, "validity_days"),
        "channels": list(form.channels.data or []),
        "pos_recharge": bool(form.pos_recharge.data), "terms": form.terms.data or "",
        "errors": read.errors,
    }


def _keep_uploaded(data: dict, form: GiftCardProductForm, product) -> None:
    """"The image uploaded before" stays the design when it is still chosen."""
    if form.design.data == UPLOADED and product is not None \
            and not products.is_builtin(product.design):
        data["design"] = product.design


def _upload(form: GiftCardProductForm, data: dict) -> None:
    upload = form.design_upload.data
    if upload and getattr(upload, "filename", ""):
        try:
            data["design_image"] = save_public_image(upload)
        except UploadError as e:
            data["errors"]["design_image"] = str(e)


# --- showing the form -----------------------------------------------------------------------

def _choices(form: GiftCardProductForm, product=None) -> None:
    default = current_app.config["DEFAULT_CURRENCY"]
    currencies = sorted({default, *(p.currency for p in members.plans(db.session))})
    form.currency.choices = [SelectChoice(c, c) for c in currencies]
    form.store_ids.choices = [SelectChoice(str(s.id), s.name)
                              for s in products.store_choices(db.session)]
    designs = [SelectChoice(k, str(v)) for k, v in products.BUILTIN_DESIGNS.items()]
    if product is not None and not products.is_builtin(product.design):
        designs.append(SelectChoice(UPLOADED, _("The uploaded image")))
    form.design.choices = designs
    modes = [SelectChoice("required", _("Required")), SelectChoice("optional", _("Optional")),
             SelectChoice("off", _("Not asked"))]
    for name in ("buyer_name", "buyer_phone", "buyer_email", "buyer_card_number"):
        form[name].choices = modes
    form.channels.choices = [SelectChoice("POS", _("POS (at the till)")),
                             SelectChoice("ONLINE", _("Online"))]


def _major(minor: int | None, currency: str) -> str:
    return str(Money(minor, currency).amount) if minor is not None else ""


def _pct(bp: int | None) -> str:
    if not bp:
        return ""
    return format(Decimal(bp) / 100, "f").rstrip("0").rstrip(".") if bp % 100 else str(bp // 100)


def _fill(form: GiftCardProductForm, p) -> list[str]:
    """The form as the product is; returns the denomination inputs."""
    form.kind.data, form.name.data, form.currency.data = p.kind, p.name, p.currency
    form.store_ids.data = [str(i) for i in p.store_ids or []]
    form.design.data = p.design if products.is_builtin(p.design) else UPLOADED
    form.discount.data = _pct(p.discount_bp)
    form.custom_amount.data = p.custom_amount
    form.custom_min.data = _major(p.custom_min_minor, p.currency)
    form.custom_max.data = _major(p.custom_max_minor, p.currency)
    buyer = {**products.DEFAULT_BUYER_FIELDS, **(p.buyer_fields or {})}
    for key in products.BUYER_FIELDS:
        form[f"buyer_{key}"].data = buyer[key]
    form.validity_days.data = "" if p.validity_days is None else str(p.validity_days)
    form.channels.data = list(p.channels or [])
    form.pos_recharge.data, form.terms.data = p.pos_recharge, p.terms
    return [_major(v, p.currency) for v in p.denominations or []]


def _defaults(form: GiftCardProductForm) -> None:
    form.kind.data = "electronic"
    form.currency.data = current_app.config["DEFAULT_CURRENCY"]
    form.design.data = "teal"
    for key, mode in products.DEFAULT_BUYER_FIELDS.items():
        form[f"buyer_{key}"].data = mode
    form.channels.data = ["POS", "ONLINE"]


def _page(form, product=None, denominations=None, copy_form=None, errors=None, status=200):
    slots = list(denominations or [])
    slots += [""] * max(0, products.MAX_DENOMINATIONS - len(slots))
    return render("admin/giftcards/edit.html", form=form, product=product,
                  denominations=slots, copy_form=copy_form or CopyForm(),
                  status_form=EmptyForm(), designs=products.BUILTIN_DESIGNS,
                  denominations_error=(errors or {}).get("denominations"), status=status)


def _apply(form: GiftCardProductForm, e: GiftCardError) -> None:
    errors = {FORM_NAMES.get(k, k): v for k, v in e.details.get("errors", {}).items()}
    # The denominations are shown by the template; anything else without a field of its
    # own goes to the notice at the top.
    own = {k: v for k, v in errors.items() if k in form._fields}
    if own:
        apply_error(form, type("Refusal", (), {"details": {"errors": own}})())
    if not errors or set(errors) - set(own) - {"denominations"}:
        form.form_errors.append(str(e))


def _save(form: GiftCardProductForm, product=None):
    data = _input(form, product.currency if product else
                  form.currency.data or current_app.config["DEFAULT_CURRENCY"])
    _keep_uploaded(data, form, product)
    try:
        if data["errors"]:
            # Unreadable input: the service reports it with its own findings (and raises)
            # before an image is stored for nothing.
            products.clean(db.session, data, product)
        _upload(form, data)
        if product is None:
            return products.create(db.session, data, operator_id=current_staff().id,
                                   activate=request.form.get("action") == "activate"), None
        return products.update(db.session, product.id, data,
                               operator_id=current_staff().id), None
    except GiftCardError as e:
        db.session.rollback()
        if e.code == GiftCardErrorCode.NOT_FOUND:
            abort(404)
        _apply(form, e)
        return None, {FORM_NAMES.get(k, k): v for k, v in e.details.get("errors", {}).items()}


@bp.route("/giftcards/new", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def giftcard_new():
    form = GiftCardProductForm()
    _choices(form)
    if request.method == "GET":
        _defaults(form)
    if form.validate_on_submit():
        product, errors = _save(form)
        if product is None:
            return _page(form, denominations=_denomination_inputs(), errors=errors,
                         status=422)
        flash(_("The gift card is on sale.") if product.status == ProductStatus.ACTIVE
              else _("The gift card is saved as a draft."), "success")
        return redirect(url_for("admin.giftcard_edit", product_id=product.id), 303)
    return _page(form, denominations=_denomination_inputs(), status=shown_status())


@bp.route("/giftcards/<int:product_id>", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def giftcard_edit(product_id: int):
    product = products.get(db.session, product_id)
    if product is None:
        abort(404)
    form = GiftCardProductForm()
    _choices(form, product)
    denominations = _fill(form, product) if request.method == "GET" \
        else _denomination_inputs()
    if form.validate_on_submit():
        saved, errors = _save(form, product)
        if saved is None:
            return _page(form, products.get(db.session, product_id), denominations,
                         errors=errors, status=422)
        flash(_("The gift card is saved."), "success")
        return redirect(url_for("admin.giftcard_edit", product_id=product_id), 303)
    return _page(form, product, denominations, status=shown_status())


@bp.post("/giftcards/<int:product_id>/copy")
@staff_required(*MANAGERS)
def giftcard_copy(product_id: int):
    product = products.get(db.session, product_id)
    if product is None:
        abort(404)
    copy_form = CopyForm()
    if not copy_form.validate_on_submit():
        abort(400)
    try:
        new = products.copy(db.session, product_id, copy_form.new_name.data or "",
                            operator_id=current_staff().id)
    except GiftCardError as e:
        db.session.rollback()
        copy_form.new_name.errors = [e.details.get("errors", {}).get("name", str(e))]
        form = GiftCardProductForm(formdata=None)
        _choices(form, product)
        return _page(form, product, _fill(form, product), copy_form=copy_form, status=422)
    flash(_("The copy is saved as a draft: check it, then activate it."), "success")
    return redirect(url_for("admin.giftcard_edit", product_id=new.id), 303)


@bp.post("/giftcards/<int:product_id>/status")
@staff_required(*MANAGERS)
def giftcard_status(product_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    action = request.form.get("action", "")
    try:
        products.set_status(db.session, product_id, action, operator_id=current_staff().id)
    except GiftCardError as e:
        if e.code == GiftCardErrorCode.NOT_FOUND:
            abort(404)
        flash(str(e), "error")
    else:
        flash({"activate": _("The gift card is on sale."),
               "deactivate": _("The gift card is off sale. Cards already sold stay valid.")
               }[action], "success")
    if request.form.get("back") == "list":
        return redirect(url_for("admin.giftcard_list"), 303)
    return redirect(url_for("admin.giftcard_edit", product_id=product_id), 303)


# --- sold cards and transactions (spec 2.5.4–2.5.5) ----------------------------------------

def card_state_label(state: str) -> str:
    return {"active": _("Active"), "frozen": _("Frozen"), "expired": _("Expired"),
            "refunded": _("Refunded"), "pending": _("Awaiting payment"),
            "cancelled": _("Cancelled"), "in_stock": _("In stock")}.get(state, state)


def transaction_kind_label(kind: str) -> str:
    return {"activation": _("Activation"), "recharge": _("Recharge"),
            "consumption": _("Consumption"), "refund": _("Refund of a charge"),
            "card_refund": _("Card refunded"), "freeze": _("Frozen"),
            "restore": _("Restored")}.get(kind, kind)


@bp.app_context_processor
def _sold_giftcard_labels():
    return {"giftcard_card_state_label": card_state_label,
            "giftcard_transaction_label": transaction_kind_label,
            "giftcard_mask": mask}


@bp.get("/giftcards/sold")
@staff_required(*MANAGERS)
def giftcard_sold_list():
    number = request.args.get("number", "").strip()
    phone = request.args.get("phone", "").strip()
    status = request.args.get("status", "")
    status = status if status in giftcard_staff.STATES else ""
    rows = giftcard_staff.sold_cards(db.session, number=number or None, phone=phone or None,
                                     status=status or None,
                                     before_id=request.args.get("before", type=int))
    return render("admin/giftcards/sold.html", block="results", rows=rows, number=number,
                  phone=phone, chosen=status, states=giftcard_staff.STATES)


def _sold_detail(card_id: int, *, refund_error: str | None = None, reason: str = "",
                 status: int = 200):
    detail = giftcard_staff.card_detail(db.session, card_id)
    if detail is None or detail.card.status in giftcard_staff.HIDDEN:
        abort(404)
    return render("admin/giftcards/sold_detail.html", d=detail, card=detail.card,
                  form=EmptyForm(), refund=refunds.quote(db.session, detail.card),
                  refund_error=refund_error, reason=reason, status=status)


@bp.get("/giftcards/sold/<int:card_id>")
@staff_required(*MANAGERS)
def giftcard_sold_detail(card_id: int):
    return _sold_detail(card_id)


def _card_action(card_id: int, action):
    if not EmptyForm().validate_on_submit():
        abort(400)
    reason = request.form.get("reason", "")
    try:
        action(db.session, card_id, operator_id=current_staff().id, reason=reason)
    except GiftCardError as e:
        db.session.rollback()
        if e.code == GiftCardErrorCode.NOT_FOUND:
            abort(404)
        flash(str(e), "error")
        return None
    return True


@bp.post("/giftcards/sold/<int:card_id>/freeze")
@staff_required(*MANAGERS)
def giftcard_sold_freeze(card_id: int):
    if _card_action(card_id, spending.freeze):
        flash(_("The gift card is frozen: it cannot be spent until restored."), "success")
    return redirect(url_for("admin.giftcard_sold_detail", card_id=card_id), 303)


@bp.post("/giftcards/sold/<int:card_id>/restore")
@staff_required(*MANAGERS)
def giftcard_sold_restore(card_id: int):
    if _card_action(card_id, spending.restore):
        flash(_("The gift card is restored: it can be spent again."), "success")
    return redirect(url_for("admin.giftcard_sold_detail", card_id=card_id), 303)


@bp.post("/giftcards/sold/<int:card_id>/resend")
@staff_required(*MANAGERS)
def giftcard_sold_resend(card_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        purchase.resend(db.session, card_id, operator_id=current_staff().id)
    except purchase.PurchaseError as e:
        db.session.rollback()
        flash(str(e), "error")
    else:
        flash(_("The link is sent to the recipient again."), "success")
    return redirect(url_for("admin.giftcard_sold_detail", card_id=card_id), 303)


@bp.post("/giftcards/sold/<int:card_id>/refund")
@staff_required(*MANAGERS)
def giftcard_sold_refund(card_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    reason = request.form.get("reason", "")
    try:
        done = refunds.refund_card(db.session, card_id, operator_id=current_staff().id,
                                   reason=reason)
    except GiftCardError as e:
        db.session.rollback()
        if e.code == GiftCardErrorCode.NOT_FOUND:
            abort(404)
        return _sold_detail(card_id, refund_error=str(e), reason=reason, status=422)
    if done.online:
        flash(_("The gift card is refunded: %(amount)s goes back to the buyer's payment.",
                amount=money(done.online, done.currency)),
              "success")
    if done.at_till:
        flash(_("Pay %(amount)s back to the buyer at the till: the card is closed.",
                amount=money(done.at_till, done.currency)),
              "success")
    return redirect(url_for("admin.giftcard_sold_detail", card_id=card_id), 303)


@bp.get("/giftcards/transactions")
@staff_required(*MANAGERS)
def giftcard_transactions():
    kind = request.args.get("kind", "")
    kind = kind if kind in set(TransactionKind) else ""
    number = request.args.get("number", "").strip()
    rows = giftcard_staff.transactions(db.session, kind=kind or None, number=number or None,
                                       before_id=request.args.get("before", type=int))
    return render("admin/giftcards/transactions.html", block="results", rows=rows,
                  chosen=kind, number=number, kinds=list(TransactionKind))
