"""Gift card products: the rules the merchant may save, copy, activate / deactivate, the
list with what was sold, and what is on sale where."""
from __future__ import annotations

import pytest
from sqlalchemy import event, func, select

from portal.db import db
from portal.giftcards import products
from portal.giftcards.errors import GiftCardError, GiftCardErrorCode
from portal.giftcards.models import GiftCard, GiftCardProduct
from portal.staff.models import AuditEntry
from tests.factories import StoreFactory


def data(**changes) -> dict:
    values = {"kind": "electronic", "name": "Spring card", "currency": "CNY",
              "design": "teal", "denominations": [10_000, 20_000, 50_000],
              "discount_bp": 1000, "channels": ["POS", "ONLINE"],
              "buyer_fields": {"name": "optional", "phone": "required", "email": "off",
                               "card_number": "off"},
              "validity_days": 365, "terms": "No cash back."}
    values.update(changes)
    return values


def make(*, activate=False, **changes) -> GiftCardProduct:
    return products.create(db.session, data(**changes), operator_id=None, activate=activate)


def refused(values: dict, product=None) -> dict:
    with pytest.raises(GiftCardError) as e:
        products.clean(db.session, values, product)
    assert e.value.code == GiftCardErrorCode.INVALID
    return e.value.details["errors"]


def sell(product: GiftCardProduct, n: int, *, status="active", face=20_000) -> list[GiftCard]:
    start = db.session.scalar(select(func.count(GiftCard.id)))
    cards = [GiftCard(product_id=product.id, number=f"8{start + i:015d}", currency="CNY",
                      face_minor=face, price_minor=face * 9 // 10, status=status)
             for i in range(n)]
    db.session.add_all(cards)
    db.session.commit()
    return cards


# --- saving -------------------------------------------------------------------------------

def test_create_is_a_draft_and_audited(owner):
    p = products.create(db.session, data(), operator_id=owner.id)
    assert (p.status, p.denominations, p.discount_bp, p.validity_days) == \
        ("draft", [10_000, 20_000, 50_000], 1000, 365)
    entry = db.session.scalars(select(AuditEntry)).one()
    assert (entry.action, entry.staff_id, entry.object_id) == \
        ("giftcard_product.create", owner.id, str(p.id))


def test_create_and_activate_at_once():
    assert make(activate=True).status == "active"


def test_denominations_are_kept_in_order():
    assert make(denominations=[50_000, 10_000]).denominations == [10_000, 50_000]


def test_the_discount_sets_the_price():
    p = make(discount_bp=1000)
    assert products.price_minor(p, 20_000) == 18_000
    p.discount_bp = 333                          # 3.33 % of 1.00 is 0.0333: rounded down
    assert products.price_minor(p, 100) == 100 - 3


@pytest.mark.parametrize("changes,field", [
    ({"kind": "plastic"}, "kind"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 121}, "name"),
    ({"currency": "yuan"}, "currency"),
    ({"store_ids": [999_999]}, "store_ids"),
    ({"store_ids": ["abc"]}, "store_ids"),
    ({"design": "plaid"}, "design"),
    ({"design": ""}, "design"),
    ({"denominations": []}, "denominations"),
    ({"denominations": [0]}, "denominations"),
    ({"denominations": [-100]}, "denominations"),
    ({"denominations": [100, 100]}, "denominations"),
    ({"denominations": [10**13]}, "denominations"),
    ({"discount_bp": -1}, "discount_bp"),
    ({"discount_bp": 10_000}, "discount_bp"),
    ({"custom_amount": True, "custom_min_minor": None, "custom_max_minor": 500},
     "custom_min_minor"),
    ({"custom_amount": True, "custom_min_minor": 0, "custom_max_minor": 500},
     "custom_min_minor"),
    ({"custom_amount": True, "custom_min_minor": 500, "custom_max_minor": None},
     "custom_max_minor"),
    ({"custom_amount": True, "custom_min_minor": 500, "custom_max_minor": 500},
     "custom_max_minor"),
    ({"buyer_fields": {"phone": "sometimes"}}, "buyer_phone"),
    ({"buyer_fields": {"card_number": "required"}, "channels": ["ONLINE"]},
     "buyer_card_number"),
    ({"validity_days": 0}, "validity_days"),
    ({"validity_days": -30}, "validity_days"),
    ({"channels": []}, "channels"),
    ({"channels": ["POS", "FAX"]}, "channels"),
    ({"terms": "x" * 5001}, "terms"),
])
def test_bad_input_is_refused_by_field(changes, field):
    assert field in refused(data(**changes))


def test_a_seventh_denomination_is_refused_clearly():
    errors = refused(data(denominations=[100, 200, 300, 400, 500, 600, 700]))
    assert errors["denominations"] == "At most 6 denominations: remove 1."
    assert make(denominations=[100, 200, 300, 400, 500, 600]).denominations[-1] == 600


def test_discount_bounds():
    assert make(discount_bp=0, name="Free").discount_bp == 0
    assert make(discount_bp=9_999, name="Nearly free").discount_bp == 9_999
    assert make(discount_bp=None, name="None").discount_bp == 0


def test_custom_amount_alone_needs_no_denominations():
    p = make(denominations=[], custom_amount=True, custom_min_minor=5_000,
             custom_max_minor=500_000)
    assert (p.denominations, p.custom_min_minor, p.custom_max_minor) == ([], 5_000, 500_000)
    assert products.check_amount(p, 5_000) == 5_000
    assert products.check_amount(p, 500_000) == 500_000
    for amount in (4_999, 500_001, 0, -1):
        with pytest.raises(GiftCardError):
            products.check_amount(p, amount)


def test_a_custom_range_is_forgotten_when_switched_off():
    p = make(custom_amount=False, custom_min_minor=5, custom_max_minor=1)
    assert (p.custom_min_minor, p.custom_max_minor) == (None, None)
    with pytest.raises(GiftCardError):
        products.check_amount(p, 15_000)
    assert products.check_amount(p, 20_000) == 20_000


def test_no_validity_means_no_expiry_and_stores_empty_means_all():
    p = make(validity_days=None, store_ids=[])
    assert (p.validity_days, p.store_ids) == (None, [])
    store = StoreFactory()
    assert make(name="One store", store_ids=[store.id]).store_ids == [store.id]


def test_card_number_is_asked_for_at_pos_sales():
    p = make(buyer_fields={"card_number": "required"}, channels=["POS"])
    assert p.buyer_fields == {"name": "optional", "phone": "required", "email": "optional",
                              "card_number": "required"}


def testnames_are_unique_whatever_the_case():
    make()
    assert "name" in refused(data(name="SPRING CARD"))


def test_the_currency_is_fixed_after_create(owner):
    p = make()
    products.update(db.session, p.id, data(currency="USD", name="Renamed"),
                    operator_id=owner.id)
    db.session.refresh(p)
    assert (p.currency, p.name) == ("CNY", "Renamed")
    entry = db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == "giftcard_product.update")).one()
    assert entry.before["name"] == "Spring card" and entry.after["name"] == "Renamed"


def test_an_uploaded_design_is_kept_on_update():
    p = make(design_image="abc.jpg")
    assert p.design == "abc.jpg"
    products.update(db.session, p.id, data(design="abc.jpg"), operator_id=None)
    assert products.get(db.session, p.id).design == "abc.jpg"
    other = make(name="Other")
    assert "design" in refused(data(name="Other", design="abc.jpg"), other)


def test_refused_update_saves_nothing():
    p = make()
    with pytest.raises(GiftCardError):
        products.update(db.session, p.id, data(name="Changed", denominations=[0]),
                        operator_id=None)
    db.session.rollback()
    p = products.get(db.session, p.id)
    assert (p.name, p.denominations) == ("Spring card", [10_000, 20_000, 50_000])
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "giftcard_product.update")) == 0


def test_update_of_a_missing_product_is_not_found():
    with pytest.raises(GiftCardError) as e:
        products.update(db.session, 404, data(), operator_id=None)
    assert e.value.code == GiftCardErrorCode.NOT_FOUND


# --- copy and status ----------------------------------------------------------------------

def test_copy_keeps_everything_but_the_name_and_starts_as_a_draft(owner):
    store = StoreFactory()
    p = make(activate=True, store_ids=[store.id], design="festive", custom_amount=True,
             custom_min_minor=5_000, custom_max_minor=90_000, pos_recharge=True,
             kind="physical", buyer_fields={"card_number": "optional", "email": "required"})
    c = products.copy(db.session, p.id, "  2026 Spring card ", operator_id=owner.id)
    assert (c.id != p.id, c.name, c.status) == (True, "2026 Spring card", "draft")
    for column in GiftCardProduct.__mapper__.column_attrs:
        if column.key not in ("id", "name", "status", "created_at", "updated_at"):
            assert getattr(c, column.key) == getattr(p, column.key), column.key
    entry = db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == "giftcard_product.copy")).one()
    assert (entry.object_id, entry.before) == (str(c.id), {"copied_from": p.id})


@pytest.mark.parametrize("name", ["", "   ", "spring card", "x" * 121])
def test_copy_needs_a_new_free_name(name):
    p = make()
    with pytest.raises(GiftCardError) as e:
        products.copy(db.session, p.id, name, operator_id=None)
    assert e.value.code == GiftCardErrorCode.INVALID and "name" in e.value.details["errors"]
    db.session.rollback()
    assert db.session.scalar(select(func.count(GiftCardProduct.id))) == 1


def test_activate_and_deactivate_are_audited(owner):
    p = make()
    products.set_status(db.session, p.id, "activate", operator_id=owner.id)
    products.set_status(db.session, p.id, "deactivate", operator_id=owner.id)
    products.set_status(db.session, p.id, "activate", operator_id=owner.id)
    assert products.get(db.session, p.id).status == "active"
    assert db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()[1:] \
        == ["giftcard_product.activate", "giftcard_product.deactivate",
            "giftcard_product.activate"]


def test_status_moves_that_make_no_sense_are_refused():
    p = make()
    with pytest.raises(GiftCardError) as e:
        products.set_status(db.session, p.id, "deactivate", operator_id=None)
    assert e.value.code == GiftCardErrorCode.NOT_NOW
    with pytest.raises(GiftCardError) as e:
        products.set_status(db.session, p.id, "explode", operator_id=None)
    assert e.value.code == GiftCardErrorCode.NOT_FOUND


def test_deactivating_keeps_sold_cards_valid():
    p = make(activate=True)
    cards = sell(p, 2) + sell(p, 1, status="frozen")
    before = [(c.id, c.status, c.face_minor, c.expires_at) for c in cards]
    products.set_status(db.session, p.id, "deactivate", operator_id=None)
    db.session.expire_all()
    after = [(c.id, c.status, c.face_minor, c.expires_at)
             for c in db.session.scalars(select(GiftCard).order_by(GiftCard.id))]
    assert after == before
    assert products.on_sale(db.session, "ONLINE") == []


# --- reading ------------------------------------------------------------------------------

def test_the_list_counts_sold_cards_in_one_query():
    a = make(name="A", activate=True)
    b = make(name="B")
    sell(a, 2)
    sell(a, 1, status="frozen", face=5_000)
    sell(a, 1, status="refunded", face=1_000)
    sell(a, 3, status="pending")
    sell(a, 1, status="cancelled")

    statements = []
    engine = db.session.get_bind()
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        rows = products.product_list(db.session)
        names = [(r.product.name, r.cards_sold, r.value_sold_minor) for r in rows]
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert names == [("B", 0, 0), ("A", 4, 46_000)]
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
    assert [r.product.id for r in products.product_list(db.session, "draft")] == [b.id]


def test_on_sale_is_active_products_of_the_channel():
    pos = make(name="Till only", channels=["POS"], activate=True)
    both = make(name="Everywhere", activate=True)
    make(name="Draft")
    assert products.on_sale(db.session, "POS") == [pos, both]
    assert products.on_sale(db.session, "ONLINE") == [both]
