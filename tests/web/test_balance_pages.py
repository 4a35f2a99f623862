"""The member's balance page: split, locks, history paging, only their own cards."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from portal import clock
from portal.db import db, transaction
from portal.wallet import balance as wallet
from portal.wallet.models import PlanKind, Topup, TopupPlan, TopupStatus
from tests.fixtures import count_queries, sign_in_as


@pytest.fixture(autouse=True)
def _shanghai():
    clock.set_timezone("Asia/Shanghai")
    clock.freeze(datetime(2026, 3, 10, 4, 0, tzinfo=UTC))


def fund(card, principal, bonus=0, key="fund"):
    with transaction(db.session):
        wallet.credit(db.session, card, principal=principal, bonus=bonus, key=key,
                      reason="topup", source=("test", 1))


@pytest.fixture
def card(member):
    return db.session.merge(member).cards[0]


def test_empty_state_says_what_to_do(member_client):
    body = member_client.get("/balance").get_data(as_text=True)
    assert "No balance yet" in body and "Top up" in body


def test_page_shows_total_split_and_history(member_client, card):
    fund(card, 10000, 800)
    wallet.charge(db.session, card_id=card.id, amount_minor=2500, currency="CNY",
                  idempotency_key="k", channel="POS")
    body = member_client.get("/balance").get_data(as_text=True)
    assert "¥83.00" in body and "¥75.00" in body and "¥8.00" in body
    assert "Paid a bill" in body and "Principal" in body and "Bonus" in body
    assert "principal first" in body


def test_page_shows_what_is_locked_until_midnight(member_client, card):
    plan = TopupPlan(kind=PlanKind.CUSTOM, name="Custom", currency="CNY",
                     same_day_usable_bp=8000)
    db.session.add(plan)
    db.session.flush()
    db.session.add(Topup(plan_id=plan.id, member_id=card.member_id, card_id=card.id,
                         currency="CNY", amount_minor=10000, status=TopupStatus.CREDITED,
                         credited_at=clock.now()))
    db.session.commit()
    fund(card, 10000)
    body = member_client.get("/balance").get_data(as_text=True)
    assert "¥20.00 from today" in body and "¥80.00 now" in body


def test_history_loads_more_as_a_fragment(member_client, card):
    for i in range(25):
        fund(card, 100, key=f"f{i}")
    page = member_client.get("/balance").get_data(as_text=True)
    assert page.count("history__item") == 20 and "Load more" in page
    oldest_shown = wallet.history(db.session, card.id)[-1].id
    more = member_client.get(f"/balance?card={card.id}&before={oldest_shown}",
                             headers={"HX-Request": "true",
                                      "HX-Target": f"history-{card.id}"})
    body = more.get_data(as_text=True)
    assert more.status_code == 200 and "<html" not in body
    assert body.count("history__item") == 5 and "Load more" not in body


def test_another_members_card_is_not_found(client, member, other_member, card):
    other = db.session.merge(other_member).cards[0]
    fund(other, 500, key="o")
    sign_in_as(client, member)
    assert client.get(f"/balance?card={other.id}").status_code == 404
    assert client.get(f"/balance?card={other.id}&before=999").status_code == 404
    assert "¥5.00" not in client.get("/balance").get_data(as_text=True)


def test_page_needs_a_signed_in_member(client):
    assert client.get("/balance").status_code in (302, 303)


def test_query_count_does_not_grow_with_history(member_client, card):
    fund(card, 100, key="first")
    few = count_queries(member_client, "/balance")
    for i in range(30):
        fund(card, 100, key=f"f{i}")
    assert count_queries(member_client, "/balance") == few


def test_the_card_page_shows_the_cards_prepaid_balance(member_client, member):
    card = db.session.merge(member).cards[0]
    with transaction(db.session):
        wallet.credit(db.session, card, principal=8800, bonus=1200, key="card-page",
                      reason="topup", source=("test", 1))
    page = member_client.get("/card").get_data(as_text=True)
    assert "¥100.00" in page and 'href="/balance"' in page
