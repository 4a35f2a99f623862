"""A manager imports customers from Excel: one row is bad → the result and the history say
so → the failed rows download with the reason → the row is fixed in that very file →
uploaded again, it goes in."""
from __future__ import annotations

from python_calamine import CalamineWorkbook
from sqlalchemy import select

from portal.db import db
from portal.members.models import Member
from tests.browser.steps import staff_sign_in
from tests.unit.test_xlsx import workbook

HEADER = ["Mobile", "Name", "Type", "Card plan", "Tier", "Email", "Date of birth", "Gender",
          "Address", "ID number"]


def _counts(page) -> dict[str, str]:
    counts = page.locator("#import-progress dl.import-counts")
    counts.wait_for()
    return dict(zip(counts.locator("dt").all_inner_texts(),
                    counts.locator("dd").all_inner_texts(), strict=True))


def _upload(page, path) -> None:
    page.goto("/admin/members/import")
    page.locator("#file").set_input_files(str(path))
    page.locator("form.panel button[type=submit]").click()
    page.wait_for_url("**/admin/members/import/*")


def test_a_failed_row_is_downloaded_fixed_in_its_file_and_imported_again(
        browser, live_server, csrf_live, owner, plan, app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "UPLOAD_DIR", str(tmp_path))
    first = tmp_path / "march-customers.xlsx"
    first.write_bytes(workbook([
        HEADER,
        ["13912340001", "Ada Lovelace", "Customer", "", "", "ada@example.com"],
        ["13912340002", "Grace Hopper", "Customer", "", "", "grace@@example"],
        ["13912340003", "Mary Somerville", "Customer"]]).getvalue())
    context = browser.new_context(base_url=live_server, accept_downloads=True)
    page = context.new_page()
    staff_sign_in(page, owner)

    _upload(page, first)
    assert _counts(page) == {"Rows": "3", "Imported": "2", "Updated": "0", "Skipped": "0",
                             "Failed": "1"}

    # The history has the run with its counts and the failed rows to download.
    page.locator(".breadcrumb a").click()
    page.wait_for_url("**/admin/members/import")
    entry = page.locator("table tbody tr", has_text="march-customers.xlsx")
    assert entry.locator("td[data-label=Imported]").inner_text() == "2"
    assert entry.locator("td[data-label=Failed]").inner_text() == "1"
    with page.expect_download() as download:
        entry.get_by_role("link", name="Download failed rows").click()
    failed = tmp_path / download.value.suggested_filename
    download.value.save_as(failed)

    # The file has the row as it was typed, under the header, and why it failed.
    rows = CalamineWorkbook.from_path(str(failed)).get_sheet_by_index(0).to_python()
    header, (bad,) = [str(c) for c in rows[0]], rows[1:]
    assert header == [*HEADER, "Error", "Row"]
    assert bad[0] == "13912340002" and "Email" in bad[header.index("Error")]
    assert int(bad[header.index("Row")]) == 3

    # Fixed where it stands, Error and Row columns left in: the import ignores them.
    bad[header.index("Email")] = "grace@example.com"
    fixed = tmp_path / "march-customers-fixed.xlsx"
    fixed.write_bytes(workbook([header, ["" if c is None else c for c in bad]]).getvalue())
    _upload(page, fixed)
    assert _counts(page) == {"Rows": "1", "Imported": "1", "Updated": "0", "Skipped": "0",
                             "Failed": "0"}
    assert page.get_by_role("link", name="Download failed rows").count() == 0
    page.locator(".breadcrumb a").click()
    page.wait_for_url("**/admin/members/import")
    assert page.locator("table tbody tr").count() == 2
    db.session.commit()  # a new read: an open one would keep seeing an old SQLite snapshot
    grace = db.session.scalar(select(Member).where(Member.mobile == "+8613912340002"))
    assert (grace.full_name, grace.email) == ("Grace Hopper", "grace@example.com")
    db.session.commit()
    context.close()
