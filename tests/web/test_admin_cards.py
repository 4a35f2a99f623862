"""Card management and the till's member centre over HTTP: roles, filters, balances, edits
(audited, refused at the field), lookups by card, QR payload or mobile, adding a member."""
from __future__ import annotations

from datetime import date

import pytest

from portal import clock
from portal.db import db, transaction
from portal.loyalty import services as loyalty
from portal.members import cards, till
from portal.members.errors import MemberError
from portal.members.models import CardStatus, Member, MemberCard, Tier
from portal.staff.models import AuditEntry
from portal.wallet import balance as wallet
from tests.factories import CardPlanFactory, CouponTemplateFactory, MemberFactory
from tests.fixtures import count_queries, member_with_card, sign_in_as


def _card(member) -> MemberCard:
    return db.session.query(MemberCard).filter_by(member_id=member.id).first()


def _fund(member, owner, *, principal=0, bonus=0, points=0):
    card = _card(member)
    with transaction(db.session):
        wallet.credit(db.session, db.session.merge(card), principal=principal, bonus=bonus,
                      key=f"t:{card.id}", reason="topup", source=("test", card.id))
    if points:
        loyalty.adjust(db.session, member_id=member.id, kind="points", delta=points,
                       reason="test", key=f"p:{member.id}", operator_id=owner.id)


@pytest.fixture
def manager_client(client, manager):
    sign_in_as(client, manager)
    return client


@pytest.fixture
def clerk_client(client, clerk):
    sign_in_as(client, clerk)
    return client


# --- card list ----------------------------------------------------------------------------

def test_card_list_shows_balances_tier_and_points(manager_client, member, owner):
    _fund(member, owner, principal=10000, bonus=500, points=320)
    body = manager_client.get("/admin/cards").get_data(as_text=True)
    assert _card(member).grouped_number in body
    assert "105.00" in body and "320" in body and "Classic" in body


def test_card_list_is_for_managers_not_clerks(clerk_client):
    assert clerk_client.get("/admin/cards").status_code == 403
    assert "/admin/cards" not in clerk_client.get("/admin/till").get_data(as_text=True)


def test_card_list_finds_a_card_by_its_last_four_digits(manager_client, member, other_member):
    number = _card(member).number
    body = manager_client.get(f"/admin/cards?number={number[-4:]}").get_data(as_text=True)
    assert _card(member).grouped_number in body
    assert _card(other_member).grouped_number not in body or \
        _card(other_member).number.endswith(number[-4:])


def test_card_list_finds_by_whole_number_name_and_mobile(manager_client, member, other_member):
    other = _card(other_member).grouped_number
    for query in (f"number={_card(member).number}", f"q={member.full_name}",
                  f"q={member.mobile[-8:]}"):
        body = manager_client.get(f"/admin/cards?{query}").get_data(as_text=True)
        assert _card(member).grouped_number in body and other not in body, query


def test_card_list_filters_by_status_including_expired_by_date(manager_client, plan):
    active, frozen, lapsed = (member_with_card(plan) for _ in range(3))
    with transaction(db.session):
        db.session.merge(_card(frozen)).status = CardStatus.FROZEN
        db.session.merge(_card(lapsed)).expires_at = clock.now()
    for status, wanted in (("active", active), ("frozen", frozen), ("expired", lapsed)):
        body = manager_client.get(f"/admin/cards?status={status}").get_data(as_text=True)
        shown = [m for m in (active, frozen, lapsed) if _card(m).grouped_number in body]
        assert shown == [wanted], status


def test_card_list_filters_by_plan_and_tier(manager_client, member):
    other_plan = CardPlanFactory(tier="Gold", is_default=False)
    other = member_with_card(other_plan)
    body = manager_client.get(f"/admin/cards?plan_id={other_plan.id}").get_data(as_text=True)
    assert _card(other).grouped_number in body and _card(member).grouped_number not in body
    tier_id = _card(member).tier_id
    body = manager_client.get(f"/admin/cards?tier_id={tier_id}").get_data(as_text=True)
    assert _card(member).grouped_number in body and _card(other).grouped_number not in body


def test_card_list_queries_do_not_grow_with_rows(manager_client, plan, owner):
    _fund(member_with_card(plan), owner, principal=100, points=5)
    few = count_queries(manager_client, "/admin/cards")
    for _ in range(15):
        _fund(member_with_card(plan), owner, principal=100, points=5)
    assert count_queries(manager_client, "/admin/cards") == few


def test_card_list_loads_more_after_a_page(manager_client, plan):
    made = [member_with_card(plan) for _ in range(cards_page() + 2)]
    first = manager_client.get("/admin/cards").get_data(as_text=True)
    assert "Load more" in first and _card(made[0]).grouped_number not in first
    oldest = min(_card(m).id for m in made[2:])
    more = manager_client.get(f"/admin/cards?before={oldest + 0}",
                              headers={"HX-Request": "true", "HX-Target": "load_more"})
    assert "<html" not in more.get_data(as_text=True)
    assert _card(made[0]).grouped_number in more.get_data(as_text=True)


def cards_page() -> int:
    from portal.admin.cards import PAGE

    return PAGE


# --- editing a card -------------------------------------------------------------------------

def test_freezing_a_card_needs_a_reason_and_is_audited(manager_client, member, manager):
    card = _card(member)
    r = manager_client.post(f"/admin/cards/{card.id}", data={
        "status": "frozen", "tier_id": card.tier_id, "reason": ""})
    assert r.status_code == 422 and 'id="reason-error"' in r.get_data(as_text=True)
    db.session.expire_all()
    assert _card(member).status == CardStatus.ACTIVE
    r = manager_client.post(f"/admin/cards/{card.id}", data={
        "status": "frozen", "tier_id": card.tier_id, "reason": "Lost card"})
    assert r.status_code == 303
    db.session.expire_all()
    assert _card(member).status == CardStatus.FROZEN
    entry = db.session.query(AuditEntry).filter_by(action="card.update").one()
    assert entry.staff_id == manager.id and entry.before["status"] == "active"
    assert entry.after == {**entry.after, "status": "frozen", "reason": "Lost card"}


def test_expiry_moves_only_on_plans_whose_cards_expire(manager_client, owner):
    lasting = member_with_card(CardPlanFactory(validity_days=None))
    with pytest.raises(MemberError) as refused:
        cards.update_card(db.session, _card(lasting).id, status="active",
                          expires_on=date(2030, 1, 31), tier_id=None, reason="",
                          operator_id=owner.id)
    assert "expires_on" in refused.value.details["errors"]
    assert 'name="expires_on"' not in manager_client.get(
        f"/admin/cards/{_card(lasting).id}").get_data(as_text=True)
    yearly = member_with_card(CardPlanFactory(validity_days=365))
    card = _card(yearly)
    r = manager_client.post(f"/admin/cards/{card.id}", data={
        "status": "active", "expires_on": "2030-01-31", "reason": "Goodwill"})
    assert r.status_code == 303
    db.session.expire_all()
    assert clock.local(_card(yearly).expires_at).date() == date(2030, 2, 1)
    assert "2030" in manager_client.get(f"/admin/cards/{card.id}").get_data(as_text=True)


def test_bad_expiry_date_is_refused_at_the_field(manager_client):
    card = _card(member_with_card(CardPlanFactory(validity_days=30)))
    r = manager_client.post(f"/admin/cards/{card.id}", data={
        "status": "nonsense", "expires_on": "31/01/2030", "reason": ""})
    body = r.get_data(as_text=True)
    assert r.status_code == 422 and 'id="expires_on-error"' in body
    assert 'id="status-error"' in body


def test_tier_is_recorded_by_hand_when_the_plan_does_not_compute_tiers(manager_client, member,
                                                                     plan):
    with transaction(db.session):
        gold = Tier(plan_id=plan.id, name="Gold", rank=1)
        db.session.add(gold)
    card = _card(member)
    r = manager_client.post(f"/admin/cards/{card.id}", data={
        "status": "active", "tier_id": gold.id, "reason": "VIP"})
    assert r.status_code == 303
    db.session.expire_all()
    assert _card(member).tier_id == gold.id
    assert db.session.query(AuditEntry).filter_by(action="card.tier").count() == 1


def test_computed_tiers_cannot_be_set_on_the_card(tiered, member, owner):
    gold = db.session.query(Tier).filter_by(plan_id=tiered.id, name="Gold").one()
    with pytest.raises(MemberError) as refused:
        cards.update_card(db.session, _card(member).id, status="active", expires_on=None,
                          tier_id=gold.id, reason="", operator_id=owner.id)
    assert "tier_id" in refused.value.details["errors"]


def test_card_page_shows_computed_tiers_as_read_only(manager_client, tiered, member):
    body = manager_client.get(f"/admin/cards/{_card(member).id}").get_data(as_text=True)
    assert 'name="tier_id"' not in body and "cannot be set by hand" in body


def test_card_page_embeds_the_quick_issue_and_links_the_profile(manager_client, member):
    CouponTemplateFactory()
    body = manager_client.get(f"/admin/cards/{_card(member).id}").get_data(as_text=True)
    assert f"/admin/members/{member.id}/coupons" in body and 'name="nonce"' in body
    assert f'href="/admin/members/{member.id}"' in body


# --- the member centre ------------------------------------------------------------------------

def test_clerk_scans_a_card_and_sees_points_balance_and_coupons(clerk_client, member, owner):
    _fund(member, owner, principal=5000, points=120)
    template = CouponTemplateFactory(title="Free coffee")
    from portal.coupons import services as coupons

    coupons.issue(db.session, member_id=member.id, template_id=template.id, key="k1",
                  source=coupons.Source("admin", reason="test"))
    r = clerk_client.get(f"/admin/till?q={_card(member).number}")
    body = r.get_data(as_text=True)
    assert r.status_code == 200
    assert member.full_name in body and "120" in body and "50.00" in body
    assert "Free coffee" in body and f"/admin/members/{member.id}" in body


def test_member_centre_reads_a_grouped_card_number_and_a_mobile(clerk_client, member):
    for q in (_card(member).grouped_number, member.mobile, member.mobile.removeprefix("+86")):
        assert member.full_name in clerk_client.get(
            "/admin/till", query_string={"q": q}).get_data(as_text=True), q


def test_member_centre_offers_to_add_an_unknown_mobile(clerk_client):
    body = clerk_client.get("/admin/till?q=13912349999").get_data(as_text=True)
    assert "No member has" in body and "/admin/till/join?mobile=13912349999" in body


def test_member_centre_queries_do_not_grow_with_coupons(clerk_client, member):
    from portal.coupons import services as coupons

    template = CouponTemplateFactory()
    url = f"/admin/till?q={_card(member).number}"
    coupons.issue(db.session, member_id=member.id, template_id=template.id, key="a",
                  source=coupons.Source("admin", reason="t"))
    few = count_queries(clerk_client, url)
    coupons.issue(db.session, member_id=member.id, template_id=template.id, key="b",
                  quantity=5, source=coupons.Source("admin", reason="t"))
    assert count_queries(clerk_client, url) == few


def test_lookup_finds_card_numbers_and_mobiles(member):
    card = _card(member)
    assert till.find(db.session, card.number).member.id == member.id
    assert till.find(db.session, f" {card.grouped_number} ").member.id == member.id
    assert till.find(db.session, member.mobile).member.id == member.id
    assert till.find(db.session, "nonsense").member is None


def test_clerk_adds_a_member_on_the_spot(clerk_client, clerk, plan):
    r = clerk_client.post("/admin/till/join", data={
        "kind": "member", "plan_id": plan.id, "store_id": clerk.store_id,
        "mobile": "13912345111", "full_name": "Walk In"})
    assert r.status_code == 303
    m = db.session.query(Member).filter_by(mobile="+8613912345111").one()
    assert m.is_member and m.enroll_store_id == clerk.store_id
    assert r.headers["Location"].endswith(f"q={m.cards[0].number}")
    assert db.session.query(AuditEntry).filter_by(action="member.create",
                                                  staff_id=clerk.id).count() == 1


def test_adding_an_existing_mobile_shows_that_member(clerk_client, clerk, member, plan):
    r = clerk_client.post("/admin/till/join", data={
        "kind": "member", "plan_id": plan.id, "store_id": clerk.store_id,
        "mobile": member.mobile, "full_name": "Someone Else"})
    assert r.status_code == 303 and "/admin/till?q=" in r.headers["Location"]
    assert db.session.query(Member).count() == 1
    body = clerk_client.get(r.headers["Location"]).get_data(as_text=True)
    assert member.full_name in body


def test_adding_a_member_without_plan_or_mobile_is_refused_at_the_fields(clerk_client, clerk):
    r = clerk_client.post("/admin/till/join", data={
        "kind": "member", "plan_id": 0, "store_id": clerk.store_id, "mobile": "",
        "full_name": ""})
    body = r.get_data(as_text=True)
    assert r.status_code == 422
    for name in ("mobile", "plan_id", "full_name"):
        assert f'id="{name}-error"' in body
    assert db.session.query(Member).count() == 0


def test_member_centre_is_in_every_roles_menu(clerk_client):
    body = clerk_client.get("/admin/").get_data(as_text=True)
    assert "/admin/till" in body


def test_member_page_links_the_card_for_managers_only(client, manager, clerk, member):
    card = _card(member)
    sign_in_as(client, manager)
    assert f"/admin/cards/{card.id}" in client.get(
        f"/admin/members/{member.id}").get_data(as_text=True)
    sign_in_as(client, clerk)
    assert f"/admin/cards/{card.id}" not in client.get(
        f"/admin/members/{member.id}").get_data(as_text=True)
    assert client.get(f"/admin/cards/{card.id}").status_code == 403
    assert client.post(f"/admin/cards/{card.id}", data={"status": "frozen",
                                                        "reason": "x"}).status_code == 403


def test_member_centre_shows_a_customer_without_a_card(clerk_client):
    customer = MemberFactory(full_name="No Card Yet")
    body = clerk_client.get(f"/admin/till?q={customer.mobile}").get_data(as_text=True)
    assert "No Card Yet" in body and "without a card" in body
