"""Sold gift cards and their transactions in the merchant area over HTTP: filters,
one card, freeze / restore, who may see them, and a fixed number of queries."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from portal import clock
from portal.db import db, transaction
from portal.giftcards import cards, spending
from portal.giftcards.models import CardStatus, GiftCard, GiftCardTransaction
from portal.members.models import mask
from portal.staff.models import AuditEntry
from tests.fixtures import count_queries, sign_in_as
from tests.unit.test_giftcard_spending import make_card

PHONE = "+8613800138000"


def _card(session, *, phone=None, **kwargs) -> GiftCard:
    card = make_card(session, **kwargs)
    if phone:
        with transaction(session):
            session.get(GiftCard, card.id).buyer_phone = phone
    return card


def _page(client, url) -> str:
    r = client.get(url)
    assert r.status_code == 200, url
    return r.get_data(as_text=True)


def _shown(page: str, card: GiftCard) -> bool:
    return f"/admin/giftcards/sold/{card.id}\"" in page


def test_list_shows_sold_cards_with_balances(owner_client, session):
    card = _card(session, face=12_300, phone=PHONE)
    spending.charge(db.session, number=card.number, amount_minor=2_300, currency="CNY",
                    idempotency_key="k", store_id=None)
    pending = _card(session, activate=False)
    page = _page(owner_client, "/admin/giftcards/sold")
    assert _shown(page, card) and not _shown(page, pending)
    assert f"•••• {card.number[-4:]}" in page and card.number not in page
    assert "123.00" in page and "100.00" in page
    assert mask(PHONE) in page and PHONE not in page


def test_filter_by_number_and_last_four(owner_client, session):
    a, b = _card(session), _card(session)
    page = _page(owner_client, f"/admin/giftcards/sold?number={a.number}")
    assert _shown(page, a) and not _shown(page, b)
    page = _page(owner_client, f"/admin/giftcards/sold?number={b.number[-4:]}")
    assert _shown(page, b) and not _shown(page, a)
    page = _page(owner_client, "/admin/giftcards/sold?number=12")
    assert not _shown(page, a) and not _shown(page, b)


def test_filter_by_buyer_phone(owner_client, session):
    a, b = _card(session, phone=PHONE), _card(session, phone="+8613900000001")
    page = _page(owner_client, "/admin/giftcards/sold?phone=138+0013+8000")
    assert _shown(page, a) and not _shown(page, b)
    page = _page(owner_client, "/admin/giftcards/sold?phone=not-a-phone")
    assert not _shown(page, a) and not _shown(page, b)
    assert "No gift cards match these filters." in page


def test_filter_by_status_with_expiry(owner_client, session):
    clock.freeze(datetime(2026, 1, 1, 12, tzinfo=UTC))
    short = _card(session, validity_days=10)
    lasting = _card(session)
    frozen = _card(session)
    spending.freeze(db.session, frozen.id, operator_id=None, reason="Lost")
    clock.advance(timedelta(days=11))
    expired = _page(owner_client, "/admin/giftcards/sold?status=expired")
    assert _shown(expired, short) and not _shown(expired, lasting) \
        and not _shown(expired, frozen)
    active = _page(owner_client, "/admin/giftcards/sold?status=active")
    assert _shown(active, lasting) and not _shown(active, short) and not _shown(active, frozen)
    page = _page(owner_client, "/admin/giftcards/sold?status=frozen")
    assert _shown(page, frozen) and not _shown(page, lasting)
    assert "Expired" in _page(owner_client, f"/admin/giftcards/sold/{short.id}")


def test_htmx_gets_only_the_results(owner_client, session):
    card = _card(session)
    r = owner_client.get(f"/admin/giftcards/sold?number={card.number[-4:]}",
                         headers={"HX-Request": "true", "HX-Target": "results"})
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and "<html" not in body and 'id="results"' in body
    assert _shown(body, card)


def test_detail_shows_the_card_and_its_history(owner_client, session):
    card = _card(session, face=5_000, phone=PHONE)
    spending.charge(db.session, number=card.number, amount_minor=1_000, currency="CNY",
                    idempotency_key="k", store_id=None, order_external_id="ORDER-9")
    page = _page(owner_client, f"/admin/giftcards/sold/{card.id}")
    assert card.number in page and "40.00" in page and "ORDER-9" in page
    assert "Activation" in page and "Consumption" in page
    assert f'action="/admin/giftcards/sold/{card.id}/freeze"' in page
    assert owner_client.get("/admin/giftcards/sold/999999").status_code == 404
    pending = _card(session, activate=False)
    assert owner_client.get(f"/admin/giftcards/sold/{pending.id}").status_code == 404


def test_freeze_with_a_reason(owner_client, owner, session):
    card = _card(session)
    r = owner_client.post(f"/admin/giftcards/sold/{card.id}/freeze",
                          data={"reason": "Reported lost"})
    assert r.status_code == 303 and r.headers["Location"].endswith(
        f"/admin/giftcards/sold/{card.id}")
    db.session.expire_all()
    assert db.session.get(GiftCard, card.id).status == CardStatus.FROZEN
    audit = db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == "giftcard.freeze")).one()
    assert audit.staff_id == owner.id and audit.after["reason"] == "Reported lost"
    page = _page(owner_client, f"/admin/giftcards/sold/{card.id}")
    assert "Reported lost" in page and "/restore" in page and "/freeze" not in page


def test_freeze_without_a_reason_changes_nothing(owner_client, session):
    card = _card(session)
    r = owner_client.post(f"/admin/giftcards/sold/{card.id}/freeze", data={"reason": "  "},
                          follow_redirects=True)
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "Give a reason" in page
    db.session.expire_all()
    assert db.session.get(GiftCard, card.id).status == CardStatus.ACTIVE
    assert db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == "giftcard.freeze")).first() is None
    assert [t.kind for t in db.session.scalars(select(GiftCardTransaction).where(
        GiftCardTransaction.card_id == card.id))] == ["activation"]


def test_restore(owner_client, session):
    card = _card(session)
    owner_client.post(f"/admin/giftcards/sold/{card.id}/freeze", data={"reason": "Lost"})
    r = owner_client.post(f"/admin/giftcards/sold/{card.id}/restore", data={})
    assert r.status_code == 303
    db.session.expire_all()
    assert db.session.get(GiftCard, card.id).status == CardStatus.ACTIVE
    assert db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == "giftcard.restore")).one()
    # Again: refused, with the service's message.
    r = owner_client.post(f"/admin/giftcards/sold/{card.id}/restore", data={},
                          follow_redirects=True)
    assert "This gift card is not frozen." in r.get_data(as_text=True)
    assert cards.balance(db.session, db.session.get(GiftCard, card.id)) == 10_000


def test_transactions_filter(owner_client, session):
    a, b = _card(session), _card(session)
    spending.charge(db.session, number=a.number, amount_minor=700, currency="CNY",
                    idempotency_key="k", store_id=None)
    spending.freeze(db.session, b.id, operator_id=None, reason="Lost")
    page = _page(owner_client, "/admin/giftcards/transactions")
    assert "Consumption" in page and "Activation" in page and page.count("Frozen") >= 2
    page = _page(owner_client, "/admin/giftcards/transactions?kind=consumption")
    assert f"•••• {a.number[-4:]}" in page and f"•••• {b.number[-4:]}" not in page
    assert "-7.00" in page or "−7.00" in page or "7.00" in page
    page = _page(owner_client, f"/admin/giftcards/transactions?number={b.number}")
    assert f"•••• {b.number[-4:]}" in page and f"•••• {a.number[-4:]}" not in page
    page = _page(owner_client, "/admin/giftcards/transactions?kind=recharge")
    assert "No transactions match these filters." in page


def test_sold_list_queries_do_not_grow_with_rows(owner_client, session, member):
    def with_holder():
        card = _card(session, phone=PHONE)
        with transaction(session):
            session.get(GiftCard, card.id).holder_member_id = member.id
        return card

    with_holder()
    one = count_queries(owner_client, "/admin/giftcards/sold")
    for _ in range(4):
        with_holder()
    many = count_queries(owner_client, "/admin/giftcards/sold")
    assert many == one
    tx_one = count_queries(owner_client, "/admin/giftcards/transactions")
    with_holder()
    assert count_queries(owner_client, "/admin/giftcards/transactions") == tx_one


@pytest.mark.parametrize("role", ["manager", "clerk"])
def test_who_may_see_sold_cards(client, request, session, role):
    card = _card(session)
    sign_in_as(client, request.getfixturevalue(role))
    urls = ["/admin/giftcards/sold", f"/admin/giftcards/sold/{card.id}",
            "/admin/giftcards/transactions"]
    expected = 200 if role == "manager" else 403
    for url in urls:
        assert client.get(url).status_code == expected, url
    r = client.post(f"/admin/giftcards/sold/{card.id}/freeze", data={"reason": "x"})
    assert r.status_code == (303 if role == "manager" else 403)
