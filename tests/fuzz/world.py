"""One seeded merchant for the API fuzz tests: a till key, a member with a card, points,
a prepaid balance and a coupon, gift cards (sold and in stock), an order and charges.

Schemathesis generates requests from openapi.json alone; without real identifiers nearly
every call would end in 404 or 403 and the services behind them would never run. `WORLD`
holds the identifiers of the current test's data; `tests/fuzz/hooks.py` puts them into a
share of the generated requests."""
from __future__ import annotations

from dataclasses import dataclass, field

from portal import clock
from portal.api import services as api_clients
from portal.coupons import services as coupons
from portal.db import db, transaction
from portal.giftcards import spending
from portal.loyalty import services as loyalty
from portal.loyalty.models import EarningRule
from portal.wallet import balance as wallet
from tests.factories import CouponTemplateFactory, StoreFactory
from tests.fixtures import member_with_card
from tests.unit.test_giftcard_spending import make_card
from tests.web.test_api_giftcard_sales import in_stock


@dataclass
class World:
    key: str = ""
    store_code: str = ""
    channel: str = "POS"
    currency: str = "CNY"
    card_no: str = ""
    phone: str = ""
    coupon_code: str = ""
    giftcard: str = ""
    giftcard_in_stock: str = ""
    order_id: str = ""
    charge_ids: list[int] = field(default_factory=list)
    giftcard_charge_ids: list[int] = field(default_factory=list)
    redemption_ids: list[int] = field(default_factory=list)


WORLD = World()


def seed(plan) -> World:
    """Build the merchant and point `WORLD` at it (tables are emptied after each test)."""
    store = StoreFactory()
    db.session.add(EarningRule(plan_id=plan.id, points_amount=1, points_per_minor=100,
                               experience_amount=1, experience_per_minor=100,
                               points_expiry_years=1))
    db.session.commit()
    client, key = api_clients.create_client(db.session, name="Fuzz till",
                                            store_code=store.code, channel="POS")
    member = db.session.merge(member_with_card(plan))
    card = member.cards[0]
    with transaction(db.session):
        wallet.credit(db.session, card, principal=10**6, bonus=10**5, key="fuzz:fund",
                      reason="topup", source=("test", 1))
    template = CouponTemplateFactory(amount_minor=500)
    (coupon,) = coupons.issue(db.session, member_id=member.id, template_id=template.id,
                              source=coupons.Source("test"), key="fuzz:coupon")
    gift = make_card(db.session, face=10**6, pos_recharge=True)
    spare = in_stock(db.session)
    order, _new = loyalty.record_order(
        db.session, store_id=store.id, client_id=client.id, channel="POS",
        external_id="FUZZ-ORDER-1", card_no=card.number,
        occurred_at=clock.now(), currency="CNY",
        lines=[loyalty.OrderLine(line_id="1", amount=50000)],
        payments=[loyalty.Payment(method="cash", amount=50000)])
    charge = wallet.charge(db.session, card_id=card.id, amount_minor=1000, currency="CNY",
                           idempotency_key=f"store:{store.id}:fuzz", store_id=store.id,
                           channel="POS", client_id=client.id)
    gift_charge = spending.charge(db.session, number=gift.number, amount_minor=1000,
                                  currency="CNY", idempotency_key=f"store:{store.id}:fuzz",
                                  store_id=store.id, client_id=client.id)
    redemption, _result = coupons.redeem(
        db.session, code=coupon.code, member_id=member.id, channel="POS", lines=[
            coupons.Line(product_id="", sku_id="", category="", quantity=1, amount=10000)],
        order_external_id="FUZZ-ORDER-1", client_id=client.id, store_id=store.id)
    WORLD.__init__(key=key, store_code=store.code, card_no=card.number,
                   phone=member.mobile, coupon_code=coupon.code, giftcard=gift.number,
                   giftcard_in_stock=spare.number, order_id=order.external_id,
                   charge_ids=[charge.id], giftcard_charge_ids=[gift_charge.id],
                   redemption_ids=[redemption.id])
    return WORLD
