"""Excel in and out, safely.

In: an upload is checked before anything parses it (its size; that it is a zip; the real
uncompressed size, ratio and entry count of the zip, measured by inflating it, since a
zip's headers can lie) and read with python-calamine into rows of strings, up to a row cap.
Out: XlsxWriter in constant-memory mode, every text cell written as a string (`write`
would turn "=..." into a live formula) and text a spreadsheet would still take for a
formula ("=", "+", "-", "@", tab, CR, NUL first) given a leading apostrophe.
"""
from __future__ import annotations

import os
import re
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from io import BytesIO

from flask import send_file
from flask_babel import gettext as _
from python_calamine import CalamineError, CalamineWorkbook

MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_BYTES = 5 * 1024 * 1024            # the upload itself
MAX_UNZIPPED = 60 * 1024 * 1024        # all its entries, inflated
MAX_RATIO = 100                        # inflated / compressed, over the whole zip
MAX_ENTRIES = 200                      # an ordinary workbook has 10 to 30
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\0")
# A double holds every whole number below 2**53 exactly; past it, digits were lost.
EXACT_BELOW = 2 ** 53


# A cell's formula: <f>…</f>, <f t="shared" …/>, or the same with a namespace prefix
# (<x:f>, as some libraries write). One pattern scans a 50 MB sheet in half the time of
# looking for each form in turn; the prefixed form is looked for only in a piece holding
# ":f" at all (text in a cell may, and is not a formula).
_FORMULA = re.compile(rb"<f[\s/>]")
_PREFIXED_FORMULA = re.compile(rb"<[A-Za-z_][\w.-]{0,15}:f[\s/>]")
# The longest tag either finds: the bytes across two pieces looked at for one.
_FORMULA_TAG_MAX = 20


def _has_formula(piece: bytes) -> bool:
    return bool(_FORMULA.search(piece)
                or (b":f" in piece and _PREFIXED_FORMULA.search(piece)))


class XlsxError(ValueError):
    """The upload is not a workbook we will read; the message is for people."""


class InexactNumber(str):
    """A cell stored as a number too large to keep all its digits (a long card number
    typed into a cell not formatted as text): its text is what the file holds, which may
    not be what was typed."""


@dataclass
class Sheet:
    """The first sheet's non-empty rows as text, each with its row number in Excel."""

    rows: list[tuple[int, list[str]]]

    @property
    def header(self) -> list[str]:
        return self.rows[0][1] if self.rows else []

    @property
    def data(self) -> list[tuple[int, list[str]]]:
        return self.rows[1:]


def _check_zip(data: bytes) -> None:
    _check_archive(BytesIO(data), len(data))


def _check_archive(source, size: int, *, max_unzipped: int = MAX_UNZIPPED,
                   refuse_formulas: bool = False) -> None:
    """`source` (a path or a binary file) is a zip whose entries, inflated, stay within the
    limits; with `refuse_formulas`, its sheets hold no formula (an `<f>` element)."""
    if not zipfile.is_zipfile(source):
        raise XlsxError(_("This file is not an Excel workbook (.xlsx)."))
    too_big = XlsxError(_("This workbook is too large or too compressed to read safely."))
    formulas = False
    try:
        with zipfile.ZipFile(source) as archive:
            entries = archive.infolist()
            if len(entries) > MAX_ENTRIES:
                raise too_big
            inflated = 0
            for entry in entries:
                is_sheet = refuse_formulas and entry.filename.startswith("xl/worksheets/")
                tail = b""
                with archive.open(entry) as stream:
                    while chunk := stream.read(64 * 1024):
                        inflated += len(chunk)
                        if inflated > max_unzipped or inflated > MAX_RATIO * size:
                            raise too_big
                        if is_sheet and not formulas:
                            # The tail of the previous chunk: a tag may straddle the two.
                            seam = tail + chunk[:_FORMULA_TAG_MAX - 1]
                            formulas = _has_formula(chunk) or _has_formula(seam)
                            tail = chunk[-(_FORMULA_TAG_MAX - 1):]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError,
            EOFError):
        raise XlsxError(_("This file is not an Excel workbook (.xlsx).")) from None
    if formulas:
        raise XlsxError(_("The workbook has formulas. Copy the sheet and paste it back as "
                          "values only, then upload it again."))


def text(value) -> str:
    """A cell as calamine gives it, as the text a person typed: 6200000000000001.0 is
    "6200000000000001", 200.5 is "200.5", a date is ISO."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer():
            digits = str(int(value))
            return digits if abs(value) < EXACT_BELOW else InexactNumber(digits)
        return format(Decimal(repr(value)), "f")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value).strip()


def read(upload, *, max_rows: int, max_bytes: int = MAX_BYTES) -> Sheet:
    """The first sheet of an uploaded .xlsx (a file-like object), header row included;
    XlsxError when it is too big, not a workbook, or has more than `max_rows` data rows."""
    data = upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise XlsxError(_("The file is larger than %(mb)d MB.", mb=max_bytes // 2 ** 20))
    if not data:
        raise XlsxError(_("The file is empty."))
    _check_zip(data)
    try:
        book = CalamineWorkbook.from_filelike(BytesIO(data))
        if not book.sheet_names:
            raise XlsxError(_("The workbook has no sheets."))
        sheet = book.get_sheet_by_index(0)
        first_row, first_col = sheet.start or (0, 0)
        rows: list[tuple[int, list[str]]] = []
        for offset, cells in enumerate(sheet.iter_rows()):
            values = [""] * first_col + [text(v) for v in cells]
            while values and values[-1] == "":
                values.pop()
            if not values:
                continue
            if len(rows) > max_rows:      # the header plus max_rows rows are allowed
                raise XlsxError(_("The file has more than %(n)s rows: split it into smaller "
                                  "files.", n=f"{max_rows:,}"))
            rows.append((first_row + offset + 1, values))
    except XlsxError:
        raise
    except (CalamineError, ValueError, TypeError):
        # Password-protected, broken XML, an old .xls renamed: all unreadable to us.
        raise XlsxError(_("This file is not an Excel workbook (.xlsx).")) from None
    return Sheet(rows=rows)


def check_file(path, *, max_bytes: int = MAX_BYTES, max_unzipped: int = MAX_UNZIPPED,
               refuse_formulas: bool = False) -> None:
    """The guards of `read` for a workbook saved on disk, before anything parses it."""
    size = os.path.getsize(path)
    if size > max_bytes:
        raise XlsxError(_("The file is larger than %(mb)d MB.", mb=max_bytes // 2 ** 20))
    if not size:
        raise XlsxError(_("The file is empty."))
    _check_archive(path, size, max_unzipped=max_unzipped, refuse_formulas=refuse_formulas)


@dataclass
class Rows:
    """The first sheet of a workbook on disk: its header, and its other non-empty rows as
    text with their row numbers in Excel, converted one at a time as they are taken. Text
    cells are as typed, surrounding spaces included."""

    header: list[str]
    rows: Iterator[tuple[int, list[str]]]
    size: int          # rows below the header by the sheet's extent: blank ones count


_TEXT_ONLY = frozenset({str})


def _cells(sheet) -> Iterator[tuple[int, list[str]]]:
    first_row, first_col = sheet.start or (0, 0)
    pad = [""] * first_col
    for offset, cells in enumerate(sheet.iter_rows()):
        # Most rows are all text, and those are kept as read: the row checks strip what
        # they use. Only the other cells are turned into the text a person typed.
        values = cells if set(map(type, cells)) <= _TEXT_ONLY else [
            v if type(v) is str else text(v) for v in cells]
        if not "".join(values).strip():
            continue
        if pad:
            values = pad + values
        while values[-1] == "":
            values.pop()
        yield first_row + offset + 1, values


def open_rows(path, *, max_rows: int) -> Rows:
    """The first sheet of a workbook already checked by `check_file`; XlsxError when it
    cannot be read or has more than `max_rows` rows below its header. Only the sheet's
    cells stay in memory (in calamine's compact form), never all of its rows as text."""
    try:
        sheet = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0)
        rows = _cells(sheet)
        first = next(rows, None)
        # The sheet's extent bounds its rows; count them only when blank rows may be inside.
        if sheet.height - 1 > max_rows and sum(1 for _ in _cells(sheet)) - 1 > max_rows:
            raise XlsxError(_("The file has more than %(n)s rows: split it into smaller "
                              "files.", n=f"{max_rows:,}"))
    except XlsxError:
        raise
    except (CalamineError, ValueError, TypeError, IndexError):
        raise XlsxError(_("This file is not an Excel workbook (.xlsx).")) from None
    return Rows(header=first[1] if first else [], rows=rows,
                size=max(0, sheet.height - 1))


# --- writing -------------------------------------------------------------------------------

def safe(value: str) -> str:
    """Text a spreadsheet will show as text, never run as a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


@dataclass
class SheetSpec:
    """One sheet to write: its name, header and rows (any iterable: a generator streams)."""

    name: str
    header: Sequence[str]
    rows: Iterable[Sequence]
    widths: Sequence[int] = ()
    text_columns: Sequence[int] = ()    # typed into later by people: formatted as text


class _Writer:
    def __init__(self, book):
        self.bold = book.add_format({"bold": True})
        self.when = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
        self.day = book.add_format({"num_format": "yyyy-mm-dd"})
        self.as_text = book.add_format({"num_format": "@"})
        self._decimals = {}
        self._book = book

    def decimals(self, places: int):
        if places not in self._decimals:
            pattern = "#,##0" + ("." + "0" * places if places > 0 else "")
            self._decimals[places] = self._book.add_format({"num_format": pattern})
        return self._decimals[places]

    def cell(self, sheet, row: int, col: int, value) -> None:
        if value is None or value == "":
            return
        if isinstance(value, bool):
            sheet.write_boolean(row, col, value)
        elif isinstance(value, Decimal):
            places = max(0, -value.as_tuple().exponent)
            sheet.write_number(row, col, float(value), self.decimals(places))
        elif isinstance(value, int | float):
            sheet.write_number(row, col, value)
        elif isinstance(value, datetime):
            # Callers pass local times; Excel has no time zones.
            sheet.write_datetime(row, col, value.replace(tzinfo=None), self.when)
        elif isinstance(value, date):
            sheet.write_datetime(row, col, datetime(value.year, value.month, value.day),
                                 self.day)
        else:
            sheet.write_string(row, col, safe(str(value)))


def write(target, sheets: Sequence[SheetSpec]) -> None:
    """Write the sheets to `target` (a path or a binary file object), row by row."""
    import xlsxwriter

    book = xlsxwriter.Workbook(target, {"constant_memory": True, "strings_to_numbers": False,
                                        "strings_to_formulas": False,
                                        "strings_to_urls": False})
    writer = _Writer(book)
    for spec in sheets:
        sheet = book.add_worksheet(spec.name[:31])
        for col, width in enumerate(spec.widths):
            sheet.set_column(col, col, width,
                             writer.as_text if col in spec.text_columns else None)
        for col in spec.text_columns:
            if col >= len(spec.widths):
                sheet.set_column(col, col, None, writer.as_text)
        for col, title in enumerate(spec.header):
            sheet.write_string(0, col, safe(str(title)), writer.bold)
        for r, values in enumerate(spec.rows, start=1):
            for col, value in enumerate(values):
                writer.cell(sheet, r, col, value)
    book.close()


def response(filename: str, sheets: Sequence[SheetSpec] | SheetSpec):
    """A download of the workbook. It is built in a temporary file (XlsxWriter keeps only
    one row in memory at a time) and streamed from there."""
    if isinstance(sheets, SheetSpec):
        sheets = [sheets]
    out = tempfile.TemporaryFile()
    try:
        write(out, sheets)
        out.seek(0)
    except BaseException:
        out.close()
        raise
    reply = send_file(out, mimetype=MIME, as_attachment=True, download_name=filename,
                      max_age=0)
    reply.headers["Cache-Control"] = "no-store"
    return reply
