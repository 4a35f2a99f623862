"""The till and shop API."""
from __future__ import annotations

import pytest

from portal.api import services as api_clients
from portal.coupons import services as coupons
from portal.coupons.models import Coupon
from portal.db import db
from tests.factories import CouponTemplateFactory, StoreFactory


@pytest.fixture
def till(store):
    _client, key = api_clients.create_client(db.session, name="Till 1", store_code=store.code,
                                             channel="POS")
    return {"key": key, "store": store.code}


def _headers(key):
    return {"Authorization": f"Bearer {key}"}


def _give(member, **template):
    t = CouponTemplateFactory(**template)
    (coupon,) = coupons.issue(db.session, member_id=member.id, template_id=t.id,
                              source=coupons.Source("test"), key=f"api:{t.id}")
    return coupon


def _body(till, coupon, member=None, **extra):
    body = {"code": coupon.grouped_code, "store_code": till["store"], "channel": "POS",
            "lines": [{"product_id": "LATTE", "sku_id": "LATTE-L", "quantity": 2,
                       "amount": 6000}]}
    if member is not None:
        body["card_no"] = db.session.merge(member).cards[0].number
    return {**body, **extra}


def test_missing_or_wrong_key_is_401_problem_json(client, till):
    r = client.post("/api/v1/coupons/validate", json={})
    assert r.status_code == 401 and r.mimetype == "application/problem+json"
    assert r.json["code"] == "unauthorized"
    r = client.post("/api/v1/coupons/validate", json={}, headers=_headers(till["key"] + "x"))
    assert r.status_code == 401


def test_another_stores_client_is_403(client, till, member):
    other = StoreFactory()
    coupon = _give(member)
    r = client.post("/api/v1/coupons/validate", headers=_headers(till["key"]),
                    json=_body(till, coupon, store_code=other.code))
    assert r.status_code == 403 and r.json["code"] == "forbidden_scope"


def test_validate_a_cash_voucher(client, till, member):
    coupon = _give(member, amount_minor=1000)
    coupon.template.external_id = "POS-777"
    db.session.commit()
    r = client.post("/api/v1/coupons/validate", headers=_headers(till["key"]),
                    json=_body(till, coupon, member))
    assert {k: r.json[k] for k in ("valid", "reason_code", "discount_amount", "currency")} == \
        {"valid": True, "reason_code": None, "discount_amount": 1000, "currency": "CNY"}
    assert r.json["coupon"]["external_id"] == "POS-777"


def test_discount_is_capped(client, till, member):
    coupon = _give(member, kind="discount", amount_minor=None, percent_off=2000, cap_minor=800)
    r = client.post("/api/v1/coupons/validate", headers=_headers(till["key"]),
                    json=_body(till, coupon))
    assert r.json["discount_amount"] == 800  # 20% of 60.00 is 12.00, capped at 8.00


def test_gift_on_designated_products_is_one_free_unit(client, till, member):
    coupon = _give(member, kind="gift", amount_minor=None, gift_item="Latte",
                   product_ids=["LATTE"])
    r = client.post("/api/v1/coupons/validate", headers=_headers(till["key"]),
                    json=_body(till, coupon))
    assert r.json["discount_amount"] == 3000


@pytest.mark.parametrize("template,extra,reason", [
    ({"min_spend_minor": 10000}, {}, "min_spend"),
    ({"product_ids": ["MUFFIN"]}, {}, "no_eligible_product"),
    ({"channels": ["ONLINE"]}, {}, "wrong_channel"),
    ({"starts_after_days": 1}, {}, "not_yet_valid"),
    ({}, {"code": "NOPE-NOPE-NOPE"}, "unknown"),
])
def test_reasons_a_coupon_does_not_apply(client, till, member, template, extra, reason):
    coupon = _give(member, **template)
    r = client.post("/api/v1/coupons/validate", headers=_headers(till["key"]),
                    json=_body(till, coupon, **extra))
    assert r.json["valid"] is False and r.json["reason_code"] == reason


def test_card_numbers_may_be_grouped_and_channels_any_case(client, till, member):
    coupon = _give(member)
    body = _body(till, coupon, member, channel="pos")
    body["card_no"] = " ".join(body["card_no"][i:i + 4] for i in range(0, 16, 4))
    r = client.post("/api/v1/coupons/validate", headers=_headers(till["key"]), json=body)
    assert r.status_code == 200 and r.json["valid"] is True


def test_another_store_reusing_an_order_id_does_not_get_the_first_redemption(
        client, till, member):
    coupon = _give(member)
    body = _body(till, coupon, order_external_id="SAME")
    assert client.post("/api/v1/coupons/redeem", headers=_headers(till["key"]),
                       json=body).status_code == 201
    other = StoreFactory()
    _c, key = api_clients.create_client(db.session, name="B", store_code=other.code,
                                        channel="POS")
    r = client.post("/api/v1/coupons/redeem", headers=_headers(key),
                    json={**body, "store_code": other.code})
    assert r.status_code == 409 and r.json["reason_code"] == "used"


def test_someone_elses_coupon(client, till, member, other_member):
    coupon = _give(member)
    r = client.post("/api/v1/coupons/validate", headers=_headers(till["key"]),
                    json=_body(till, coupon, other_member))
    assert r.json["reason_code"] == "other_member"


def test_inactive_template_and_expired_coupon(client, till, member):
    from datetime import timedelta

    from portal import clock
    from portal.coupons.models import CouponTemplate

    coupon = _give(member, valid_days=5)
    db.session.query(CouponTemplate).update({"status": "inactive"})
    db.session.commit()
    r = client.post("/api/v1/coupons/validate", headers=_headers(till["key"]),
                    json=_body(till, coupon))
    assert r.json["reason_code"] == "inactive"
    clock.freeze(clock.now() + timedelta(days=6))
    r = client.post("/api/v1/coupons/validate", headers=_headers(till["key"]),
                    json=_body(till, coupon))
    assert r.json["reason_code"] == "expired"


def test_redeem_once_idempotent_per_order(client, till, member):
    coupon = _give(member)
    body = _body(till, coupon, member, order_external_id="ORDER-1")
    first = client.post("/api/v1/coupons/redeem", headers=_headers(till["key"]), json=body)
    again = client.post("/api/v1/coupons/redeem", headers=_headers(till["key"]), json=body)
    assert first.status_code == again.status_code == 201
    assert first.json["redemption_id"] == again.json["redemption_id"]
    other = client.post("/api/v1/coupons/redeem", headers=_headers(till["key"]),
                        json={**body, "order_external_id": "ORDER-2"})
    assert other.status_code == 409 and other.json["reason_code"] == "used"
    db.session.expire_all()
    assert db.session.get(Coupon, coupon.id).status == "used"


def test_rollback_makes_the_coupon_available_again_once(client, till, member):
    coupon = _give(member)
    r = client.post("/api/v1/coupons/redeem", headers=_headers(till["key"]),
                    json=_body(till, coupon, order_external_id="O-9"))
    rid = r.json["redemption_id"]
    assert client.post(f"/api/v1/redemptions/{rid}/rollback",
                       headers=_headers(till["key"])).status_code == 200
    db.session.expire_all()
    assert db.session.get(Coupon, coupon.id).status == "available"
    again = client.post(f"/api/v1/redemptions/{rid}/rollback", headers=_headers(till["key"]))
    assert again.status_code == 409
    r = client.post("/api/v1/coupons/redeem", headers=_headers(till["key"]),
                    json=_body(till, coupon, order_external_id="O-9"))
    assert r.status_code == 201 and r.json["redemption_id"] != rid


def test_another_stores_redemption_cannot_be_rolled_back(client, till, member):
    coupon = _give(member)
    rid = client.post("/api/v1/coupons/redeem", headers=_headers(till["key"]),
                      json=_body(till, coupon, order_external_id="O-1")).json["redemption_id"]
    other_store = StoreFactory()
    _c, other_key = api_clients.create_client(db.session, name="Other",
                                              store_code=other_store.code, channel="POS")
    r = client.post(f"/api/v1/redemptions/{rid}/rollback", headers=_headers(other_key))
    assert r.status_code == 404


@pytest.mark.parametrize("body", [[], {"code": 5}, {"lines": [{"amount": 1.5}]}])
def test_malformed_requests_are_422_problems(client, till, body):
    if isinstance(body, dict):
        body = {"store_code": till["store"], "channel": "POS", "code": "X", **body}
    r = client.post("/api/v1/coupons/validate", headers=_headers(till["key"]), json=body)
    assert r.status_code in (400, 422) and r.mimetype == "application/problem+json"


def test_unknown_api_path_is_a_problem(client):
    r = client.get("/api/v1/nope")
    assert r.status_code == 404 and r.mimetype == "application/problem+json"


def test_openapi_describes_every_endpoint(client, app):
    import re

    spec = client.get("/api/v1/openapi.json").json
    documented = {f"/api/v1{path}" for path in spec["paths"]}
    # <int(max=...):charge_id> and <path:external_id> are {charge_id} and {external_id}.
    routes = {re.sub(r"<(?:[^:>]+:)?(\w+)>", r"{\1}", r.rule)
              for r in app.url_map.iter_rules() if r.rule.startswith("/api/v1/")
              and r.endpoint != "api.openapi"}
    assert routes == documented


def test_cli_creates_a_client_and_prints_the_key_once(app, store):
    r = app.test_cli_runner().invoke(args=["create-api-client", "--store", store.code,
                                           "--name", "Web shop", "--channel", "ONLINE"])
    assert r.exit_code == 0 and "tk_" in r.output
    key = r.output.split("secret): ")[1].strip()
    assert api_clients.authenticate(db.session, key).channel == "ONLINE"


def test_owner_creates_a_key_shown_once_and_revokes_it(owner_client, store):
    r = owner_client.post("/admin/api-clients", data={"name": "Till 9", "store": store.code,
                                                      "channel": "POS"})
    body = r.get_data(as_text=True)
    assert r.status_code == 201
    import re

    key = re.search(r'class="new-key__value">(tk_[^<]+)<', body).group(1)
    assert key not in owner_client.get("/admin/api-clients").get_data(as_text=True)
    client_id = api_clients.clients(db.session)[0].id
    owner_client.post(f"/admin/api-clients/{client_id}/revoke")
    assert api_clients.authenticate(db.session, key) is None


def test_managers_cannot_manage_keys(client, manager):
    from tests.fixtures import sign_in_as

    sign_in_as(client, manager)
    assert client.get("/admin/api-clients").status_code == 403
