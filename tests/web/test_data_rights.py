"""Member data rights over HTTP: the member's data page and download, asking to close,
and staff deciding in Admin → Data requests."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from portal.api import services as api_clients
from portal.db import db, transaction
from portal.members.models import Member, MemberCard
from portal.rights import services as rights
from portal.rights.models import DataRequest, RequestKind, RequestStatus
from portal.wallet import balance as wallet
from tests.fixtures import sign_in_as


def _fresh(model, ident):
    """The row as the requests left it (this session does not expire on commit)."""
    db.session.expire_all()
    return db.session.get(model, ident)


def _ask(member) -> DataRequest:
    return rights.request_closure(db.session, member.id, confirmation=member.mobile[-4:])


# --- the member ---------------------------------------------------------------------------

def test_download_is_a_json_attachment_of_the_members_own_data(member_client, member,
                                                                other_member):
    # Buffered: the body streams inside the request context, which this client ends.
    r = member_client.post("/me/data/export", buffered=True)

    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.headers["Content-Disposition"].startswith('attachment; filename="my-data-')
    data = json.loads(r.get_data(as_text=True))
    assert [p["id"] for p in data["sections"]["profile"]] == [member.id]
    assert db.session.scalars(select(DataRequest.member_id)).all() == [member.id]


def test_download_needs_the_csrf_token(member_client, csrf_on):
    assert member_client.post("/me/data/export").status_code == 400
    assert db.session.scalars(select(DataRequest)).all() == []


def test_download_needs_a_signed_in_member(client):
    r = client.post("/me/data/export")
    assert r.status_code in (302, 303) and "/sign-in" in r.headers["Location"]


def test_data_page_lists_only_the_members_own_requests(member_client, member, other_member,
                                                       owner):
    _ask(other_member)
    rights.refuse(db.session, _ask(member).id, "Order 17 is in dispute",
                  operator_id=owner.id)
    rights.refuse(db.session, db.session.scalars(select(DataRequest.id).where(
        DataRequest.member_id == other_member.id)).one(), "Other person's secret",
        operator_id=owner.id)

    page = member_client.get("/me/data").get_data(as_text=True)

    assert "Order 17 is in dispute" in page
    assert "Other person&#39;s secret" not in page and "Other person's secret" not in page


def test_data_page_answers_htmx_with_a_fragment(member_client):
    r = member_client.get("/me/data", headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.get_data(as_text=True)


def test_wrong_digits_are_shown_next_to_the_field(member_client):
    r = member_client.post("/me/close", data={"confirmation": "9999"})

    assert r.status_code == 422
    assert 'id="confirmation-error"' in r.get_data(as_text=True)
    assert db.session.scalars(select(DataRequest)).all() == []


def test_member_asks_to_close_and_can_withdraw(member_client, member):
    r = member_client.post("/me/close", data={"confirmation": member.mobile[-4:],
                                              "note": "Moving abroad"})
    assert r.status_code == 303 and r.headers["Location"].endswith("/me/data")
    req = db.session.scalars(select(DataRequest)).one()
    assert (req.kind, req.status, req.note) == (RequestKind.CLOSURE, RequestStatus.REQUESTED,
                                                "Moving abroad")

    assert member_client.post("/me/close/withdraw").status_code == 303
    assert _fresh(DataRequest, req.id).status == RequestStatus.REFUSED


def test_asking_twice_answers_409(member_client, member):
    _ask(member)
    r = member_client.post("/me/close", data={"confirmation": member.mobile[-4:]})
    assert r.status_code == 409


def test_staff_preview_cannot_ask_to_close(client, owner, member):
    sign_in_as(client, owner)
    with client.session_transaction() as s:
        s["preview_member_id"] = member.id

    r = client.post("/me/close", data={"confirmation": member.mobile[-4:]})

    assert r.status_code == 403
    assert db.session.scalars(select(DataRequest)).all() == []


# --- staff ----------------------------------------------------------------------------------

def test_clerk_cannot_see_data_requests(client, clerk, member):
    req = _ask(member)
    sign_in_as(client, clerk)

    assert client.get("/admin/data-requests").status_code == 403
    assert client.get(f"/admin/data-requests/{req.id}").status_code == 403
    assert client.post(f"/admin/data-requests/{req.id}/close").status_code == 403
    assert _fresh(DataRequest, req.id).status == RequestStatus.REQUESTED


def test_list_filters_by_kind_and_status(client, manager, member, other_member):
    _ask(member)
    rights.export(db.session, other_member.id)
    sign_in_as(client, manager)

    waiting = client.get("/admin/data-requests").get_data(as_text=True)
    exports = client.get("/admin/data-requests?kind=export&status=all").get_data(as_text=True)

    name = _fresh(Member, member.id).full_name
    other = _fresh(Member, other_member.id).full_name
    assert name in waiting and other not in waiting
    assert other in exports and name not in exports


@pytest.mark.parametrize("q", ["²", "#²", "٣", "#12"])
def test_list_search_takes_any_digits_without_failing(client, manager, member, q):
    _ask(member)
    sign_in_as(client, manager)

    assert client.get("/admin/data-requests", query_string={"q": q}).status_code == 200


def test_list_query_count_does_not_grow_with_rows(client, manager, plan):
    from tests.fixtures import count_queries, member_with_card

    sign_in_as(client, manager)
    _ask(member_with_card(plan))
    one = count_queries(client, "/admin/data-requests?status=all")
    for _ in range(5):
        _ask(member_with_card(plan))
    assert count_queries(client, "/admin/data-requests?status=all") == one


def test_manager_closes_the_account_and_the_member_is_signed_out(app, manager, member):
    req = _ask(member)
    member_browser, staff_browser = app.test_client(), app.test_client()
    sign_in_as(member_browser, member)
    sign_in_as(staff_browser, manager)
    assert member_browser.get("/card").status_code == 200

    r = staff_browser.post(f"/admin/data-requests/{req.id}/close")

    assert r.status_code == 303
    done = _fresh(DataRequest, req.id)
    assert (done.status, done.processed_by) == (RequestStatus.DONE, manager.id)
    after = member_browser.get("/card")
    assert after.status_code in (302, 303) and "/sign-in" in after.headers["Location"]


def test_close_needs_the_csrf_token(client, manager, member, csrf_on):
    req = _ask(member)
    sign_in_as(client, manager)

    assert client.post(f"/admin/data-requests/{req.id}/close").status_code == 400
    assert _fresh(DataRequest, req.id).status == RequestStatus.REQUESTED


def test_close_with_prepaid_money_left_answers_409_with_the_reason(client, manager, member):
    card = db.session.scalars(select(MemberCard).where(MemberCard.member_id == member.id)).one()
    with transaction(db.session):
        wallet.credit(db.session, card, principal=500, bonus=0, key="t", reason="topup",
                      source=("test", 1))
    req = _ask(member)
    sign_in_as(client, manager)

    r = client.post(f"/admin/data-requests/{req.id}/close")

    assert r.status_code == 409 and 'id="request-error"' in r.get_data(as_text=True)
    assert _fresh(Member, member.id).closed_at is None


def test_refuse_without_a_reason_shows_it_next_to_the_field(client, manager, member):
    req = _ask(member)
    sign_in_as(client, manager)

    r = client.post(f"/admin/data-requests/{req.id}/refuse", data={"reason": ""})

    assert r.status_code == 422 and 'id="reason-error"' in r.get_data(as_text=True)
    assert _fresh(DataRequest, req.id).status == RequestStatus.REQUESTED


def test_refuse_records_the_operator(client, manager, member):
    req = _ask(member)
    sign_in_as(client, manager)

    r = client.post(f"/admin/data-requests/{req.id}/refuse", data={"reason": "Open dispute"})

    assert r.status_code == 303
    refused = _fresh(DataRequest, req.id)
    assert (refused.status, refused.processed_by) == (RequestStatus.REFUSED, manager.id)


def test_unknown_request_is_404(client, manager):
    sign_in_as(client, manager)
    assert client.get("/admin/data-requests/999").status_code == 404
    assert client.post("/admin/data-requests/999/close").status_code == 404


@pytest.fixture
def till(store):
    _client, key = api_clients.create_client(db.session, name="Till", store_code=store.code,
                                             channel="POS")
    return {"Authorization": f"Bearer {key}"}


def test_api_no_longer_finds_a_closed_member_by_phone(client, till, member, owner):
    phone = member.mobile
    assert client.get(f"/api/v1/members/lookup?phone={phone}", headers=till).status_code \
        == 200
    rights.close_account(db.session, _ask(member).id, operator_id=owner.id)

    r = client.get(f"/api/v1/members/lookup?phone={phone}", headers=till)

    assert r.status_code == 404


def test_member_page_in_admin_says_the_account_is_closed(client, owner, member):
    rights.close_account(db.session, _ask(member).id, operator_id=owner.id)
    sign_in_as(client, owner)

    page = client.get(f"/admin/members/{member.id}").get_data(as_text=True)

    assert 'id="closed-notice"' in page


def test_downloads_are_limited_per_member(member_client):
    codes = [member_client.post("/me/data/export", buffered=True).status_code
             for _ in range(11)]
    assert codes[:10] == [200] * 10 and codes[10] == 429


def test_staff_adjusting_points_of_a_closed_account_are_told_why(client, owner, member):
    rights.close_account(db.session, _ask(member).id, operator_id=owner.id)
    sign_in_as(client, owner)

    r = client.post(f"/admin/members/{member.id}/adjust", follow_redirects=True,
                    data={"kind": "points", "delta": "50", "reason": "goodwill",
                          "nonce": "n1"})

    assert r.status_code == 200
    assert "This account is closed" in r.get_data(as_text=True)
