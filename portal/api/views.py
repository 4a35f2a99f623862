"""The JSON API for tills (POS) and online shops (ONLINE). OpenAPI: /api/v1/openapi.json."""
from __future__ import annotations

import json
from functools import wraps
from pathlib import Path

from flask import Blueprint, g, jsonify, request
from sqlalchemy import select

from portal.api import services as api_clients
from portal.api.errors import ApiProblem
from portal.coupons import services as coupons
from portal.coupons.errors import CouponError, CouponErrorCode
from portal.db import db
from portal.extensions import csrf
from portal.members.models import MemberCard

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)
OPENAPI = json.loads((Path(__file__).with_name("openapi.json")).read_text())


@bp.errorhandler(ApiProblem)
def _problem(e: ApiProblem):
    return e.response()


def client_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _sep, key = header.partition(" ")
        client = api_clients.authenticate(db.session, key.strip()) \
            if scheme.lower() == "bearer" and key else None
        if client is None:
            raise ApiProblem(401, "unauthorized", "Missing or wrong API key",
                             "Send Authorization: Bearer <key>.")
        g.api_client = client
        api_clients.touch(db.session, client.id)
        return view(*args, **kwargs)

    return wrapped


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiProblem(400, "bad_request", "The body must be a JSON object")
    return body


def _text(body: dict, name: str, *, required: bool = True, max_length: int = 64) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise ApiProblem(422, "invalid_field", f"'{name}' is missing or malformed",
                         field=name)
    return value.strip()


def _scope(body: dict) -> tuple[str, str]:
    """The store and channel in the request must be the client's own."""
    client = g.api_client
    store_code = _text(body, "store_code")
    channel = _text(body, "channel").upper()
    if store_code.upper() != client.store.code or channel != client.channel:
        raise ApiProblem(403, "forbidden_scope",
                         "This key belongs to another store or channel")
    return store_code, channel


def _lines(body: dict) -> list[coupons.Line]:
    raw = body.get("lines", [])
    if not isinstance(raw, list) or len(raw) > 500:
        raise ApiProblem(422, "invalid_field", "'lines' must be a list", field="lines")
    lines = []
    for i, item in enumerate(raw):
        try:
            quantity, amount = item.get("quantity", 1), item["amount"]
            if not (isinstance(quantity, int) and isinstance(amount, int)
                    and quantity > 0 and amount >= 0):
                raise ValueError
            lines.append(coupons.Line(
                product_id=str(item.get("product_id") or "")[:64],
                sku_id=str(item.get("sku_id") or "")[:64],
                category=str(item.get("category") or "")[:64], quantity=quantity,
                amount=amount))
        except (AttributeError, KeyError, ValueError, TypeError):
            raise ApiProblem(422, "invalid_field",
                             f"lines[{i}] needs an integer 'amount' (minor units) and a "
                             "positive integer 'quantity'", field=f"lines[{i}]") from None
    return lines


def _member_id(body: dict) -> int | None:
    card_no = body.get("card_no")
    if card_no in (None, ""):
        return None
    digits = "".join(ch for ch in str(card_no) if ch not in " -")
    member_id = db.session.scalar(select(MemberCard.member_id)
                                  .where(MemberCard.number == digits))
    return member_id if member_id is not None else -1  # an unknown card matches no one


@bp.get("/openapi.json")
def openapi():
    return jsonify(OPENAPI)


@bp.post("/coupons/validate")
@client_required
def validate():
    body = _body()
    _store, channel = _scope(body)
    result = coupons.check(db.session, code=_text(body, "code"), member_id=_member_id(body),
                           channel=channel, lines=_lines(body))
    return jsonify(valid=result.valid, reason_code=result.reason_code,
                   discount_amount=result.discount_minor, currency=result.currency,
                   coupon=_describe(result.coupon))


def _describe(coupon) -> dict | None:
    """What a till needs to show and map the coupon to its own system."""
    if coupon is None:
        return None
    t = coupon.template
    return {"title": t.title, "kind": t.kind, "external_id": t.external_id,
            "extra_fields": t.extra_fields or {}, "valid_until": coupon.valid_until.isoformat()}


@bp.post("/coupons/redeem")
@client_required
def redeem():
    body = _body()
    _store, channel = _scope(body)
    redemption, result = coupons.redeem(
        db.session, code=_text(body, "code"), member_id=_member_id(body), channel=channel,
        lines=_lines(body), order_external_id=_text(body, "order_external_id"),
        client_id=g.api_client.id, store_id=g.api_client.store_id)
    if redemption is None:
        raise ApiProblem(409, result.reason_code, "The coupon cannot be used",
                         reason_code=result.reason_code)
    return jsonify(redemption_id=redemption.id, discount_amount=redemption.discount_minor,
                   currency=redemption.currency, coupon=_describe(result.coupon)), 201


@bp.post("/redemptions/<int:redemption_id>/rollback")
@client_required
def rollback(redemption_id: int):
    try:
        redemption = coupons.rollback(db.session, redemption_id,
                                      store_id=g.api_client.store_id)
    except CouponError as e:
        if e.code == CouponErrorCode.NOT_FOUND:
            raise ApiProblem(404, "not_found", "No such redemption for this store") from None
        raise ApiProblem(409, "already_rolled_back", str(e)) from None
    return jsonify(redemption_id=redemption.id, rolled_back=True)
