"""The gift card export history: who exported which list with which filters."""
from __future__ import annotations

from tests.fixtures import count_queries, sign_in_as


def test_the_history_lists_exports_with_their_filters_and_downloads_again(client, owner):
    sign_in_as(client, owner)
    assert "No exports yet." in client.get("/admin/giftcards/exports").get_data(as_text=True)
    client.get("/admin/giftcards/sold/export.xlsx?status=frozen&number=1234")
    client.get("/admin/giftcards/transactions/export.xlsx?kind=consumption")
    page = client.get("/admin/giftcards/exports").get_data(as_text=True)
    assert "Status: Frozen" in page and "Card number: 1234" in page
    assert "Type: Consumption" in page and owner.name in page
    assert "/admin/giftcards/sold/export.xlsx?" in page
    assert "/admin/giftcards/transactions/export.xlsx?kind=consumption" in page


def test_the_history_runs_a_fixed_number_of_queries(client, owner):
    sign_in_as(client, owner)
    client.get("/admin/giftcards/sold/export.xlsx")
    one = count_queries(client, "/admin/giftcards/exports")
    for _ in range(4):
        client.get("/admin/giftcards/transactions/export.xlsx")
    assert count_queries(client, "/admin/giftcards/exports") == one


def test_clerks_see_no_export_history(client, clerk):
    sign_in_as(client, clerk)
    assert client.get("/admin/giftcards/exports").status_code == 403
