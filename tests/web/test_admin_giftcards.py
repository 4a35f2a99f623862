"""Gift card products in the merchant area over HTTP: create, edit, bad input, copy,
status actions, the list and who may see it."""
from __future__ import annotations

from io import BytesIO

import pytest
from sqlalchemy import func, select

from portal.db import db
from portal.giftcards.models import GiftCard, GiftCardProduct
from portal.staff.models import AuditEntry
from tests.factories import StoreFactory
from tests.fixtures import count_queries, sign_in_as


def _form(**changes):
    data = {"kind": "electronic", "name": "Spring card", "currency": "CNY",
            "design": "teal", "denominations": ["100", "200", "500", "", "", ""],
            "discount": "10", "buyer_name": "optional", "buyer_phone": "required",
            "buyer_email": "optional", "buyer_card_number": "off", "validity_days": "365",
            "channels": ["POS", "ONLINE"], "terms": "No cash back.", "action": "save"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def _product(owner_client, **changes) -> GiftCardProduct:
    r = owner_client.post("/admin/giftcards/new", data=_form(**changes))
    assert r.status_code == 303, r.get_data(as_text=True)
    return db.session.scalars(select(GiftCardProduct)
                              .order_by(GiftCardProduct.id.desc())).first()


def _count() -> int:
    return db.session.scalar(select(func.count(GiftCardProduct.id)))


def test_create_a_gift_card(owner_client, owner):
    store = StoreFactory()
    r = owner_client.post("/admin/giftcards/new", data=_form(
        store_ids=[str(store.id)], custom_amount="y", custom_min="50", custom_max="5000",
        pos_recharge="y", buyer_card_number="optional", design="gold"))
    assert r.status_code == 303
    p = db.session.scalars(select(GiftCardProduct)).one()
    assert (p.kind, p.name, p.currency, p.status, p.design) == \
        ("electronic", "Spring card", "CNY", "draft", "gold")
    assert (p.denominations, p.discount_bp, p.store_ids) == ([10_000, 20_000, 50_000], 1000,
                                                            [store.id])
    assert (p.custom_amount, p.custom_min_minor, p.custom_max_minor) == (True, 5_000, 500_000)
    assert p.buyer_fields == {"name": "optional", "phone": "required", "email": "optional",
                              "card_number": "optional"}
    assert (p.validity_days, p.channels, p.pos_recharge, p.terms) == \
        (365, ["POS", "ONLINE"], True, "No cash back.")
    assert db.session.scalar(select(AuditEntry.staff_id).where(
        AuditEntry.action == "giftcard_product.create")) == owner.id
    page = owner_client.get(f"/admin/giftcards/{p.id}").get_data(as_text=True)
    assert "Spring card" in page and 'value="200.00"' in page and "giftcard-art--gold" in page


def test_create_and_activate_at_once(owner_client):
    p = _product(owner_client, action="activate")
    assert p.status == "active"


def test_edit_a_gift_card(owner_client):
    p = _product(owner_client)
    r = owner_client.post(f"/admin/giftcards/{p.id}", data=_form(
        name="Summer card", denominations=["300"], discount="", currency="USD",
        validity_days=""))
    assert r.status_code == 303
    db.session.refresh(p)
    assert (p.name, p.denominations, p.discount_bp, p.currency, p.validity_days) == \
        ("Summer card", [30_000], 0, "CNY", None)
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "giftcard_product.update")) == 1


@pytest.mark.parametrize("changes,error_id", [
    ({"name": ""}, "name"),
    ({"denominations": ["100", "200", "300", "400", "500", "600", "700"]}, "denominations"),
    ({"denominations": ["0"]}, "denominations"),
    ({"denominations": ["-5"]}, "denominations"),
    ({"denominations": ["abc"]}, "denominations"),
    ({"denominations": ["100", "100.00"]}, "denominations"),
    ({"denominations": ["", ""]}, "denominations"),
    ({"discount": "100"}, "discount"),
    ({"discount": "-1"}, "discount"),
    ({"custom_amount": "y", "custom_min": "500", "custom_max": "100"}, "custom_max"),
    ({"custom_amount": "y", "custom_min": "0", "custom_max": "100"}, "custom_min"),
    ({"channels": None}, "channels"),
    ({"buyer_card_number": "required", "channels": ["ONLINE"]}, "buyer_card_number"),
    ({"validity_days": "0"}, "validity_days"),
    ({"validity_days": "a year"}, "validity_days"),
    ({"design": "plaid"}, "design"),
    ({"kind": "plastic"}, "kind"),
])
def test_bad_input_is_refused_next_to_the_field(owner_client, changes, error_id):
    r = owner_client.post("/admin/giftcards/new", data=_form(**changes))
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    assert f'id="{error_id}-error"' in page
    assert _count() == 0
    assert db.session.scalar(select(func.count(AuditEntry.id))) == 0


def test_a_seventh_denomination_is_refused_clearly(owner_client):
    r = owner_client.post("/admin/giftcards/new", data=_form(
        denominations=[str(n) for n in range(100, 800, 100)]))
    assert r.status_code == 422
    assert "At most 6 denominations: remove 1." in r.get_data(as_text=True)


def test_bad_edit_saves_nothing(owner_client):
    p = _product(owner_client)
    r = owner_client.post(f"/admin/giftcards/{p.id}", data=_form(
        name="Changed", denominations=["0"]))
    assert r.status_code == 422
    db.session.refresh(p)
    assert (p.name, p.denominations) == ("Spring card", [10_000, 20_000, 50_000])
    assert 'value="0"' in r.get_data(as_text=True)


def test_upload_a_design(owner_client):
    from PIL import Image

    buf = BytesIO()
    Image.new("RGB", (160, 100), "teal").save(buf, "PNG")
    buf.seek(0)
    data = _form()
    data["design_upload"] = (buf, "card.png")
    r = owner_client.post("/admin/giftcards/new", data=data,
                          content_type="multipart/form-data")
    assert r.status_code == 303
    p = db.session.scalars(select(GiftCardProduct)).one()
    assert p.design.endswith(".jpg")
    # Saving again with "the uploaded image" chosen keeps it.
    r = owner_client.post(f"/admin/giftcards/{p.id}", data=_form(design="uploaded"))
    assert r.status_code == 303
    db.session.refresh(p)
    assert p.design.endswith(".jpg")
    bad = _form(name="Bad image")
    bad["design_upload"] = (BytesIO(b"not an image"), "card.png")
    r = owner_client.post("/admin/giftcards/new", data=bad,
                          content_type="multipart/form-data")
    assert r.status_code == 422 and 'id="design_upload-error"' in r.get_data(as_text=True)


def test_copy_keeps_everything_and_asks_for_a_name(owner_client):
    p = _product(owner_client, action="activate", custom_amount="y", custom_min="50",
                 custom_max="900")
    r = owner_client.post(f"/admin/giftcards/{p.id}/copy", data={"new_name": ""})
    assert r.status_code == 422 and 'id="new_name-error"' in r.get_data(as_text=True)
    r = owner_client.post(f"/admin/giftcards/{p.id}/copy", data={"new_name": "spring CARD"})
    assert r.status_code == 422 and "Another gift card has this name" in \
        r.get_data(as_text=True)
    assert _count() == 1
    r = owner_client.post(f"/admin/giftcards/{p.id}/copy",
                          data={"new_name": "2026 Spring card"})
    assert r.status_code == 303
    copy = db.session.scalars(select(GiftCardProduct).where(GiftCardProduct.id != p.id)).one()
    assert r.headers["Location"].endswith(f"/admin/giftcards/{copy.id}")
    assert (copy.name, copy.status) == ("2026 Spring card", "draft")
    for name in ("kind", "currency", "store_ids", "design", "denominations", "discount_bp",
                 "custom_amount", "custom_min_minor", "custom_max_minor", "buyer_fields",
                 "validity_days", "channels", "pos_recharge", "terms"):
        assert getattr(copy, name) == getattr(p, name), name
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "giftcard_product.copy")) == 1


def test_activate_and_deactivate(owner_client):
    p = _product(owner_client)
    r = owner_client.post(f"/admin/giftcards/{p.id}/status", data={"action": "activate"})
    assert r.status_code == 303
    db.session.refresh(p)
    assert p.status == "active"
    r = owner_client.post(f"/admin/giftcards/{p.id}/status",
                          data={"action": "deactivate", "back": "list"})
    assert r.status_code == 303 and r.headers["Location"].endswith("/admin/giftcards")
    db.session.refresh(p)
    assert p.status == "inactive"
    r = owner_client.post(f"/admin/giftcards/{p.id}/status", data={"action": "deactivate"},
                          follow_redirects=True)
    assert "cannot do that now" in r.get_data(as_text=True)
    assert owner_client.post("/admin/giftcards/999/status",
                             data={"action": "activate"}).status_code == 404
    actions = db.session.scalars(select(AuditEntry.action).where(
        AuditEntry.action.like("giftcard_product.%")).order_by(AuditEntry.id)).all()
    assert actions == ["giftcard_product.create", "giftcard_product.activate",
                       "giftcard_product.deactivate"]


def _sell(product: GiftCardProduct, n: int, status: str = "active") -> None:
    start = db.session.scalar(select(func.count(GiftCard.id)))
    for i in range(n):
        db.session.add(GiftCard(product_id=product.id, number=f"9{start + i:015d}",
                                currency="CNY", face_minor=20_000, price_minor=18_000,
                                status=status))
    db.session.commit()


def test_the_list_shows_cards_sold_without_n_plus_1(owner_client):
    first = _product(owner_client, name="Card 0", action="activate")
    _sell(first, 3)
    _sell(first, 2, status="pending")        # not paid: not sold
    for i in range(1, 3):
        _product(owner_client, name=f"Card {i}")
    page = owner_client.get("/admin/giftcards").get_data(as_text=True)
    assert "Card 0" in page and "¥600.00" in page
    few = count_queries(owner_client, "/admin/giftcards")
    for i in range(3, 9):
        _sell(_product(owner_client, name=f"Card {i}"), 2)
    assert count_queries(owner_client, "/admin/giftcards") == few
    drafts = owner_client.get("/admin/giftcards?status=draft").get_data(as_text=True)
    assert "Card 0" not in drafts and "Card 1" in drafts


def test_htmx_filter_returns_the_results_fragment(owner_client):
    _product(owner_client, name="Fragmented")
    r = owner_client.get("/admin/giftcards?status=draft", headers={"HX-Request": "true",
                                                                   "HX-Target": "results"})
    body = r.get_data(as_text=True)
    assert "<html" not in body and "Fragmented" in body


def test_clerks_cannot_see_gift_cards(client, clerk, owner_client):
    p = _product(owner_client)
    sign_in_as(client, clerk)
    for url in ("/admin/giftcards", "/admin/giftcards/new", f"/admin/giftcards/{p.id}"):
        assert client.get(url).status_code == 403, url
    assert client.post(f"/admin/giftcards/{p.id}/status",
                       data={"action": "activate"}).status_code == 403
    assert client.post(f"/admin/giftcards/{p.id}/copy",
                       data={"new_name": "Mine"}).status_code == 403
    assert client.post(f"/admin/giftcards/{p.id}", data=_form(name="Mine")).status_code == 403
    assert _count() == 1


def test_forms_need_the_csrf_token(client, owner, csrf_on):
    sign_in_as(client, owner)
    assert client.post("/admin/giftcards/new", data=_form()).status_code in (400, 422)
    assert _count() == 0


def test_the_sidebar_links_to_gift_cards(owner_client):
    page = owner_client.get("/admin/giftcards").get_data(as_text=True)
    assert 'href="/admin/giftcards" aria-current="page"' in page
