""""Preview as…" from each journey's admin page: a chosen member or a synthetic profile,
the member's own page read-only, every POST refused, and a synthetic profile that leaves
no rows behind."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from portal import clock, ledger
from portal.benefits import packages
from portal.campaigns.models import Activity
from portal.db import db
from portal.giftcards.models import GiftCardProduct
from portal.members.models import Member, MemberCard, RegistrationPage
from portal.staff.models import AuditEntry
from portal.wallet.models import TopupPlan
from tests.fixtures import sign_in_as


@pytest.fixture
def journeys(owner, plan, page):
    activity = Activity(kind="profile_completion", name="Profile", code="PROFILE",
                        starts_at=clock.now() - timedelta(days=1),
                        ends_at=clock.now() + timedelta(days=1), status="active",
                        required_fields=["full_name", "born_on"], points=10)
    topup = TopupPlan(kind="range", name="Any amount", currency="CNY", status="active",
                      min_minor=10_000, max_minor=50_000, bonus_bp=1000)
    product = GiftCardProduct(kind="electronic", name="Gift", currency="CNY", status="active",
                              denominations=[10_000], channels=["ONLINE"])
    db.session.add_all([activity, topup, product])
    p = db.session.merge(page)
    p.status, p.published_at = "published", clock.now()
    db.session.commit()
    club = packages.create(db.session, {
        "name": "Club", "currency": "CNY", "channels": ["ONLINE"], "description": "Club",
        "rules": [{"duration_days": 30, "original_minor": 9900}], "items": []},
        operator_id=owner.id, activate=True)
    return {"page": (p.id, f"/r/{p.slug}"), "activity": (activity.id, "/activities/PROFILE"),
            "package": (club.id, f"/packages/{club.id}"), "topup": (topup.id, "/topup"),
            "giftcard": (product.id, f"/giftcards/buy/{product.id}"), "student": (None, "/student")}


def _url(kind, target):
    return f"/admin/preview/{kind}/{target}" if target else f"/admin/preview/{kind}"


def _synthetic(plan, **changes) -> dict:
    tier = db.session.merge(plan).tiers[0]
    return {"who": "synthetic", "tier_id": tier.id, "name": "Pretend Pat",
            "born_on": "1990-05-31", "prepaid": "123.45", "points": "480", **changes}


def _rows() -> tuple[int, ...]:
    return tuple(db.session.scalar(select(func.count()).select_from(m))
                 for m in (Member, MemberCard, ledger.Entry, ledger.Account))


ADMIN_PAGES = {"page": "/admin/pages/{}", "activity": "/admin/activities/{}",
               "package": "/admin/packages/{}", "topup": "/admin/topups/{}",
               "giftcard": "/admin/giftcards/{}", "student": "/admin/students/settings"}


@pytest.mark.parametrize("kind", list(ADMIN_PAGES))
def test_each_journeys_admin_page_offers_preview_as(owner_client, journeys, kind):
    target, _member_url = journeys[kind]
    body = owner_client.get(ADMIN_PAGES[kind].format(target)).get_data(as_text=True)
    assert f'href="{_url(kind, target)}"' in body
    form = owner_client.get(_url(kind, target)).get_data(as_text=True)
    assert 'name="lookup"' in form and 'name="tier_id"' in form


@pytest.mark.parametrize("kind", ["activity", "package", "topup", "giftcard", "student"])
def test_synthetic_preview_opens_the_journey_and_leaves_no_rows(owner_client, journeys, plan,
                                                               kind):
    target, member_url = journeys[kind]
    before = _rows()
    r = owner_client.post(_url(kind, target), data=_synthetic(plan))
    assert r.status_code == 303 and r.headers["Location"].endswith(member_url)
    page = owner_client.get(member_url)
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "preview-banner" in body and "Pretend Pat" in body
    assert owner_client.get("/card").status_code == 200
    db.session.expire_all()
    assert _rows() == before


def test_synthetic_profile_shows_its_balances_on_the_card(owner_client, journeys, plan):
    owner_client.post(_url("topup", journeys["topup"][0]), data=_synthetic(plan))
    body = owner_client.get("/card").get_data(as_text=True)
    assert "¥123.45" in body and "480" in body and "Pretend Pat" in body


def test_registration_page_preview_shows_where_a_member_lands(owner_client, journeys, plan):
    target, member_url = journeys["page"]
    r = owner_client.post(_url("page", target), data=_synthetic(plan))
    assert r.headers["Location"].endswith(member_url)
    # A member who opens a registration page is sent on, never registered twice.
    landing = owner_client.get(member_url)
    assert landing.status_code == 303
    visits = db.session.scalar(select(RegistrationPage.visit_count).where(
        RegistrationPage.id == target))
    assert visits == 0


def test_any_post_in_a_synthetic_preview_is_refused(owner_client, journeys, plan):
    owner_client.post(_url("topup", journeys["topup"][0]), data=_synthetic(plan))
    before = _rows()
    for url, data in (("/me/edit", {"full_name": "Changed"}),
                      (f"/topup/{journeys['topup'][0]}?card=1", {"amount": "100"}),
                      (f"/packages/{journeys['package'][0]}", {"agree": "y"}),
                      ("/activities/PROFILE/claim", {})):
        assert owner_client.post(url, data=data).status_code == 403
    db.session.expire_all()
    assert _rows() == before


def test_preview_of_a_real_member_opens_the_journey_read_only(owner_client, journeys, member):
    m = db.session.merge(member)
    target, member_url = journeys["giftcard"]
    r = owner_client.post(_url("giftcard", target), data={"who": "member",
                                                          "lookup": m.cards[0].number})
    assert r.headers["Location"].endswith(member_url)
    body = owner_client.get(member_url).get_data(as_text=True)
    assert "preview-banner" in body and m.display_name in body
    r = owner_client.post(member_url, data={"amount": "10000"})
    assert r.status_code == 403 and "nothing can be changed" in r.get_data(as_text=True)


def test_preview_finds_a_member_by_mobile_and_refuses_an_unknown_one(owner_client, journeys,
                                                                     member):
    target, _ = journeys["topup"]
    r = owner_client.post(_url("topup", target), data={"who": "member", "lookup": "+8613900999999"})
    assert r.status_code == 422 and 'id="lookup-error"' in r.get_data(as_text=True)
    r = owner_client.post(_url("topup", target), data={"who": "member",
                                                       "lookup": db.session.merge(member).mobile})
    assert r.status_code == 303


def test_synthetic_profile_errors_show_at_their_fields(owner_client, journeys, plan):
    target, _ = journeys["topup"]
    r = owner_client.post(_url("topup", target), data=_synthetic(
        plan, tier_id="0", prepaid="lots", points="-3",
        born_on=(date.today() + timedelta(days=400)).isoformat()))
    body = r.get_data(as_text=True)
    assert r.status_code == 422
    for name in ("tier_id", "prepaid", "points", "born_on"):
        assert f'id="{name}-error"' in body, name


def test_each_preview_start_is_audited(owner_client, journeys, plan, member):
    owner_client.post(_url("package", journeys["package"][0]), data=_synthetic(plan))
    owner_client.post(_url("student", None), data={"who": "member",
                                                   "lookup": db.session.merge(member).mobile})
    entries = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    actions = [e.action for e in entries]
    assert "member.preview_synthetic" in actions and "member.preview" in actions


def test_ending_a_preview_returns_to_the_admin_page(owner_client, journeys, plan):
    target, _ = journeys["topup"]
    owner_client.post(_url("topup", target), data=_synthetic(plan))
    r = owner_client.post("/admin/preview/end")
    assert r.headers["Location"].endswith(f"/admin/topups/{target}")
    assert "preview-banner" not in owner_client.get("/card").get_data(as_text=True)


def test_admin_pages_still_save_during_a_synthetic_preview(owner_client, journeys, plan,
                                                           member):
    owner_client.post(_url("topup", journeys["topup"][0]), data=_synthetic(plan))
    r = owner_client.post(f"/admin/members/{member.id}/tags", data={"tags": "vip"})
    assert r.status_code == 303
    db.session.expire_all()
    assert [t.name for t in db.session.get(Member, member.id).tags] == ["vip"]


def test_clerks_cannot_start_journey_previews(client, clerk, journeys, plan):
    sign_in_as(client, clerk)
    target, _ = journeys["topup"]
    assert client.get(_url("topup", target)).status_code == 403
    assert client.post(_url("topup", target), data=_synthetic(plan)).status_code == 403
