"""Imports of physical gift card numbers (spec 2.5.4): staff fill in the template (card
number, PIN, face value), choose a physical product and upload it. Every row is checked;
when any row fails nothing is imported and the run keeps the failed rows (with the values
as given and why), for a file staff fix and upload again. Imported cards wait in stock
until a till sells them."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import InvalidOperation

from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.db import transaction
from portal.giftcards import cards
from portal.giftcards.errors import GiftCardError
from portal.giftcards.errors import GiftCardErrorCode as Code
from portal.giftcards.models import CardStatus, GiftCard, GiftCardImport, GiftCardProduct
from portal.imports import xlsx
from portal.money import Money
from portal.staff.models import StaffUser

MAX_ROWS = 20_000
CHUNK = 1_000                 # numbers per "which of these exist?" query and per insert
NUMBER_DIGITS = (8, 24)
PIN_DIGITS = (4, 8)
COLUMNS = (_l("Card number"), _l("PIN"), _l("Face value"))
LANGUAGES = ("en", "zh_Hans")  # a template downloaded in either language reads back


@dataclass
class _Row:
    row: int
    values: list[str]
    number: str = ""
    pin: str = ""
    face_minor: int = 0
    error: str = ""


@dataclass
class Run:
    """One import in the history, with who ran it and for which product."""

    run: GiftCardImport
    product: str
    operator: str | None

    @property
    def failed(self) -> int:
        return len(self.run.failed_rows)


def header() -> list[str]:
    return [str(c) for c in COLUMNS]


def _is_header(cells: Sequence[str]) -> bool:
    given = [c.strip().casefold() for c in list(cells)[:len(COLUMNS)]]
    for language in LANGUAGES:
        with force_locale(language):
            if given == [h.casefold() for h in header()]:
                return True
    return False


def physical_products(session: Session) -> list[GiftCardProduct]:
    return list(session.scalars(select(GiftCardProduct)
                                .where(GiftCardProduct.kind == "physical")
                                .order_by(GiftCardProduct.name, GiftCardProduct.id)))


def _product(session: Session, product_id: int | None) -> GiftCardProduct:
    product = session.get(GiftCardProduct, product_id) if product_id else None
    if product is None or product.kind != "physical":
        raise GiftCardError(Code.INVALID, _("Choose a physical gift card."),
                            field="product_id")
    return product


# --- one row ---------------------------------------------------------------------------------

def _digits(raw: str) -> str:
    return "".join(ch for ch in raw if ch not in " -\u00a0")


def _check_number(row: _Row, raw: str) -> None:
    if isinstance(raw, xlsx.InexactNumber):
        row.error = _("The card number was saved as a number and Excel kept only its first "
                      "15 digits: format the column as text and type it again.")
        return
    number = _digits(raw)
    low, high = NUMBER_DIGITS
    if not number:
        row.error = _("The card number is missing.")
    elif not number.isascii() or not number.isdecimal() or not low <= len(number) <= high:
        row.error = _("A card number is %(low)d to %(high)d digits.", low=low, high=high)
    else:
        row.number = number


def _check_pin(row: _Row, raw: str) -> None:
    pin = _digits(raw)
    low, high = PIN_DIGITS
    if pin and (not pin.isascii() or not pin.isdecimal() or not low <= len(pin) <= high):
        row.error = _("A PIN is %(low)d to %(high)d digits.", low=low, high=high)
    row.pin = pin


def _allowed(product: GiftCardProduct, minor: int) -> bool:
    if minor in (product.denominations or []):
        return True
    if product.custom_amount:
        return (product.custom_min_minor is None or minor >= product.custom_min_minor) \
            and (product.custom_max_minor is None or minor <= product.custom_max_minor)
    return not product.denominations


def _check_value(row: _Row, raw: str, product: GiftCardProduct) -> None:
    raw = raw.strip().replace(",", "")
    if not raw:
        return           # 0: the till sets the value when it sells the card
    try:
        minor = Money.parse(raw, product.currency).minor
    except (ValueError, InvalidOperation):
        row.error = _("Enter the face value as an amount such as 200 or 200.00.")
        return
    if minor <= 0:
        row.error = _("The face value must be more than 0 (leave it empty for the till to "
                      "set it).")
    elif not _allowed(product, minor):
        shown = ", ".join(str(Money(m, product.currency).amount)
                          for m in product.denominations)
        row.error = _("This gift card sells only at %(amounts)s.", amounts=shown)
    else:
        row.face_minor = minor


def _check_rows(sheet: xlsx.Sheet, product: GiftCardProduct) -> list[_Row]:
    rows = []
    for number, values in sheet.data:
        cells = (list(values) + ["", "", ""])[:3]
        row = _Row(row=number, values=[str(v) for v in values])
        _check_number(row, cells[0])
        if not row.error:
            _check_pin(row, cells[1])
        if not row.error:
            _check_value(row, cells[2], product)
        rows.append(row)
    return rows


def _check_duplicates(rows: list[_Row]) -> None:
    where: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        if row.number:
            where[row.number].append(row)
    for same in where.values():
        if len(same) > 1:
            listed = ", ".join(str(r.row) for r in same)
            for row in same:
                row.error = row.error or _("This card number is in the file more than once "
                                           "(rows %(rows)s).", rows=listed)


def _check_existing(session: Session, rows: list[_Row]) -> None:
    pending = [r for r in rows if r.number and not r.error]
    for start in range(0, len(pending), CHUNK):
        chunk = pending[start:start + CHUNK]
        taken = set(session.scalars(select(GiftCard.number).where(
            GiftCard.number.in_([r.number for r in chunk]))))
        for row in chunk:
            if row.number in taken:
                row.error = _("A gift card with this number already exists.")


def _failed(rows: list[_Row]) -> list[dict]:
    return [{"row": r.row, "values": r.values, "error": r.error} for r in rows if r.error]


# --- the run ---------------------------------------------------------------------------------

def import_file(session: Session, product_id: int | None, upload, *, filename: str,
                operator_id: int | None) -> GiftCardImport:
    """Read the uploaded template and import its cards into stock, all or none.

    Refuses the upload as a whole (GiftCardError, `field` "file" or "product_id", nothing
    recorded) when it cannot be read as the template. Otherwise returns the recorded run:
    `rows_ok` is the number of cards imported, 0 with `failed_rows` when any row failed."""
    product = _product(session, product_id)
    try:
        sheet = xlsx.read(upload, max_rows=MAX_ROWS)
    except xlsx.XlsxError as e:
        raise GiftCardError(Code.INVALID, str(e), field="file") from None
    if not sheet.rows or not _is_header(sheet.header):
        raise GiftCardError(Code.INVALID, _("The first row must be the template's header: "
                                            "%(columns)s.", columns=", ".join(header())),
                            field="file")
    if not sheet.data:
        raise GiftCardError(Code.INVALID, _("The file has no cards below the header."),
                            field="file")
    filename = (filename or "").strip()[-200:] or "import.xlsx"
    rows = _check_rows(sheet, product)
    _check_duplicates(rows)
    try:
        return _save(session, product, rows, filename, operator_id)
    except IntegrityError:
        # Another import took some of these numbers after we looked: look again, so the
        # failed rows say which (nothing of this run was written).
        session.rollback()
        _check_existing(session, rows)
        if not any(r.error for r in rows):
            for row in rows:
                row.error = _("Another import took these numbers at the same moment: "
                              "upload the file again.")
        return _save(session, product, rows, filename, operator_id)


def _save(session: Session, product: GiftCardProduct, rows: list[_Row], filename: str,
          operator_id: int | None) -> GiftCardImport:
    from portal.staff import services as staff

    with transaction(session):
        _check_existing(session, rows)
        failed = _failed(rows)
        run = GiftCardImport(product_id=product.id, filename=filename, rows_total=len(rows),
                             rows_ok=0 if failed else len(rows), failed_rows=failed,
                             operator_id=operator_id)
        session.add(run)
        session.flush()
        if not failed:
            for start in range(0, len(rows), CHUNK):
                session.execute(insert(GiftCard), [
                    {"product_id": product.id, "number": r.number,
                     "pin_hash": cards.hash_pin(r.pin) if r.pin else None,
                     "currency": product.currency, "face_minor": r.face_minor,
                     "price_minor": 0, "status": CardStatus.IN_STOCK.value, "physical": True,
                     "import_id": run.id} for r in rows[start:start + CHUNK]])
        staff.record(session, operator_id, "giftcard.import", run,
                     after={"product_id": product.id, "filename": filename,
                            "rows_total": run.rows_total, "rows_ok": run.rows_ok,
                            "rows_failed": len(failed)})
    return run


def history(session: Session, *, limit: int = 50) -> list[Run]:
    """The newest runs first, with product and operator names, in one query."""
    found = session.execute(
        select(GiftCardImport, GiftCardProduct.name, StaffUser.name)
        .join(GiftCardProduct, GiftCardProduct.id == GiftCardImport.product_id)
        .outerjoin(StaffUser, StaffUser.id == GiftCardImport.operator_id)
        .order_by(GiftCardImport.id.desc()).limit(limit))
    return [Run(run=run, product=product, operator=operator)
            for run, product, operator in found]


def get(session: Session, run_id: int) -> GiftCardImport | None:
    return session.get(GiftCardImport, run_id)


# --- the files staff download -------------------------------------------------------------

def template_sheets() -> list[xlsx.SheetSpec]:
    """The template in the current language: an empty sheet to fill in (columns formatted
    as text, so long numbers and PINs with leading zeros survive), and instructions with an
    example (kept off the first sheet, so it is never imported by mistake)."""
    low, high = NUMBER_DIGITS
    pin_low, pin_high = PIN_DIGITS
    notes = [
        [_("Fill in one card per row on the first sheet, below its header. Keep the header "
           "as it is.")],
        [_("Card number: required, %(low)d to %(high)d digits; spaces and dashes are "
           "ignored.", low=low, high=high)],
        [_("PIN: optional, %(low)d to %(high)d digits.", low=pin_low, high=pin_high)],
        [_("Face value: optional, such as 200 or 200.00. It must be one of the gift card's "
           "amounts; leave it empty for the till to set it when it sells the card.")],
        [_("If any row has a problem, nothing is imported: download the failed rows, fix "
           "them in your file and upload the whole file again.")],
        [_("At most %(n)s rows per file.", n=f"{MAX_ROWS:,}")],
        [],
        [_("Example")],
        header(),
        ["6200 0000 0000 0001", "123456", "200"],
    ]
    return [xlsx.SheetSpec(name=_("Cards"), header=header(), rows=[], widths=(26, 12, 14),
                           text_columns=(0, 1, 2)),
            xlsx.SheetSpec(name=_("Instructions"), header=[_("How to fill in the template")],
                           rows=notes, widths=(100,))]


def failed_sheet(run: GiftCardImport) -> xlsx.SheetSpec:
    """The failed rows as given, in the template's columns, then why and where."""
    return xlsx.SheetSpec(
        name=_("Failed rows"), header=[*header(), _("Error"), _("Row")],
        rows=([*(list(f["values"]) + ["", "", ""])[:3], f["error"], f["row"]]
              for f in run.failed_rows),
        widths=(26, 12, 14, 70, 8), text_columns=(0, 1, 2))
