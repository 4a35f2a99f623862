"""Importing physical gift card numbers: every row rule, all or nothing, the failed rows."""
from __future__ import annotations

from io import BytesIO

import pytest
from python_calamine import CalamineWorkbook
from sqlalchemy import func, select

from portal.db import db, transaction
from portal.giftcards import cards, imports
from portal.giftcards.errors import GiftCardError
from portal.giftcards.models import CardStatus, GiftCard, GiftCardImport, GiftCardProduct
from portal.imports import xlsx
from portal.staff.models import AuditEntry
from tests.factories import StaffFactory
from tests.unit.test_xlsx import workbook

HEADER = ["Card number", "PIN", "Face value"]


@pytest.fixture
def product(session):
    with transaction(session):
        p = GiftCardProduct(kind="physical", name="Mid-Autumn card", currency="CNY",
                            status="active", denominations=[20_000, 50_000])
        session.add(p)
    return p


@pytest.fixture
def operator():
    return StaffFactory()


def run_import(product, rows, *, operator=None, as_numbers=(), filename="cards.xlsx"):
    return imports.import_file(db.session, product.id, workbook([HEADER, *rows],
                                                               as_numbers=as_numbers),
                               filename=filename, operator_id=operator.id if operator else None)


def card_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(GiftCard))


def errors_by_row(run) -> dict[int, str]:
    return {f["row"]: f["error"] for f in run.failed_rows}


def test_good_file_puts_every_card_in_stock_with_hashed_pins(product, operator):
    run = run_import(product, [["6200 0000 0000 0001", "123456", "200"],
                               ["6200-0000-0000-0002", "", "500.00"],
                               ["62000000000000000003", "0042", ""]], operator=operator)
    assert (run.rows_total, run.rows_ok, run.failed_rows) == (3, 3, [])
    found = {c.number: c for c in db.session.scalars(select(GiftCard))}
    assert set(found) == {"6200000000000001", "6200000000000002", "62000000000000000003"}
    first = found["6200000000000001"]
    assert (first.status, first.physical, first.product_id, first.currency, first.face_minor,
            first.price_minor, first.import_id) == (CardStatus.IN_STOCK, True, product.id,
                                                    "CNY", 20_000, 0, run.id)
    assert first.pin_hash == cards.hash_pin("123456") and "123456" not in first.pin_hash
    assert cards.pin_matches(found["62000000000000000003"], "0042")
    assert found["6200000000000002"].pin_hash is None
    assert found["62000000000000000003"].face_minor == 0   # the till sets it
    audit = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "giftcard.import"))
    assert audit.staff_id == operator.id and audit.after["rows_ok"] == 3


def test_numbers_stored_as_numbers_in_excel_import_as_digits(product):
    run = run_import(product, [[6200000000000001, "", 200]], as_numbers=(0, 2))
    assert run.rows_ok == 1
    card = db.session.scalar(select(GiftCard))
    assert (card.number, card.face_minor) == ("6200000000000001", 20_000)


def test_a_number_too_long_for_an_excel_number_is_refused(product):
    run = run_import(product, [[6200000000000000001, "", ""]], as_numbers=(0,))
    assert run.rows_ok == 0 and "15 digits" in errors_by_row(run)[2]


@pytest.mark.parametrize(("number", "error"), [
    ("", "missing"), ("1234567", "8 to 24 digits"), ("12345678901234567890123456", "8 to 24"),
    ("6200ABCD0001", "8 to 24 digits")])
def test_a_missing_or_malformed_number_fails_the_row(product, number, error):
    run = run_import(product, [[number, "1234", "200"], ["62000001", "", ""]])
    assert error in errors_by_row(run)[2] and 3 not in errors_by_row(run)


@pytest.mark.parametrize("pin", ["123", "123456789", "12a4"])
def test_a_bad_pin_fails_the_row(product, pin):
    run = run_import(product, [["62000001", pin, ""]])
    assert "A PIN is 4 to 8 digits." == errors_by_row(run)[2]


@pytest.mark.parametrize(("value", "error"), [
    ("300", "sells only at 200.00, 500.00"), ("0", "more than 0"), ("-200", "more than 0"),
    ("two hundred", "such as 200"), ("200.001", "such as 200")])
def test_a_bad_face_value_fails_the_row(product, value, error):
    run = run_import(product, [["62000001", "", value]])
    assert error in errors_by_row(run)[2]


def test_a_custom_amount_product_takes_values_in_its_range(session):
    with transaction(session):
        p = GiftCardProduct(kind="physical", name="Any", currency="CNY", custom_amount=True,
                            custom_min_minor=5_000, custom_max_minor=100_000)
        session.add(p)
    run = run_import(p, [["62000001", "", "75.50"], ["62000002", "", "2000"]])
    assert list(errors_by_row(run)) == [3]
    run = run_import(p, [["62000001", "", "75.50"]])
    assert run.rows_ok == 1


def test_a_number_twice_in_the_file_fails_both_rows_and_names_them(product):
    run = run_import(product, [["62000001", "", ""], ["62000002", "", ""],
                               ["6200-0001", "", ""]])
    errors = errors_by_row(run)
    assert set(errors) == {2, 4}
    assert "rows 2, 4" in errors[2] and "rows 2, 4" in errors[4]


def test_a_number_that_already_exists_fails_the_row(product):
    assert run_import(product, [["62000001", "", ""]]).rows_ok == 1
    run = run_import(product, [["62000002", "", ""], ["62000001", "", ""]])
    assert errors_by_row(run) == {3: "A gift card with this number already exists."}


def test_a_failing_file_imports_nothing_and_keeps_its_failed_rows(product, operator):
    run = run_import(product, [["62000001", "1234", "200"], ["12", "99", "=1+1"],
                               ["62000003", "", "300"]], operator=operator)
    assert card_count() == 0
    stored = db.session.get(GiftCardImport, run.id)
    assert (stored.rows_total, stored.rows_ok, stored.operator_id) == (3, 0, operator.id)
    assert [f["row"] for f in stored.failed_rows] == [3, 4]
    assert stored.failed_rows[0]["values"] == ["12", "99", "=1+1"]


def test_the_failed_rows_file_has_the_values_and_errors(product, tmp_path):
    run = run_import(product, [["62000001", "", ""], ["12", "99", "=1+1"]])
    path = tmp_path / "failed.xlsx"
    xlsx.write(str(path), [imports.failed_sheet(run)])
    rows = CalamineWorkbook.from_filelike(BytesIO(path.read_bytes())) \
        .get_sheet_by_index(0).to_python()
    assert rows[0] == [*HEADER, "Error", "Row"]
    assert rows[1][:3] == ["12", "99", "'=1+1"]
    assert "8 to 24 digits" in rows[1][3] and rows[1][4] == 3


def test_a_file_without_the_header_or_rows_is_refused_whole(product):
    with pytest.raises(GiftCardError, match="header") as e:
        imports.import_file(db.session, product.id, workbook([["62000001", "", ""]]),
                            filename="x.xlsx", operator_id=None)
    assert e.value.details["field"] == "file"
    with pytest.raises(GiftCardError, match="no cards"):
        imports.import_file(db.session, product.id, workbook([HEADER]), filename="x.xlsx",
                            operator_id=None)
    with pytest.raises(GiftCardError, match="not an Excel workbook"):
        imports.import_file(db.session, product.id, BytesIO(b"62000001\n"),
                            filename="x.csv", operator_id=None)
    assert db.session.scalar(select(func.count()).select_from(GiftCardImport)) == 0


def test_the_chinese_template_header_reads_too(product, app):
    from flask_babel import force_locale

    with app.test_request_context(), force_locale("zh_Hans"):
        chinese = imports.header()
    assert chinese != HEADER
    run = imports.import_file(db.session, product.id, workbook([chinese, ["62000001"]]),
                              filename="x.xlsx", operator_id=None)
    assert run.rows_ok == 1


def test_only_physical_products_take_imports(session):
    with transaction(session):
        online = GiftCardProduct(kind="electronic", name="E", currency="CNY")
        session.add(online)
    with pytest.raises(GiftCardError) as e:
        run_import(online, [["62000001", "", ""]])
    assert e.value.details["field"] == "product_id"


def test_too_many_rows_are_refused_whole(product, monkeypatch):
    monkeypatch.setattr(imports, "MAX_ROWS", 3)
    with pytest.raises(GiftCardError, match="more than 3 rows"):
        run_import(product, [[str(62000000 + i)] for i in range(4)])


def test_existing_numbers_are_looked_up_per_chunk_not_per_row(product, monkeypatch):
    from sqlalchemy import event

    assert run_import(product, [[str(62000000 + i)] for i in range(0, 30, 3)]).rows_ok == 10
    monkeypatch.setattr(imports, "CHUNK", 10)
    statements = []

    def count(_conn, _cursor, sql, *_args):
        if "FROM giftcards" in sql and "number IN" in sql:
            statements.append(sql)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        run = run_import(product, [[str(62000000 + i)] for i in range(30)])
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(errors_by_row(run)) == 10
    assert len(statements) == 3


def test_a_number_taken_by_a_concurrent_import_fails_the_run(product, monkeypatch):
    # Another import committed the number after our check looked: the unique number
    # refuses the insert, and the run reports the row instead of failing.
    assert run_import(product, [["62000002"]]).rows_ok == 1
    real = imports._check_existing
    calls = []

    def missed_once(session, rows):
        calls.append(1)
        if len(calls) > 1:
            real(session, rows)

    monkeypatch.setattr(imports, "_check_existing", missed_once)
    run = run_import(product, [["62000001"], ["62000002"]])
    assert run.rows_ok == 0
    assert errors_by_row(run) == {3: "A gift card with this number already exists."}
    assert db.session.scalars(select(GiftCard.number)).all() == ["62000002"]
    assert db.session.scalar(select(func.count()).select_from(GiftCardImport)) == 2
