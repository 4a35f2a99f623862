"""Schemathesis hooks: give a share of the generated requests real identifiers."""
from __future__ import annotations

from hypothesis import strategies as st

from tests.fuzz.world import WORLD


def _real_path(case) -> None:
    path, params = case.path, case.path_parameters
    if params is None:
        return
    if "card_no" in params:
        params["card_no"] = WORLD.card_no
    if "number" in params:
        params["number"] = WORLD.giftcard_in_stock if path.endswith("/sales") \
            else WORLD.giftcard
    if "charge_id" in params:
        params["charge_id"] = (WORLD.giftcard_charge_ids if path.startswith("/giftcards")
                               else WORLD.charge_ids)[0]
    if "redemption_id" in params:
        params["redemption_id"] = WORLD.redemption_ids[0]
    if "external_id" in params:
        params["external_id"] = WORLD.order_id


def _real_body(case) -> None:
    body = case.body
    if not isinstance(body, dict):
        return
    real = {"store_code": WORLD.store_code, "channel": WORLD.channel, "card_no": WORLD.card_no,
            "code": WORLD.coupon_code, "currency": WORLD.currency}
    for name, value in real.items():
        if name in body:
            body[name] = value


def _real_query(case) -> None:
    if case.query and "card_no" in case.query:
        case.query["card_no"] = WORLD.card_no
    if case.query and "phone" in case.query:
        case.query["phone"] = WORLD.phone


def _make_real(case) -> None:
    _real_path(case)
    _real_body(case)
    _real_query(case)


# Ids of the cases drawn to name real things. The names go in from `before_call`: Schemathesis
# checks again there whether a negative case is still invalid (a real card number in place
# of a negated one is valid), and edits made earlier would escape that.
_REAL: set[str] = set()


def flatmap_case(context, case):
    """Three requests in four name the seeded store, card, coupon and gift cards; the rest
    keep what was generated (unknown cards, other stores)."""
    def mark(real: bool):
        if real:
            _REAL.add(case.id)
        return case

    return st.integers(0, 3).map(lambda n: n > 0).map(mark)


def before_call(context, case, kwargs):
    if case.id in _REAL:
        _REAL.discard(case.id)
        _make_real(case)




class TillKey:
    """The seeded till's key, as an auth provider: Schemathesis then knows the key is real
    and checks that the same request without it, or with a wrong one, is refused."""

    def get(self, case, context):
        return WORLD.key

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
