"""Tier settings, levels and release in the admin; progress on the member's card."""
from __future__ import annotations

from portal import clock
from portal.db import db, transaction
from portal.loyalty import services as loyalty
from portal.loyalty.models import TierSettings
from portal.members.models import MemberCard, Tier
from portal.staff.models import AuditEntry
from tests.fixtures import sign_in_as

SETTINGS = {"enabled": "y", "recalc_day": "1", "on_change": "realtime",
            "validity": "months", "validity_months": "6", "after_expiry": "rule"}


def test_build_levels_and_release(owner_client, owner, plan, member):
    assert owner_client.post(f"/admin/loyalty/{plan.id}/tiers", data=SETTINGS) \
        .status_code == 303
    owner_client.post(f"/admin/loyalty/{plan.id}/levels", data={
        "name": "Gold", "threshold": "100", "rule": "window", "window_months": "12"})
    loyalty.adjust(db.session, member_id=member.id, kind="experience", delta=150,
                   reason="test", key="k", operator_id=owner.id)
    r = owner_client.post(f"/admin/loyalty/{plan.id}/release")
    assert r.status_code == 303
    db.session.expire_all()
    card = db.session.query(MemberCard).filter_by(member_id=member.id).one()
    assert card.tier.name == "Gold"
    assert db.session.query(AuditEntry).filter_by(action="tiers.release").count() == 1
    assert "Released" in owner_client.get(f"/admin/loyalty/{plan.id}/tiers").get_data(
        as_text=True)


def test_a_level_out_of_order_is_refused_next_to_the_field(owner_client, plan):
    owner_client.post(f"/admin/loyalty/{plan.id}/levels", data={
        "name": "Gold", "threshold": "500", "rule": "accumulated", "window_months": ""})
    r = owner_client.post(f"/admin/loyalty/{plan.id}/levels", data={
        "name": "Silver", "threshold": "100", "rule": "accumulated", "window_months": ""})
    assert r.status_code == 422 and "Higher levels need higher thresholds." in \
        r.get_data(as_text=True)
    assert db.session.query(Tier).filter_by(plan_id=plan.id).count() == 2


def test_running_recalculation_polls_and_locks(owner_client, plan):
    owner_client.get(f"/admin/loyalty/{plan.id}/tiers")
    with transaction(db.session):
        db.session.query(TierSettings).update({"recalc_started_at": clock.now(),
                                               "recalc_total": 10, "recalc_done": 4})
    body = owner_client.get(f"/admin/loyalty/{plan.id}/tiers").get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in body and "4 of 10" in body
    fragment = owner_client.get(f"/admin/loyalty/{plan.id}/tiers", headers={
        "HX-Request": "true", "HX-Target": "progress"}).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="progress"') and "<html" not in fragment
    r = owner_client.post(f"/admin/loyalty/{plan.id}/tiers", data=SETTINGS)
    assert r.status_code == 422


def test_clerks_cannot_change_tiers(client, clerk, plan):
    sign_in_as(client, clerk)
    assert client.get(f"/admin/loyalty/{plan.id}/tiers").status_code == 403


def test_the_card_shows_how_much_is_left_to_the_next_tier(client, owner, plan, member):
    from portal.loyalty import tiers

    tiers.save_settings(db.session, plan.id, {"enabled": True, "on_change": "realtime",
                                              "validity": "permanent", "after_expiry": "rule"},
                        operator_id=owner.id)
    tiers.save_level(db.session, plan.id, name="Gold", threshold=500, rule="accumulated",
                     window_months=None, operator_id=owner.id)
    tiers.release(db.session, plan.id, operator_id=owner.id)
    loyalty.adjust(db.session, member_id=member.id, kind="experience", delta=120,
                   reason="t", key="k", operator_id=owner.id)
    sign_in_as(client, member)
    body = client.get("/card").get_data(as_text=True)
    assert "380 more experience to Gold" in body and "<progress" in body


def test_staff_record_a_tier_while_tiers_are_not_computed(owner_client, owner, plan, member):
    from portal.loyalty import tiers

    gold = tiers.save_level(db.session, plan.id, name="Gold", threshold=500,
                            rule="accumulated", window_months=None, operator_id=owner.id)
    card = db.session.merge(member).cards[0]
    owner_client.post(f"/admin/cards/{card.id}/tier", data={"tier_id": gold.id})
    db.session.expire_all()
    assert db.session.get(MemberCard, card.id).tier_id == gold.id
    assert db.session.query(AuditEntry).filter_by(action="card.tier").count() == 1
    tiers.release(db.session, plan.id, operator_id=owner.id)           # now computed
    owner_client.post(f"/admin/cards/{card.id}/tier", data={"tier_id": gold.id})
    assert db.session.query(AuditEntry).filter_by(action="card.tier").count() == 1
