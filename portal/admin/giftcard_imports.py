"""Gift card imports and exports in the merchant area (spec 2.5.4–2.5.5): the import page
(template, upload, history, failed rows) and the Excel exports of the sold cards and the
transactions lists, with the lists' own filters."""
from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import SelectField

from portal import clock
from portal.admin.giftcards import card_state_label, transaction_kind_label
from portal.admin.views import MANAGERS, bp
from portal.db import db
from portal.giftcards import exports, imports
from portal.giftcards import staff as giftcard_staff
from portal.giftcards.errors import GiftCardError
from portal.giftcards.models import TransactionKind
from portal.imports import xlsx
from portal.members.models import mask
from portal.money import Money
from portal.web.auth import current_staff, staff_required
from portal.web.render import render


class ImportForm(FlaskForm):
    product_id = SelectField(_l("Gift card"), choices=[], validate_choice=False,
                             render_kw={"required": True})
    file = FileField(_l("Filled-in template (.xlsx)"),
                     render_kw={"accept": ".xlsx," + xlsx.MIME, "required": True})


def _page(form: ImportForm, status: int = 200):
    products = imports.physical_products(db.session)
    form.product_id.choices = [("", _("Choose…"))] + [(str(p.id), p.name) for p in products]
    return render("admin/giftcards/import.html", form=form, products=products,
                  runs=imports.history(db.session), max_rows=imports.MAX_ROWS,
                  status=status)


@bp.route("/giftcards/import", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def giftcard_import():
    form = ImportForm()
    if not form.validate_on_submit():
        return _page(form, status=422 if request.method == "POST" else 200)
    upload = form.file.data
    if not upload or not upload.filename:
        form.file.errors = [_("Choose the filled-in template to upload.")]
        return _page(form, status=422)
    product_id = int(form.product_id.data) if str(form.product_id.data).isdecimal() else None
    try:
        run = imports.import_file(db.session, product_id, upload.stream,
                                  filename=upload.filename, operator_id=current_staff().id)
    except GiftCardError as e:
        db.session.rollback()
        field = form.product_id if e.details.get("field") == "product_id" else form.file
        field.errors = [str(e)]
        return _page(form, status=422)
    if run.rows_ok:
        flash(_("%(n)s cards are in stock, ready to be sold at the till.",
                n=f"{run.rows_ok:,}"), "success")
    else:
        flash(_("Nothing was imported: %(n)s rows have problems. Download the failed rows, "
                "fix them in your file and upload the whole file again.",
                n=f"{len(run.failed_rows):,}"), "error")
    return redirect(url_for("admin.giftcard_import"), 303)


@bp.get("/giftcards/import/template.xlsx")
@staff_required(*MANAGERS)
def giftcard_import_template():
    return xlsx.response("giftcard-numbers-template.xlsx", imports.template_sheets())


@bp.get("/giftcards/import/<int:run_id>/failed.xlsx")
@staff_required(*MANAGERS)
def giftcard_import_failed(run_id: int):
    run = imports.get(db.session, run_id)
    if run is None or not run.failed_rows:
        abort(404)
    return xlsx.response(f"failed-rows-{run.id}.xlsx", imports.failed_sheet(run))


# --- exports -------------------------------------------------------------------------------

def _major(minor: int, currency: str):
    return Money(minor, currency).amount


def _local(moment):
    return clock.local(moment) if moment else None


@bp.get("/giftcards/sold/export.xlsx")
@staff_required(*MANAGERS)
def giftcard_sold_export():
    # The same reading of the filters as the list's own page.
    number = request.args.get("number", "").strip()[:64]
    phone = request.args.get("phone", "").strip()[:64]
    status = request.args.get("status", "")
    status = status if status in giftcard_staff.STATES else ""
    exports.record(db.session, current_staff().id, "sold",
                   {"number": number, "phone": phone, "status": status})
    rows = ([row.card.number, row.card.product.name,
             _("Physical") if row.card.physical else _("Electronic"), card_state_label(row.state),
             _major(row.card.face_minor, row.card.currency),
             _major(row.balance, row.card.currency),
             _major(row.card.price_minor, row.card.currency), row.card.currency,
             row.card.buyer_name, mask(row.card.buyer_phone) if row.card.buyer_phone else "",
             row.holder.display_name if row.holder else "",
             _local(row.card.activated_at or row.card.created_at),
             _local(row.card.expires_at)]
            for row in exports.sold_cards(db.session, number=number or None,
                                          phone=phone or None, status=status or None))
    header = [_("Card number"), _("Gift card"), _("Card type"), _("Status"), _("Face value"),
              _("Balance"), _("Price paid"), _("Currency"), _("Buyer name"), _("Buyer phone"),
              _("Holder"), _("Sold"), _("Expires")]
    stamp = clock.local().strftime("%Y%m%d-%H%M")
    return xlsx.response(f"giftcards-sold-{stamp}.xlsx", xlsx.SheetSpec(
        name=_("Sold gift cards"), header=header, rows=rows,
        widths=(22, 24, 10, 12, 12, 12, 12, 9, 20, 16, 20, 17, 17), text_columns=(0,)))


@bp.get("/giftcards/transactions/export.xlsx")
@staff_required(*MANAGERS)
def giftcard_transactions_export():
    kind = request.args.get("kind", "")
    kind = kind if kind in set(TransactionKind) else ""
    number = request.args.get("number", "").strip()[:64]
    exports.record(db.session, current_staff().id, "transactions",
                   {"kind": kind, "number": number})
    rows = ([_local(row.tx.created_at), row.number, transaction_kind_label(row.tx.kind),
             _major(row.tx.amount_minor, row.currency),
             _major(row.tx.balance_after, row.currency), row.currency, row.store or "",
             row.operator or "", row.tx.note or ""]
            for row in exports.transactions(db.session, kind=kind or None,
                                            number=number or None))
    header = [_("When"), _("Card number"), _("Type"), _("Amount"), _("Balance after"),
              _("Currency"), _("Store"), _("Operator"), _("Note")]
    stamp = clock.local().strftime("%Y%m%d-%H%M")
    return xlsx.response(f"giftcard-transactions-{stamp}.xlsx", xlsx.SheetSpec(
        name=_("Transactions"), header=header, rows=rows,
        widths=(17, 22, 18, 12, 12, 9, 20, 20, 40), text_columns=(1,)))


@bp.get("/giftcards/exports")
@staff_required(*MANAGERS)
def giftcard_export_history():
    return render("admin/giftcards/exports.html", entries=exports.history(db.session))
