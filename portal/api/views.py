"""The JSON API for tills (POS) and online shops (ONLINE). OpenAPI: /api/v1/openapi.json."""
from __future__ import annotations

import json
from functools import wraps
from pathlib import Path

from flask import Blueprint, g, jsonify, request
from sqlalchemy import select

from portal import ledger
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
# Ids and amounts are INTEGER columns, 32 bits on PostgreSQL. An id past that is no row
# (404), not a database error; an amount, points or a quantity past its ceiling is refused
# (422) before anything is stored, and so is an order or basket whose lines add up past it.
MAX_ID = 2**31 - 1
ROW_ID = f"int(max={MAX_ID})"
# An amount's ceiling is the column's own, whatever the currency: a fixed "a million" would
# refuse an ordinary purchase in rupiah or dong, whose minor units are tiny.
MAX_AMOUNT = MAX_ID
MAX_QUANTITY = 10**5


@bp.errorhandler(ApiProblem)
def _problem(e: ApiProblem):
    return e.response()


@bp.errorhandler(ledger.BalanceTooLarge)
def _balance_too_large(_e):
    # A credit past what a balance column holds (say, an order earning points at a
    # generous rate on a huge amount): refused whole, its transaction rolled back.
    return ApiProblem(422, "balance_too_large",
                      "This would take a balance past its limit").response()


def _has_nul(value) -> bool:
    """A NUL, or a lone surrogate (JSON's "\\ud800"): neither can be stored as text."""
    if isinstance(value, str):
        return "\x00" in value or not _encodes(value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def _encodes(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse_nul() -> None:
    """NUL characters are refused in the path, the query and the body: PostgreSQL cannot
    store them in text or JSON, and no till has a reason to send them."""
    body = request.get_json(silent=True) if request.is_json else None
    if _has_nul(request.path) or _has_nul(list(request.args.items(multi=True))) \
            or _has_nul(body):
        raise ApiProblem(400, "bad_request",
                         "Text must not contain NUL characters or lone surrogates")


def client_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _sep, key = header.partition(" ")
        client = api_clients.authenticate(db.session, key.strip()) \
            if scheme.lower() == "bearer" and key and "\x00" not in key else None
        if client is None:
            raise ApiProblem(401, "unauthorized", "Missing or wrong API key",
                             "Send Authorization: Bearer <key>.")
        _refuse_nul()
        g.api_client = client
        api_clients.touch(db.session, client.id)
        return view(*args, **kwargs)

    return wrapped


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiProblem(400, "bad_request", "The body must be a JSON object")
    return body


def _whole(value, *, minimum: int = 0, maximum: int = MAX_AMOUNT) -> int | None:
    """The JSON number as an int within [minimum, maximum], else None. 12.0 is an integer
    to JSON Schema, and so to the spec: it is 12; 12.5 is not. JSON true and false are
    bools, and bools are ints in Python: refused."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if type(value) is not int or not minimum <= value <= maximum:
        return None
    return value


def _optional_text(item: dict, name: str, max_length: int = 64) -> str:
    """An optional string (absent or null: empty), cut to `max_length`; anything else
    raises TypeError for the caller to report."""
    value = item.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(name)
    return value[:max_length]


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
            quantity = _whole(item.get("quantity", 1), minimum=1, maximum=MAX_QUANTITY)
            amount = _whole(item["amount"])
            if quantity is None or amount is None:
                raise ValueError
            lines.append(coupons.Line(
                product_id=_optional_text(item, "product_id"),
                sku_id=_optional_text(item, "sku_id"),
                category=_optional_text(item, "category"), quantity=quantity,
                amount=amount))
        except (AttributeError, KeyError, ValueError, TypeError):
            raise ApiProblem(422, "invalid_field",
                             f"lines[{i}] needs an integer 'amount' (minor units) and a "
                             "positive integer 'quantity'", field=f"lines[{i}]") from None
    _check_total(line.amount for line in lines)
    return lines


def _check_total(amounts) -> None:
    if sum(amounts) > MAX_AMOUNT:
        raise ApiProblem(422, "invalid_field", f"The lines add up to more than {MAX_AMOUNT}",
                         field="lines")


def _member_id(body: dict) -> int | None:
    card_no = body.get("card_no")
    if card_no in (None, ""):
        return None
    if not isinstance(card_no, str) or len(card_no) > 64:
        raise ApiProblem(422, "invalid_field", "'card_no' is a card number", field="card_no")
    digits = "".join(ch for ch in card_no if ch not in " -")
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


@bp.post(f"/redemptions/<{ROW_ID}:redemption_id>/rollback")
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


# --- loyalty: orders, refunds, points, members ---------------------------------------------

def _loyalty_problem(e) -> ApiProblem:
    from portal.loyalty.errors import LoyaltyErrorCode as Code

    status = {Code.UNKNOWN_CARD: 404, Code.UNKNOWN_ORDER: 404, Code.INSUFFICIENT_POINTS: 409,
              Code.ALREADY_MEMBER: 409, Code.CARD_INACTIVE: 409,
              Code.MEMBER_ABNORMAL: 409, Code.UNKNOWN_EVENT: 404,
              Code.REFERENCE_USED: 409}.get(e.code, 422)
    if e.code == Code.INVALID:
        return ApiProblem(422, "invalid_field", str(e), field="lines")
    return ApiProblem(status, e.code, str(e), **e.details)


def _int(body: dict, name: str, *, minimum: int = 0, maximum: int = MAX_AMOUNT) -> int:
    value = _whole(body.get(name), minimum=minimum, maximum=maximum)
    if value is None:
        raise ApiProblem(422, "invalid_field",
                         f"'{name}' must be an integer from {minimum} to {maximum}", field=name)
    return value


def _when(body: dict, name: str):
    """An aware time from 1970 to 2099. Year 1 or 9999 with an offset falls outside what
    datetime can hold once it is moved to UTC or the merchant's zone: a server error."""
    from datetime import UTC, datetime

    raw = body.get(name)
    try:
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None or not 1970 <= moment.astimezone(UTC).year < 2100:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise ApiProblem(422, "invalid_field", f"'{name}' must be an ISO 8601 time with a "
                         "UTC offset, from 1970 to 2099", field=name) from None
    return moment


def _standing(s) -> dict:
    return {"card_no": s.card.number, "name": s.member.full_name,
            "card_plan": s.card.plan.name, "tier": s.card.tier.name,
            "card_status": s.card.current_status(), "member_status": s.member.status,
            "points": s.points, "experience": s.experience,
            "expiring_points": {"points": s.next_expiry_points,
                                "expires_at": s.next_expiry_at.isoformat()
                                if s.next_expiry_at else None}}


def _required_text(item: dict, name: str) -> str:
    value = item[name]
    if not isinstance(value, str):
        raise TypeError(name)
    return value[:64]


def _order_amount(value, maximum: int = MAX_AMOUNT) -> int:
    """An integer for an order line or payment; its sign is the service's to judge, which
    reports it with the order's other rules (negative amounts, quantities below 1)."""
    whole = _whole(value, minimum=-maximum, maximum=maximum)
    if whole is None:
        raise TypeError(value)
    return whole


@bp.post("/orders")
@client_required
def record_order():
    from portal.loyalty import services as loyalty
    from portal.loyalty.errors import LoyaltyError

    body = _body()
    _store, channel = _scope(body)
    raw_lines, raw_payments = body.get("lines"), body.get("payments", [])
    if not isinstance(raw_lines, list) or not isinstance(raw_payments, list):
        raise ApiProblem(422, "invalid_field", "'lines' and 'payments' must be lists",
                         field="lines")
    try:
        lines = [loyalty.OrderLine(line_id=_required_text(ln, "line_id"),
                                   amount=_order_amount(ln["amount"]),
                                   product_id=_optional_text(ln, "product_id"),
                                   name=_optional_text(ln, "name", 120),
                                   category=_optional_text(ln, "category"),
                                   quantity=_order_amount(ln.get("quantity", 1),
                                                          MAX_QUANTITY))
                 for ln in raw_lines]
        payments = [loyalty.Payment(method=_required_text(p, "method"),
                                    amount=_order_amount(p["amount"])) for p in raw_payments]
    except (KeyError, TypeError, AttributeError):
        raise ApiProblem(422, "invalid_field", "Each line needs line_id and an integer amount; "
                         "each payment a method and an integer amount", field="lines") from None
    _check_total(max(line.amount, 0) for line in lines)
    _check_total(max(p.amount, 0) for p in payments)
    try:
        order, created = loyalty.record_order(
            db.session, store_id=g.api_client.store_id, client_id=g.api_client.id,
            channel=channel, external_id=_text(body, "external_id"),
            card_no=_text(body, "card_no"), occurred_at=_when(body, "occurred_at"),
            currency=_text(body, "currency", max_length=3).upper(), lines=lines,
            payments=payments)
        standing = loyalty.member_standing(db.session, order.member_id, body.get("card_no"))
    except LoyaltyError as e:
        raise _loyalty_problem(e) from None
    return jsonify(order_id=order.id, points_earned=order.points_earned,
                   experience_earned=order.experience_earned, member=_standing(standing)), \
        201 if created else 200


@bp.post("/orders/<path:external_id>/refunds")
@client_required
def refund_order(external_id: str):
    from portal.loyalty import services as loyalty
    from portal.loyalty.errors import LoyaltyError

    body = _body()
    raw = body.get("lines")
    lines = None
    if raw is not None:
        try:
            if not isinstance(raw, list):
                raise TypeError(raw)
            lines = [(_required_text(i, "line_id"), _order_amount(i["amount"])) for i in raw]
        except (KeyError, TypeError, AttributeError):
            raise ApiProblem(422, "invalid_field", "'lines' must be [{line_id, amount}]",
                             field="lines") from None
    try:
        refund = loyalty.refund_order(db.session, store_id=g.api_client.store_id,
                                      external_id=external_id,
                                      refund_id=_text(body, "refund_id"), lines=lines)
    except LoyaltyError as e:
        raise _loyalty_problem(e) from None
    return jsonify(refund_id=refund.refund_id, points_reversed=refund.points_reversed,
                   experience_reversed=refund.experience_reversed)


@bp.post("/points/redeem")
@client_required
def redeem_points():
    from portal.loyalty import services as loyalty
    from portal.loyalty.errors import LoyaltyError

    body = _body()
    try:
        entry_id, balance = loyalty.redeem_points(
            db.session, card_no=_text(body, "card_no"), points=_int(body, "points", minimum=1),
            reference=_text(body, "reference"), store_id=g.api_client.store_id)
    except LoyaltyError as e:
        raise _loyalty_problem(e) from None
    return jsonify(entry_id=entry_id, points=balance)


@bp.get("/members/lookup")
@client_required
def lookup_member():
    from portal.loyalty import services as loyalty
    from portal.loyalty.errors import LoyaltyError
    from portal.members.errors import MemberError

    card_no, phone = request.args.get("card_no"), request.args.get("phone")
    if not card_no and not phone:
        raise ApiProblem(422, "invalid_field", "Give card_no or phone", field="card_no")
    try:
        standing = loyalty.lookup(db.session, card_no=card_no, phone=phone)
    except LoyaltyError as e:
        raise _loyalty_problem(e) from None
    except MemberError:
        raise ApiProblem(422, "invalid_field", "Not a valid phone number", field="phone") \
            from None
    return jsonify(_standing(standing))


@bp.post("/members")
@client_required
def add_member():
    from portal.loyalty import services as loyalty
    from portal.members import services as members
    from portal.members.errors import MemberError

    body = _body()
    plan = body.get("card_plan")
    if plan is not None and (plan := _whole(plan, minimum=1, maximum=MAX_ID)) is None:
        raise ApiProblem(422, "invalid_field", "'card_plan' is a card plan id", field="card_plan")
    try:
        name = _optional_text(body, "name", 120)
    except TypeError:
        raise ApiProblem(422, "invalid_field", "'name' must be a string", field="name") from None
    try:
        member, card, created = members.join_at_till(
            db.session, raw_mobile=_text(body, "phone", max_length=32),
            full_name=name, plan_id=plan, store_id=g.api_client.store_id)
    except MemberError as e:
        raise ApiProblem(422, "invalid_field", str(e),
                         field="phone" if e.field in (None, "mobile") else e.field) from None
    payload = _standing(loyalty.standing(db.session, member, card))
    if not created:
        raise ApiProblem(409, "already_member", "This phone number is already a member",
                         member=payload)
    return jsonify(payload), 201


@bp.post("/events")
@client_required
def record_event():
    from portal.loyalty import services as loyalty
    events = loyalty.events
    from portal.loyalty.errors import LoyaltyError

    body = _body()
    try:
        card = loyalty.card_for(db.session, _text(body, "card_no"))
        rec = events.reward(db.session, event_key=_text(body, "event", max_length=32),
                            member_id=card.member_id, reference=_text(body, "reference"))
        standing = loyalty.member_standing(db.session, card.member_id)
    except LoyaltyError as e:
        raise _loyalty_problem(e) from None
    if rec is None:
        return jsonify(rewarded=False, reason_code="cap_reached", points=0, experience=0,
                       member=_standing(standing))
    return jsonify(rewarded=True, reason_code=None, points=rec.points,
                   experience=rec.experience, member=_standing(standing))


# --- prepaid balance: balance, charges, refunds of charges ----------------------------------

def _wallet_problem(e) -> ApiProblem:
    from portal.wallet.errors import WalletErrorCode as Code

    if e.code in (Code.INVALID, Code.INVALID_AMOUNT):
        return ApiProblem(422, "invalid_field", str(e), field=e.details.get("field", "amount"))
    status = {Code.UNKNOWN_CARD: 404, Code.UNKNOWN_CHARGE: 404, Code.CARD_INACTIVE: 409,
              Code.INSUFFICIENT_BALANCE: 409, Code.IDEMPOTENCY_CONFLICT: 409,
              Code.MEMBER_CLOSED: 409, Code.WRONG_CURRENCY: 422,
              Code.REFUND_TOO_LARGE: 422}.get(e.code, 422)
    return ApiProblem(status, str(e.code), str(e), **e.details)


def _prepaid_card(card_no: str):
    from portal.wallet import balance as wallet

    card = wallet.card_by_number(db.session, card_no)
    if card is None:
        raise ApiProblem(404, "unknown_card", "There is no card with this number")
    return card


def _balance_body(card) -> dict:
    from portal.wallet import balance as wallet

    return {"card_no": card.number, **wallet.balance(db.session, card.id).as_dict()}


def _charge_body(charge, card) -> dict:
    return {"charge_id": charge.id, "card_no": card.number, "currency": charge.currency,
            "amount": charge.amount_minor, "principal": charge.principal_minor,
            "bonus": charge.bonus_minor, "order_external_id": charge.order_external_id,
            "refunded": charge.refunded_minor, "status": charge.status,
            "created_at": charge.created_at.isoformat()}


@bp.get("/cards/<card_no>/balance")
@client_required
def card_balance(card_no: str):
    return jsonify(_balance_body(_prepaid_card(card_no)))


@bp.post("/cards/<card_no>/charges")
@client_required
def charge_card(card_no: str):
    from portal.wallet import balance as wallet
    from portal.wallet.errors import WalletError, WalletErrorCode

    body = _body()
    _store, channel = _scope(body)
    amount = _int(body, "amount", minimum=1)
    currency = _text(body, "currency", max_length=3).upper()
    order_id = _text(body, "order_external_id", required=False) or None
    key = _text(body, "idempotency_key")
    lines = body.get("lines")
    if lines is not None and not isinstance(lines, list):
        raise ApiProblem(422, "invalid_field", "lines must be a list", field="lines")
    card = _prepaid_card(card_no)
    store_id = g.api_client.store_id
    try:
        # Keys are the store's own: two stores using the same key never meet.
        charge = wallet.charge(db.session, card_id=card.id, amount_minor=amount,
                               currency=currency, idempotency_key=f"store:{store_id}:{key}",
                               order_external_id=order_id, store_id=store_id,
                               channel=channel, client_id=g.api_client.id, lines=lines)
    except WalletError as e:
        if e.code != WalletErrorCode.INSUFFICIENT_BALANCE:
            raise _wallet_problem(e) from None
        details = {k: e.details[k] for k in ("currency", "balance", "principal", "bonus",
                                              "spendable_now")}
        raise ApiProblem(409, "insufficient_balance", str(e), card_no=card.number,
                         amount=amount, **details,
                         offers=_offers(card, amount, store_id, channel)) from None
    return jsonify(**_charge_body(charge, card), balance_after=_balance_body(card)), \
        200 if charge.replayed else 201


def _offers(card, amount: int, store_id: int, channel: str) -> list[dict]:
    """The smart top-up offers that would pay this bill (empty when there are none)."""
    from portal.wallet import smart

    return smart.offers_for_bill(db.session, card=card, amount_minor=amount,
                                 store_id=store_id, channel=channel)


@bp.post(f"/charges/<{ROW_ID}:charge_id>/refund")
@client_required
def refund_charge(charge_id: int):
    from portal.members.models import MemberCard
    from portal.wallet import balance as wallet
    from portal.wallet.errors import WalletError

    body = _body()
    amount = None if body.get("amount") is None else _int(body, "amount", minimum=1)
    try:
        # Any key of the store that took the charge (till or web shop) can refund it.
        refund = wallet.refund_charge(db.session, charge_id, amount_minor=amount,
                                      refund_key=_text(body, "refund_key"),
                                      store_id=g.api_client.store_id)
    except WalletError as e:
        raise _wallet_problem(e) from None
    charge = wallet.get_charge(db.session, charge_id)
    card = db.session.get(MemberCard, charge.card_id)
    return jsonify(refund_id=refund.id, refund_key=refund.refund_key,
                   amount=refund.amount_minor, principal=refund.principal_minor,
                   bonus=refund.bonus_minor, charge=_charge_body(charge, card),
                   balance_after=_balance_body(card)), 200 if refund.replayed else 201


# --- gift cards: balance, charges, refunds of charges, recharges ---------------------------

def _giftcard_problem(e, *, not_found: str = "unknown_card") -> ApiProblem:
    from portal.giftcards.errors import GiftCardErrorCode as Code

    if e.code == Code.INVALID:
        return ApiProblem(422, "invalid_field", str(e), field=e.details.get("field", "amount"))
    if e.code == Code.NOT_FOUND:
        return ApiProblem(404, not_found, str(e))
    code, status = {Code.FROZEN: ("card_frozen", 409), Code.EXPIRED: ("card_expired", 409),
                    Code.INACTIVE: ("card_inactive", 409),
                    Code.WRONG_STORE: ("wrong_store", 409),
                    Code.INSUFFICIENT: ("insufficient_balance", 409),
                    Code.IDEMPOTENCY_CONFLICT: ("idempotency_conflict", 409),
                    Code.NOT_RECHARGEABLE: ("not_rechargeable", 409),
                    Code.REFUND_TOO_LARGE: ("refund_too_large", 422)}.get(
        e.code, (str(e.code), 409))
    return ApiProblem(status, code, str(e), **e.details)


def _masked(number: str) -> str:
    """A gift card number as a till may print it: all but the last 4 digits hidden."""
    return "*" * max(len(number) - 4, 0) + number[-4:]


def _giftcard(number: str):
    from portal.giftcards import cards as giftcards

    card = giftcards.by_number(db.session, number)
    if card is None:
        raise ApiProblem(404, "unknown_card", "There is no gift card with this number")
    return card


def _giftcard_charge_body(charge, card) -> dict:
    from portal.giftcards import spending

    line = spending.charge_transaction(db.session, charge)
    return {"charge_id": charge.id, "number": _masked(card.number),
            "currency": charge.currency, "amount": charge.amount_minor,
            "balance_after": line.balance_after if line else None,
            "order_external_id": charge.order_external_id,
            "refunded": charge.refunded_minor, "created_at": charge.created_at.isoformat()}


@bp.get("/giftcards/<number>")
@client_required
def giftcard_balance(number: str):
    from portal.giftcards import cards as giftcards

    card = _giftcard(number)
    return jsonify(number=_masked(card.number), currency=card.currency,
                   balance=giftcards.balance(db.session, card),
                   status=giftcards.state(card),
                   expires_at=card.expires_at.isoformat() if card.expires_at else None)


@bp.post("/giftcards/<number>/charges")
@client_required
def charge_giftcard(number: str):
    from portal.giftcards import spending
    from portal.giftcards.errors import GiftCardError

    body = _body()
    _scope(body)
    amount = _int(body, "amount", minimum=1)
    currency = _text(body, "currency", max_length=3).upper()
    order_id = _text(body, "order_external_id", required=False) or None
    key = _text(body, "idempotency_key")
    store_id = g.api_client.store_id
    try:
        # Keys are the store's own: two stores using the same key never meet.
        charge = spending.charge(db.session, number=number, amount_minor=amount,
                                 currency=currency, idempotency_key=f"store:{store_id}:{key}",
                                 order_external_id=order_id, store_id=store_id,
                                 client_id=g.api_client.id)
    except GiftCardError as e:
        raise _giftcard_problem(e) from None
    card = _giftcard(number)
    return jsonify(_giftcard_charge_body(charge, card)), 200 if charge.replayed else 201


@bp.post(f"/giftcards/charges/<{ROW_ID}:charge_id>/refund")
@client_required
def refund_giftcard_charge(charge_id: int):
    from portal.giftcards import spending
    from portal.giftcards.errors import GiftCardError
    from portal.giftcards.models import GiftCard, GiftCardCharge

    body = _body()
    amount = None if body.get("amount") is None else _int(body, "amount", minimum=1)
    refund_key = _text(body, "refund_key")
    try:
        # Any key of the store that took the charge (till or web shop) can refund it.
        refund = spending.refund_charge(db.session, charge_id, amount_minor=amount,
                                        refund_key=refund_key,
                                        store_id=g.api_client.store_id)
    except GiftCardError as e:
        raise _giftcard_problem(e, not_found="unknown_charge") from None
    charge = db.session.get(GiftCardCharge, charge_id)
    card = db.session.get(GiftCard, charge.card_id)
    return jsonify(refund_id=refund.id, refund_key=refund_key, amount=refund.amount_minor,
                   balance_after=refund.balance_after,
                   charge=_giftcard_charge_body(charge, card)), \
        200 if refund.replayed else 201


@bp.post("/giftcards/<number>/recharges")
@client_required
def recharge_giftcard(number: str):
    from portal.giftcards import spending
    from portal.giftcards.errors import GiftCardError

    body = _body()
    _scope(body)
    amount = _int(body, "amount", minimum=1)
    currency = _text(body, "currency", max_length=3).upper()
    key = _text(body, "idempotency_key")
    store_id = g.api_client.store_id
    try:
        row = spending.recharge(db.session, number=number, amount_minor=amount,
                                currency=currency, idempotency_key=f"store:{store_id}:{key}",
                                store_id=store_id, client_id=g.api_client.id)
    except GiftCardError as e:
        raise _giftcard_problem(e) from None
    card = _giftcard(number)
    return jsonify(recharge_id=row.id, number=_masked(card.number), currency=card.currency,
                   amount=row.amount_minor, balance_after=row.balance_after,
                   created_at=row.created_at.isoformat()), 200 if row.replayed else 201


@bp.post("/giftcards/<number>/sales")
@client_required
def sell_giftcard(number: str):
    """A till sells an imported physical card: it gets its value, buyer and validity."""
    from portal.giftcards import tills
    from portal.giftcards.errors import GiftCardError, GiftCardErrorCode

    body = _body()
    _scope(body)
    amount = None if body.get("amount") is None else _int(body, "amount", minimum=1)
    currency = _text(body, "currency", max_length=3).upper()
    key = _text(body, "idempotency_key")
    buyer = body.get("buyer") or {}
    if not isinstance(buyer, dict):
        raise ApiProblem(422, "invalid_field", "'buyer' must be an object", field="buyer")
    store_id = g.api_client.store_id
    try:
        sale = tills.sell(db.session, number=number, amount_minor=amount, currency=currency,
                          idempotency_key=f"store:{store_id}:{key}", store_id=store_id,
                          client_id=g.api_client.id,
                          buyer=tills.Buyer(**{
                              name: _text(buyer, name, max_length=254) if buyer.get(name)
                              else "" for name in ("name", "phone", "email",
                                                   "member_card_no")}))
    except GiftCardError as e:
        if e.code == GiftCardErrorCode.NOT_NOW:
            raise ApiProblem(409, "already_sold", str(e), **e.details) from None
        raise _giftcard_problem(e) from None
    card = sale.card
    return jsonify(sale_id=sale.activation.id, number=_masked(card.number),
                   currency=card.currency, amount=card.face_minor, price=card.price_minor,
                   balance=sale.activation.balance_after,
                   expires_at=card.expires_at.isoformat() if card.expires_at else None,
                   created_at=sale.activation.created_at.isoformat()), \
        200 if sale.replayed else 201


# --- member benefits: the basket quote -------------------------------------------------------

def _quote_lines(body: dict) -> list:
    from portal.benefits.quote import MAX_LINES, QuoteLine

    raw = body.get("lines")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_LINES:
        raise ApiProblem(422, "invalid_field", f"'lines' must be a list of 1 to {MAX_LINES} "
                         "lines", field="lines")
    lines = []
    for i, item in enumerate(raw):
        try:
            product_id, category = item["product_id"], item.get("category") or ""
            quantity = _whole(item["quantity"], minimum=1, maximum=MAX_QUANTITY)
            unit_price = _whole(item["unit_price"])
            if not (isinstance(product_id, str) and product_id.strip()
                    and len(product_id) <= 64 and isinstance(category, str)
                    and len(category) <= 64 and quantity is not None
                    and unit_price is not None):
                raise ValueError
        except (AttributeError, KeyError, TypeError, ValueError):
            raise ApiProblem(422, "invalid_field",
                             f"lines[{i}] needs a 'product_id', an integer 'quantity' ≥ 1 and "
                             "an integer 'unit_price' ≥ 0 (minor units)",
                             field=f"lines[{i}]") from None
        lines.append(QuoteLine(product_id.strip(), category.strip(), quantity, unit_price))
    return lines


def _benefit_ref(benefit) -> dict:
    return {"benefit_id": benefit.id, "name": benefit.name, "kind": benefit.kind}


def _skipped(items) -> list[dict]:
    return [{**_benefit_ref(s.benefit), "reason": str(s.reason)} for s in items]


def _quote_body(q) -> dict:
    def offer(o):
        if o is None:
            return None
        return {**_benefit_ref(o.benefit), "discount_bp": o.discount_bp,
                "member_unit_price": o.unit_price}

    return {
        "card_no": q.card.number, "currency": q.currency, "channel": q.channel,
        "at": q.at.isoformat(), "prepaid_balance": q.prepaid_balance,
        "lines": [{"product_id": lq.line.product_id, "category": lq.line.category,
                   "quantity": lq.line.quantity, "unit_price": lq.line.unit_price,
                   "amount": lq.amount, "offer": offer(lq.offer), "discount": lq.discount,
                   "promotion_discount": lq.promotion_discount, "final_amount": lq.final,
                   "not_applied": _skipped(lq.not_applied)} for lq in q.lines],
        "promotion": None if q.promotion is None else {
            **_benefit_ref(q.promotion.benefit), "discount": q.promotion.discount},
        "subtotal": q.subtotal, "discount": q.discount, "total": q.total,
        "points": {"base": q.points_base, "before_multiplier": q.points_before_multiplier,
                   "multiplier_bp": q.multiplier_bp,
                   "multiplier": None if q.multiplier is None else _benefit_ref(q.multiplier),
                   "points": q.points, "experience": q.experience},
        "not_applied": _skipped(q.not_applied)}


@bp.post("/quotes")
@client_required
def quote_basket():
    """What a member would pay for a basket and earn, with their benefits; writes nothing."""
    from portal import clock
    from portal.benefits import quote
    from portal.loyalty.errors import LoyaltyError

    body = _body()
    _store, channel = _scope(body)
    card_no = _text(body, "card_no", max_length=32)
    at = clock.now() if body.get("at") is None else _when(body, "at")
    balance = None if body.get("prepaid_balance") is None \
        else _int(body, "prepaid_balance", minimum=0)
    lines = _quote_lines(body)
    try:
        result = quote.quote(db.session, card_no=card_no, channel=channel, lines=lines, at=at,
                             store_id=g.api_client.store_id, prepaid_balance=balance)
    except LoyaltyError as e:
        raise _loyalty_problem(e) from None
    return jsonify(_quote_body(result))
