"""Customer imports over HTTP: who may use them, the template, an upload to its result,
the progress fragment htmx polls, the history and the failed rows."""
from __future__ import annotations

from io import BytesIO

import pytest
from python_calamine import CalamineWorkbook

from portal.db import db, transaction
from portal.imports.models import CustomerImport, RunStatus
from portal.members.models import CustomAttribute
from portal.staff.models import AuditEntry
from tests.fixtures import count_queries, sign_in_as
from tests.unit.test_customer_imports import HEADER, row
from tests.unit.test_xlsx import workbook

ROUTES = ["/admin/members/import", "/admin/members/import/template.xlsx"]


def upload(client, rows, *, policy="skip", name="customers.xlsx", file=None):
    data = {"policy": policy,
            "file": (file or workbook([HEADER, *rows]), name)}
    return client.post("/admin/members/import", data=data, content_type="multipart/form-data")


def sheets(response) -> list[list[list]]:
    assert response.status_code == 200 and response.mimetype.endswith("spreadsheetml.sheet")
    book = CalamineWorkbook.from_filelike(BytesIO(response.data))
    return [book.get_sheet_by_index(i).to_python() for i in range(len(book.sheet_names))]


@pytest.mark.parametrize("url", ROUTES)
def test_clerks_are_refused(client, clerk, url):
    sign_in_as(client, clerk)
    assert client.get(url).status_code == 403


def test_signed_out_staff_are_sent_to_sign_in(client):
    assert client.get("/admin/members/import").status_code in (302, 303)


def test_template_download_has_the_custom_attribute_columns(client, manager, plan):
    with transaction(db.session):
        db.session.add(CustomAttribute(key="drink", name="Favourite drink", kind="text"))
    sign_in_as(client, manager)
    first, notes = sheets(client.get("/admin/members/import/template.xlsx"))
    assert first[0] == [*HEADER, "Favourite drink"]
    assert notes[0][0] == "How to fill in the template"


def test_upload_runs_and_shows_the_result_then_the_history(client, manager, plan):
    sign_in_as(client, manager)
    r = upload(client, [row("13800138000", "Li Wei"), row("12345", "Bad")])
    assert r.status_code == 303
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "Done" in page and "<progress" in page and "hx-trigger" not in page
    assert "Download failed rows" in page
    run = db.session.query(CustomerImport).one()
    assert (run.imported, run.failed, run.operator_id) == (1, 1, manager.id)
    assert db.session.query(AuditEntry).filter_by(action="customers.import").count() == 1
    history = client.get("/admin/members/import").get_data(as_text=True)
    assert "customers.xlsx" in history and manager.name in history
    failed = sheets(client.get(f"/admin/members/import/{run.id}/failed.xlsx"))[0]
    assert failed[0][-2:] == ["Error", "Row"] and failed[1][0] == "12345"


def test_a_bad_file_is_refused_at_its_field_with_422(client, manager, plan):
    sign_in_as(client, manager)
    r = upload(client, None, file=BytesIO(b"not a workbook"), name="renamed.xlsx")
    assert r.status_code == 422
    assert "not an Excel workbook" in r.get_data(as_text=True)
    assert db.session.query(CustomerImport).count() == 0


def test_a_missing_file_is_refused(client, manager):
    sign_in_as(client, manager)
    r = client.post("/admin/members/import", data={"policy": "skip"},
                    content_type="multipart/form-data")
    assert r.status_code == 422


def test_progress_fragment_polls_while_the_run_is_going(client, manager):
    with transaction(db.session):
        run = CustomerImport(filename="big.xlsx", policy="skip", status=RunStatus.RUNNING,
                             rows_total=1000, progress=250, columns=[])
        db.session.add(run)
    sign_in_as(client, manager)
    r = client.get(f"/admin/members/import/{run.id}", headers={"HX-Request": "true"})
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "<html" not in html
    assert 'hx-trigger="every 1s"' in html and 'value="25"' in html
    assert "250" in html and "1,000" in html


def test_failed_rows_of_a_run_without_failures_is_404(client, manager, plan):
    sign_in_as(client, manager)
    upload(client, [row()])
    run = db.session.query(CustomerImport).one()
    assert client.get(f"/admin/members/import/{run.id}/failed.xlsx").status_code == 404
    assert client.get("/admin/members/import/999").status_code == 404


def test_history_page_queries_do_not_grow_with_runs(client, manager, plan):
    sign_in_as(client, manager)
    upload(client, [row()])
    one = count_queries(client, "/admin/members/import")
    for i in range(3):
        upload(client, [row(f"1380013801{i}")], name=f"more-{i}.xlsx")
    assert count_queries(client, "/admin/members/import") == one
