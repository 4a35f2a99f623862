"""The member's top-up and pay-a-bill pages over HTTP, with the demo provider."""
from __future__ import annotations

import re

import pytest

from portal.db import db
from portal.members.models import MemberCard
from portal.payments.models import Payment
from portal.wallet import balance as wallet
from portal.wallet.models import SmartPlan, SmartTier, TopupPlan
from tests.factories import StoreFactory
from tests.fixtures import count_queries


@pytest.fixture
def plans_on_sale():
    db.session.add_all([
        TopupPlan(kind="fixed", name="Top up 100", currency="CNY", status="active",
                  amount_minor=10000, bonus_minor=1000, bonus_points=0),
        TopupPlan(kind="range", name="Your amount", currency="CNY", status="active",
                  min_minor=5000, max_minor=50000, bonus_bp=1000, points_bp=0),
        TopupPlan(kind="fixed", name="Hidden", currency="CNY", status="active",
                  amount_minor=100, visible=False)])
    db.session.commit()
    return {p.name: p for p in db.session.query(TopupPlan)}


def _card(member) -> MemberCard:
    return db.session.query(MemberCard).filter_by(member_id=member.id).one()


def test_the_list_shows_visible_plans_only(member_client, plans_on_sale):
    page = member_client.get("/topup").get_data(as_text=True)
    assert "Top up 100" in page and "Your amount" in page and "Hidden" not in page
    assert "Demo payments" in page


def test_top_up_with_the_demo_provider_end_to_end(member_client, member, plans_on_sale):
    plan, card = plans_on_sale["Top up 100"], _card(member)
    r = member_client.post(f"/topup/{plan.id}", data={"card": card.id})
    assert r.status_code == 303
    token = re.search(r"/payments/demo/([\w-]+)", r.headers["Location"]).group(1)
    member_client.post(f"/payments/demo/{token}", data={"action": "pay"})
    status = member_client.get(f"/payments/{token}").get_data(as_text=True)
    assert "Paid. Thank you!" in status and "/balance" in status
    assert wallet.balance(db.session, card.id).total == 11000


def test_the_range_quote_follows_the_amount_typed(member_client, member, plans_on_sale):
    plan, card = plans_on_sale["Your amount"], _card(member)
    r = member_client.get(f"/topup/{plan.id}?card={card.id}&amount=200",
                          headers={"HX-Request": "true", "HX-Target": "quote"})
    fragment = r.get_data(as_text=True)
    assert "<html" not in fragment and "¥220.00" in fragment      # 200 + 10% bonus
    r = member_client.post(f"/topup/{plan.id}", data={"card": card.id, "amount": "600"})
    assert r.status_code == 422 and "within the plan" in r.get_data(as_text=True)
    assert db.session.query(Payment).count() == 0


def test_another_members_card_cannot_be_topped_up(member_client, other_member, plans_on_sale):
    plan = plans_on_sale["Top up 100"]
    assert member_client.post(f"/topup/{plan.id}", data={"card": _card(other_member).id}) \
        .status_code == 404


def test_a_bad_recharge_code_says_so_next_to_the_field(member_client, member):
    r = member_client.post("/topup/code", data={"card": _card(member).id, "code": "NOPE"})
    assert r.status_code == 422 and "not right" in r.get_data(as_text=True)


@pytest.fixture
def smart_plan():
    plan = SmartPlan(name="Short? Top up", currency="CNY", status="active", rounding_minor=10,
                     tiers=[SmartTier(position=1, kind="discount", multiplier_bp=12000,
                                      bonus_bp=800)])
    db.session.add(plan)
    db.session.commit()
    return plan


def test_a_short_balance_offers_smart_top_ups_and_one_pays_the_bill(member_client, member,
                                                                  smart_plan):
    store = StoreFactory()
    card = _card(member)
    r = member_client.post("/pay", data={"card": card.id, "store": store.code,
                                         "amount": "100", "nonce": "n1"},
                           headers={"HX-Request": "true", "HX-Target": "bill"})
    fragment = r.get_data(as_text=True)
    assert r.status_code == 409 and "<dialog open" in fragment
    assert "Top up ¥120.00 and pay" in fragment and "+ ¥8.00 bonus" in fragment
    r = member_client.post("/pay/smart", data={"card": card.id, "store": store.code,
                                               "amount": "100", "plan_id": smart_plan.id,
                                               "tier_id": smart_plan.tiers[0].id})
    token = re.search(r"/payments/demo/([\w-]+)", r.headers["Location"]).group(1)
    member_client.post(f"/payments/demo/{token}", data={"action": "pay"})
    assert wallet.balance(db.session, card.id).total == 2800
    r = member_client.post("/pay", data={"card": card.id, "store": store.code,
                                         "amount": "20", "nonce": "n2"})
    assert r.status_code == 303
    assert wallet.balance(db.session, card.id).total == 800


def test_pay_page_bad_input(member_client, member):
    r = member_client.post("/pay", data={"card": _card(member).id, "store": "",
                                         "amount": "abc"})
    page = r.get_data(as_text=True)
    assert r.status_code == 422 and "Choose the store" in page and "Enter an amount" in page


def test_top_up_page_queries_do_not_grow_with_plans(member_client, plans_on_sale):
    few = count_queries(member_client, "/topup")
    db.session.add_all([TopupPlan(kind="fixed", name=f"More {i}", currency="CNY",
                                  status="active", amount_minor=1000 * (i + 1))
                        for i in range(6)])
    db.session.commit()
    assert count_queries(member_client, "/topup") == few


def test_paying_from_the_balance_with_htmx_moves_the_whole_page(member_client, member):
    from portal.db import transaction

    card = _card(member)
    with transaction(db.session):
        wallet.credit(db.session, db.session.merge(card), principal=5000, bonus=0,
                      key="t", reason="topup", source=("topup", 0))
    store = StoreFactory()
    r = member_client.post("/pay", data={"card": card.id, "store": store.code,
                                         "amount": "20", "nonce": "n"},
                           headers={"HX-Request": "true", "HX-Target": "bill"})
    assert r.status_code == 200 and r.headers["HX-Redirect"] == "/balance"
    assert wallet.balance(db.session, card.id).total == 3000
