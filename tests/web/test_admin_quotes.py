"""The admin quote preview: managers price a basket for any member; nothing is saved."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from portal import clock
from portal.benefits.models import Benefit
from portal.db import db
from tests.fixtures import sign_in_as

URL = "/admin/benefits/quote"


@pytest.fixture(autouse=True)
def _shanghai():
    clock.set_timezone("Asia/Shanghai")
    clock.freeze(datetime(2026, 3, 6, 4, 0, tzinfo=UTC))
    yield
    clock.set_timezone("UTC")


@pytest.fixture
def benefits():
    db.session.add_all([
        Benefit(kind="discount", name="Ten off", currency="CNY", discount_bp=1000),
        Benefit(kind="member_price", name="Latte price", currency="CNY",
                prices=[{"product_id": "LATTE", "price_minor": 2500}]),
        Benefit(kind="discount", name="Shop only", currency="CNY", discount_bp=3000,
                channels=["ONLINE"])])
    db.session.commit()


def _args(card_no, store, **extra):
    return {"member": card_no, "store_id": store.id, "channel": "POS",
            "at": "2026-03-06T12:00", "rows": 2, "quote": "1",
            "product_id_0": "LATTE", "category_0": "coffee", "quantity_0": "2",
            "unit_price_0": "30.00", "product_id_1": "TEA", "quantity_1": "1",
            "unit_price_1": "20", **extra}


@pytest.mark.parametrize("role", ["owner", "manager"])
def test_quote_preview_shows_the_quote_with_reasons(client, member, store, benefits, role,
                                                    owner, manager):
    sign_in_as(client, owner if role == "owner" else manager)
    card_no = db.session.merge(member).cards[0].number
    r = client.get(URL, query_string=_args(card_no, store))
    html = r.get_data(as_text=True)
    assert r.status_code == 200, html
    assert "Latte price" in html and "¥50.00" in html           # 2 × 25.00
    assert "¥18.00" in html                                      # tea, 10% off
    assert "Another offer gave more." in html and "Not for this channel." in html
    assert "¥68.00" in html


def test_quote_preview_by_mobile_number(client, owner, member, store, benefits):
    sign_in_as(client, owner)
    mobile = db.session.merge(member).mobile
    r = client.get(URL, query_string=_args(mobile, store))
    assert r.status_code == 200 and "¥68.00" in r.get_data(as_text=True)


def test_quote_preview_is_closed_to_clerks(client, clerk):
    sign_in_as(client, clerk)
    assert client.get(URL).status_code in (302, 303, 403)


def test_quote_preview_empty_form_has_rows_and_adds_one(client, owner):
    sign_in_as(client, owner)
    html = client.get(URL).get_data(as_text=True)
    assert 'name="product_id_2"' in html and 'name="product_id_3"' not in html
    r = client.get(URL, query_string={"rows": 3, "add": "1", "product_id_0": "KEEP"},
                   headers={"HX-Request": "true", "HX-Target": "quote-preview"})
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "<html" not in html
    assert 'name="product_id_3"' in html and 'value="KEEP"' in html


def test_quote_preview_stops_at_30_lines(client, owner):
    sign_in_as(client, owner)
    html = client.get(URL, query_string={"rows": 30, "add": "1"}).get_data(as_text=True)
    assert 'name="product_id_29"' in html and 'name="product_id_30"' not in html
    assert 'name="add"' not in html


def test_quote_preview_reports_every_bad_field_at_once(client, owner, store):
    sign_in_as(client, owner)
    r = client.get(URL, query_string={
        "member": "0000", "store_id": store.id, "channel": "POS", "at": "soon",
        "balance": "lots", "rows": 2, "quote": "1", "product_id_0": "A", "quantity_0": "0",
        "unit_price_0": "x", "quantity_1": "1"})
    html = r.get_data(as_text=True)
    assert r.status_code == 422
    for name in ("member", "at", "balance", "quantity_0", "unit_price_0", "product_id_1"):
        assert f'id="{name}-error"' in html, name


def test_quote_preview_needs_a_line(client, owner, member, store):
    sign_in_as(client, owner)
    card_no = db.session.merge(member).cards[0].number
    r = client.get(URL, query_string={"member": card_no, "store_id": store.id,
                                      "channel": "POS", "rows": 1, "quote": "1"})
    assert r.status_code == 422 and 'id="lines-error"' in r.get_data(as_text=True)


def test_benefit_list_links_to_the_quote_preview(client, owner):
    sign_in_as(client, owner)
    assert f'href="{URL}"' in client.get("/admin/benefits").get_data(as_text=True)
