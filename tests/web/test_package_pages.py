"""The member's package pages over HTTP with the demo provider: buy, renew early, see the
stacked periods; the agreement is required at its field."""
from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from portal import clock
from portal.benefits import packages
from portal.benefits.models import PackagePurchase
from tests.fixtures import count_queries


@pytest.fixture(autouse=True)
def _shanghai():
    clock.set_timezone("Asia/Shanghai")
    clock.freeze(datetime(2026, 12, 8, 23, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    yield
    clock.set_timezone("UTC")


@pytest.fixture
def premium(session, owner):
    return packages.create(session, {
        "name": "Premium", "currency": "CNY", "channels": ["ONLINE"],
        "agreement": "You agree to the terms.",
        "rules": [{"duration_days": 3, "original_minor": 19900, "first_minor": 15900,
                   "renewal_minor": 16900},
                  {"duration_days": 90, "original_minor": 49900}],
        "items": [{"kind": "first_gift", "name": "Welcome points", "points": 500}]},
        operator_id=owner.id, activate=True)


def _buy(client, package, rule_index=0):
    r = client.post(f"/packages/{package.id}",
                    data={"rule": package.rules[rule_index].id, "agree": "y"})
    assert r.status_code == 303, r.get_data(as_text=True)
    token = re.search(r"/payments/demo/([\w-]+)", r.headers["Location"]).group(1)
    client.post(f"/payments/demo/{token}", data={"action": "pay"})
    return token


def test_shop_shows_the_price_that_applies_to_me(member_client, premium):
    page = member_client.get("/packages").get_data(as_text=True)
    assert "Premium" in page and "159.00" in page and "First purchase price" in page


def test_pay_without_the_agreement_is_refused_at_the_field(member_client, premium, session):
    r = member_client.post(f"/packages/{premium.id}", data={"rule": premium.rules[0].id})
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    assert 'id="agree-error"' in page and "accept the purchase agreement" in page
    assert session.query(PackagePurchase).count() == 0


def test_buy_renew_early_and_see_stacked_periods(member_client, premium, session):
    _buy(member_client, premium)
    page = member_client.get(f"/packages/{premium.id}").get_data(as_text=True)
    assert "renews it early" in page and "169.00" in page
    _buy(member_client, premium)
    rows = session.query(PackagePurchase).order_by(PackagePurchase.id).all()
    assert [r.status for r in rows] == ["paid", "paid"]
    assert rows[1].starts_at == rows[0].ends_at
    mine = member_client.get("/packages/mine").get_data(as_text=True)
    assert mine.count("history__item") == 2
    assert "In effect" in mine and "Starts later" in mine and "Renew early" in mine
    assert "Welcome points" in mine
    assert "Dec 14, 2026" in mine          # the renewal runs 3 days after the first


def test_pay_sent_by_htmx_moves_the_whole_page_to_the_checkout(member_client, premium):
    r = member_client.post(f"/packages/{premium.id}", headers={"HX-Request": "true"},
                           data={"rule": premium.rules[0].id, "agree": "y"})
    assert r.status_code == 200 and "/payments/demo/" in r.headers["HX-Redirect"]
    assert r.get_data(as_text=True) == ""


def test_payment_result_leads_to_my_packages(member_client, premium):
    token = _buy(member_client, premium)
    page = member_client.get(f"/payments/{token}").get_data(as_text=True)
    assert "/packages/mine" in page


def test_a_package_not_for_me_is_not_found(member_client, premium, session, owner):
    packages.set_status(session, premium.id, "deactivate", operator_id=owner.id)
    assert member_client.get(f"/packages/{premium.id}").status_code == 404


def test_my_packages_queries_do_not_grow_with_periods(member_client, premium):
    _buy(member_client, premium)
    one = count_queries(member_client, "/packages/mine")
    _buy(member_client, premium)
    _buy(member_client, premium, 1)
    assert count_queries(member_client, "/packages/mine") == one


def test_empty_my_packages_says_what_to_do(member_client):
    page = member_client.get("/packages/mine").get_data(as_text=True)
    assert "Browse packages" in page


def test_pages_need_a_member(client):
    assert client.get("/packages").status_code in (302, 303)
