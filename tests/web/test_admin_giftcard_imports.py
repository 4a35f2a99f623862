"""Gift card imports and exports over HTTP: who may use them, the template, uploads good
and bad, the failed rows, the in-stock filter, and exports that follow the lists' filters."""
from __future__ import annotations

from io import BytesIO

import pytest
from python_calamine import CalamineWorkbook
from sqlalchemy import func, select

from portal.db import db, transaction
from portal.giftcards import spending
from portal.giftcards.models import GiftCard, GiftCardImport, GiftCardProduct
from portal.staff.models import AuditEntry, Role
from tests.factories import StaffFactory
from tests.fixtures import count_queries, sign_in_as
from tests.unit.test_giftcard_spending import make_card
from tests.unit.test_xlsx import workbook

HEADER = ["Card number", "PIN", "Face value"]
ROUTES = ["/admin/giftcards/import", "/admin/giftcards/import/template.xlsx",
          "/admin/giftcards/sold/export.xlsx", "/admin/giftcards/transactions/export.xlsx"]


@pytest.fixture
def product(session):
    with transaction(session):
        p = GiftCardProduct(kind="physical", name="Mid-Autumn card", currency="CNY",
                            status="active", denominations=[20_000])
        session.add(p)
    return p


def sheets(response) -> list[list[list]]:
    assert response.status_code == 200
    assert response.mimetype.endswith("spreadsheetml.sheet")
    book = CalamineWorkbook.from_filelike(BytesIO(response.data))
    return [book.get_sheet_by_index(i).to_python() for i in range(len(book.sheet_names))]


def upload(client, product, rows, *, name="cards.xlsx"):
    data = {"product_id": str(product.id) if product else "",
            "file": (workbook([HEADER, *rows]) if isinstance(rows, list) else rows, name)}
    return client.post("/admin/giftcards/import", data=data,
                       content_type="multipart/form-data")


def in_stock() -> list[str]:
    db.session.expire_all()
    return sorted(db.session.scalars(select(GiftCard.number)
                                     .where(GiftCard.status == "in_stock")))


@pytest.mark.parametrize("url", ROUTES)
def test_clerks_are_refused(client, clerk, url):
    sign_in_as(client, clerk)
    assert client.get(url).status_code == 403


def test_managers_may_import(client, product):
    sign_in_as(client, StaffFactory(role=Role.MANAGER))
    assert client.get("/admin/giftcards/import").status_code == 200
    assert upload(client, product, [["62000001"]]).status_code == 303
    assert in_stock() == ["62000001"]


def test_the_template_downloads_with_its_header_and_instructions(owner_client):
    cards_sheet, notes = sheets(owner_client.get("/admin/giftcards/import/template.xlsx"))
    assert cards_sheet == [HEADER]
    text = " ".join(str(c) for row in notes for c in row)
    assert "nothing is imported" in text and "6200 0000 0000 0001" in text


def test_the_template_is_in_the_staff_members_language(client):
    sign_in_as(client, StaffFactory(role=Role.OWNER, locale="zh_Hans"))
    cards_sheet, _notes = sheets(client.get("/admin/giftcards/import/template.xlsx"))
    assert cards_sheet[0] != HEADER and all(cards_sheet[0])


def test_the_page_lists_only_physical_products(owner_client, product, session):
    with transaction(session):
        session.add(GiftCardProduct(kind="electronic", name="E-card only", currency="CNY"))
    page = owner_client.get("/admin/giftcards/import").get_data(as_text=True)
    assert "Mid-Autumn card" in page and "E-card only" not in page
    assert "Download the template" in page


def test_a_good_upload_imports_and_shows_in_the_history(owner_client, owner, product):
    r = upload(owner_client, product, [["6200 0001", "1234", "200"], ["62000002"]],
               name="autumn batch.xlsx")
    assert r.status_code == 303 and r.headers["Location"].endswith("/admin/giftcards/import")
    assert in_stock() == ["62000001", "62000002"]
    page = owner_client.get("/admin/giftcards/import").get_data(as_text=True)
    assert "2 cards are in stock" in page
    assert "autumn batch.xlsx" in page and owner.name in page and "Mid-Autumn card" in page
    assert "Download failed rows" not in page


def test_a_upload_with_bad_rows_imports_nothing_and_offers_the_failed_rows(owner_client,
                                                                           product):
    r = upload(owner_client, product, [["62000001"], ["62000001"], ["12"]])
    assert r.status_code == 303
    assert in_stock() == []
    page = owner_client.get("/admin/giftcards/import").get_data(as_text=True)
    assert "Nothing was imported: 3 rows have problems." in page
    run = db.session.scalar(select(GiftCardImport))
    assert f"/admin/giftcards/import/{run.id}/failed.xlsx" in page
    (failed,) = sheets(owner_client.get(f"/admin/giftcards/import/{run.id}/failed.xlsx"))
    assert failed[0] == [*HEADER, "Error", "Row"]
    assert [row[0] for row in failed[1:]] == ["62000001", "62000001", "12"]
    assert "more than once" in failed[1][3] and "8 to 24 digits" in failed[3][3]


@pytest.mark.parametrize(("rows", "message"), [
    (BytesIO(b"card,pin\n62000001,1234\n"), "not an Excel workbook"),
    ([], "no cards below the header"),
    (workbook([["Number"], ["62000001"]]), "the template&#39;s header")])
def test_an_unreadable_upload_is_refused_next_to_the_file_field(owner_client, product, rows,
                                                                message):
    r = upload(owner_client, product, rows)
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    assert message in page and 'id="file-error"' in page
    assert db.session.scalar(select(func.count()).select_from(GiftCardImport)) == 0


def test_an_upload_without_a_product_or_file_is_refused(owner_client, product):
    r = upload(owner_client, None, [["62000001"]])
    assert r.status_code == 422 and "Choose a physical gift card." in r.get_data(as_text=True)
    r = owner_client.post("/admin/giftcards/import", data={"product_id": str(product.id)},
                          content_type="multipart/form-data")
    assert r.status_code == 422 and in_stock() == []


def test_in_stock_cards_show_only_under_their_filter(owner_client, product, session):
    sold = make_card(session)
    upload(owner_client, product, [["62000001"]])
    everything = owner_client.get("/admin/giftcards/sold").get_data(as_text=True)
    assert f"/admin/giftcards/sold/{sold.id}\"" in everything and "•••• 0001" not in everything
    stock = owner_client.get("/admin/giftcards/sold?status=in_stock").get_data(as_text=True)
    assert "•••• 0001" in stock and "In stock" in stock
    assert f"/admin/giftcards/sold/{sold.id}\"" not in stock


# --- exports -------------------------------------------------------------------------------

def _buyer(session, card, name):
    with transaction(session):
        session.get(GiftCard, card.id).buyer_name = name


def test_sold_export_follows_the_filters_and_keeps_formulas_as_text(owner_client, owner,
                                                                      session):
    a, b = make_card(session, face=12_345), make_card(session)
    _buyer(session, a, '=HYPERLINK("http://evil.example","Click")')
    page = owner_client.get(f"/admin/giftcards/sold?number={a.number}").get_data(as_text=True)
    assert f"/admin/giftcards/sold/export.xlsx?number={a.number}" in page
    (rows,) = sheets(owner_client.get(f"/admin/giftcards/sold/export.xlsx?number={a.number}"))
    assert len(rows) == 2 and rows[0][0] == "Card number"
    line = dict(zip(rows[0], rows[1], strict=True))
    assert line["Card number"] == a.number and line["Face value"] == 123.45
    assert line["Currency"] == "CNY"
    assert line["Buyer name"] == '\'=HYPERLINK("http://evil.example","Click")'
    (everything,) = sheets(owner_client.get("/admin/giftcards/sold/export.xlsx"))
    assert {r[0] for r in everything[1:]} == {a.number, b.number}
    audit = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "giftcard.export")
                              .order_by(AuditEntry.id))
    assert audit.staff_id == owner.id and audit.after == {"number": a.number}


def test_sold_export_has_every_matching_card_not_only_a_page(owner_client, session,
                                                            monkeypatch):
    from portal.giftcards import exports

    monkeypatch.setattr(exports, "CHUNK", 2)
    made = {make_card(session).number for _ in range(5)}
    (rows,) = sheets(owner_client.get("/admin/giftcards/sold/export.xlsx"))
    assert {r[0] for r in rows[1:]} == made


def test_transactions_export_follows_the_filters(owner_client, session):
    card = make_card(session, face=20_000)
    spending.freeze(db.session, card.id, operator_id=None, reason="Lost")
    page = owner_client.get("/admin/giftcards/transactions?kind=freeze") \
        .get_data(as_text=True)
    assert "/admin/giftcards/transactions/export.xlsx?kind=freeze" in page
    (rows,) = sheets(owner_client.get("/admin/giftcards/transactions/export.xlsx?kind=freeze"))
    assert [r[2] for r in rows[1:]] == ["Frozen"] and rows[1][1] == card.number
    (rows,) = sheets(owner_client.get("/admin/giftcards/transactions/export.xlsx"))
    kinds = {r[2]: r for r in rows[1:]}
    assert set(kinds) == {"Frozen", "Activation"}
    assert kinds["Activation"][3] == 200.0 and kinds["Activation"][5] == "CNY"
    assert kinds["Frozen"][8] == "Lost"


@pytest.mark.parametrize("url", ["/admin/giftcards/sold/export.xlsx",
                                 "/admin/giftcards/transactions/export.xlsx",
                                 "/admin/giftcards/import"])
def test_exports_and_history_run_a_fixed_number_of_queries(owner_client, session, product,
                                                           url):
    for _ in range(2):
        spending.freeze(db.session, make_card(session).id, operator_id=None, reason="x")
    upload(owner_client, product, [["62000001"]])
    few = count_queries(owner_client, url)
    for _ in range(8):
        spending.freeze(db.session, make_card(session).id, operator_id=None, reason="x")
    for n in range(3):
        upload(owner_client, product, [[f"6300000{n}"]])
    assert count_queries(owner_client, url) == few
