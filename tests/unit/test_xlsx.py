"""Excel in and out: the guards before parsing, cells read back as typed, and text that
never turns into a formula."""
from __future__ import annotations

import random
import zipfile
from datetime import datetime
from decimal import Decimal
from io import BytesIO

import pytest
import xlsxwriter
from python_calamine import CalamineWorkbook

from portal.imports import xlsx


def workbook(rows, *, as_numbers=()) -> BytesIO:
    """An .xlsx whose first sheet holds `rows`; columns in `as_numbers` as numbers."""
    out = BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet()
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            if c in as_numbers and r > 0 and value != "":
                sheet.write_number(r, c, float(value))
            elif value != "":
                sheet.write_string(r, c, str(value))
    book.close()
    out.seek(0)
    return out


def read_back(data: bytes, sheet: int = 0) -> list[list]:
    return CalamineWorkbook.from_filelike(BytesIO(data)).get_sheet_by_index(sheet).to_python()


def test_read_gives_text_with_excel_row_numbers(app):
    sheet = xlsx.read(workbook([["Card number", "PIN"], ["", ""], [" 62000001 ", "0012"],
                                ["62000002"]]), max_rows=10)
    assert sheet.header == ["Card number", "PIN"]
    assert sheet.data == [(3, ["62000001", "0012"]), (4, ["62000002"])]


def test_read_turns_numbers_into_their_digits(app):
    sheet = xlsx.read(workbook([["n", "v"], [6200000000000001, 200], [12345678, 200.5]],
                               as_numbers=(0, 1)), max_rows=10)
    assert sheet.data == [(2, ["6200000000000001", "200"]), (3, ["12345678", "200.5"])]


def test_read_marks_numbers_too_long_to_be_exact(app):
    sheet = xlsx.read(workbook([["n"], [6200000000000000001]], as_numbers=(0,)), max_rows=10)
    value = sheet.data[0][1][0]
    assert isinstance(value, xlsx.InexactNumber)


def test_read_refuses_a_file_that_is_not_a_workbook(app):
    with pytest.raises(xlsx.XlsxError, match="not an Excel workbook"):
        xlsx.read(BytesIO(b"card,pin\n1234,5678\n"), max_rows=10)


def test_read_refuses_a_zip_that_is_not_a_workbook(app):
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("hello.txt", "hello")
    out.seek(0)
    with pytest.raises(xlsx.XlsxError, match="not an Excel workbook"):
        xlsx.read(out, max_rows=10)


def test_read_refuses_an_empty_or_too_large_upload(app):
    with pytest.raises(xlsx.XlsxError, match="empty"):
        xlsx.read(BytesIO(b""), max_rows=10)
    with pytest.raises(xlsx.XlsxError, match="larger than"):
        xlsx.read(BytesIO(b"x" * 2048), max_rows=10, max_bytes=1024)


def test_read_refuses_a_zip_bomb_before_parsing(app):
    out = BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", b"<" + b" " * (20 * 1024 * 1024))
    assert len(out.getvalue()) < 100_000
    out.seek(0)
    with pytest.raises(xlsx.XlsxError, match="too large or too compressed"):
        xlsx.read(out, max_rows=10)


def test_read_refuses_a_zip_of_too_many_entries(app):
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for i in range(xlsx.MAX_ENTRIES + 1):
            z.writestr(f"x{i}.xml", "<x/>")
    out.seek(0)
    with pytest.raises(xlsx.XlsxError, match="too large or too compressed"):
        xlsx.read(out, max_rows=10)


def test_read_refuses_more_rows_than_the_cap(app):
    rows = [["n"]] + [[str(10_000_000 + i)] for i in range(11)]
    with pytest.raises(xlsx.XlsxError, match="more than 10 rows"):
        xlsx.read(workbook(rows), max_rows=10)
    assert len(xlsx.read(workbook(rows[:11]), max_rows=10).data) == 10


@pytest.mark.parametrize("dangerous", ["=HYPERLINK(\"http://x\",\"y\")", "+1", "-1", "@SUM(A1)",
                                       "\tx", "\rx"])
def test_written_text_never_becomes_a_formula(app, tmp_path, dangerous):
    path = tmp_path / "out.xlsx"
    xlsx.write(str(path), [xlsx.SheetSpec(name="S", header=["a", "=b"],
                                          rows=[[dangerous, "plain"]])])
    rows = read_back(path.read_bytes())
    assert rows[0] == ["a", "'=b"]
    assert rows[1] == ["'" + dangerous, "plain"]
    with zipfile.ZipFile(path) as z:
        assert "<f>" not in z.read("xl/worksheets/sheet1.xml").decode()


def test_written_numbers_and_dates_stay_typed(app, tmp_path):
    path = tmp_path / "out.xlsx"
    xlsx.write(str(path), [xlsx.SheetSpec(name="S", header=["a", "b", "c", "d"], rows=[
        [Decimal("123.45"), 7, datetime(2026, 12, 4, 15, 30), "0012"]])])
    assert read_back(path.read_bytes())[1] == [123.45, 7.0, datetime(2026, 12, 4, 15, 30),
                                               "0012"]


@pytest.mark.parametrize("offset", range(-20, 2))
@pytest.mark.parametrize("tag", [b"<f>1+1</f>", b'<f t="shared" si="0"/>', b"<f\n>1</f>",
                                 b"<x:f>1+1</x:f>", b"<sheet.main-1:f/>"])
def test_a_formula_is_found_wherever_it_falls_in_the_inflated_sheet(app, tmp_path, offset,
                                                                    tag):
    """The sheet is scanned in 64 KiB pieces: a tag across two of them is found too."""
    head = b"<worksheet><sheetData><row><c>"
    # Letters in no order, so that the zip stays within the ratio a bomb is told by.
    padding = bytes(random.Random(offset).choices(b"abcdefgh", k=64 * 1024 + offset
                                                  - len(head)))
    path = tmp_path / "formula.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml",
                         head + padding + tag + b"</c></row></sheetData></worksheet>")
    with pytest.raises(xlsx.XlsxError, match="formulas"):
        xlsx.check_file(path, refuse_formulas=True)


def test_tags_and_text_that_only_look_like_a_formula_are_not_one(app, tmp_path):
    path = tmp_path / "filters.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"<worksheet><autoFilter><filterColumn "
                         b'colId="0"/></autoFilter><font/><c><is><t>Note:f &lt;f '
                         b"x:f></t></is></c></worksheet>")
    xlsx.check_file(path, refuse_formulas=True)
