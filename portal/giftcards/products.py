"""Gift card products (spec 2.5.2–2.5.3): what the merchant sells — denominations or a
custom amount, a purchase discount, the buyer information asked for, validity, sales
channels — and their lifecycle: create, edit, copy, activate / deactivate.

Prices: a card of face value F with a discount of D basis points costs
F − floor(F × D / 10000): the discount is rounded down, so a buyer never gets more off than
the merchant set.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal import clock
from portal.db import transaction
from portal.giftcards.errors import GiftCardError, GiftCardErrorCode
from portal.giftcards.models import CardStatus, GiftCard, GiftCardProduct, ProductStatus
from portal.members.models import Store
from portal.staff.services import record

KINDS = ("electronic", "physical")
CHANNELS = ("POS", "ONLINE")
BUYER_FIELDS = ("name", "phone", "email", "card_number")
BUYER_MODES = ("required", "optional", "off")
DEFAULT_BUYER_FIELDS = {"name": "optional", "phone": "required", "email": "optional",
                        "card_number": "off"}
# Built-in designs: CSS gradients (`.giftcard-art--<key>` in tessera.css), no images.
BUILTIN_DESIGNS = {
    "teal": _l("Teal"),
    "gold": lazy_pgettext("gift card design", "Gold"),
    "rose": _l("Rose"),
    "ink": _l("Ink"),
    "festive": _l("Festive red"),
    "jade": _l("Jade"),
}
MAX_DENOMINATIONS = 6
MAX_DISCOUNT_BP = 9_999               # 99.99 %: a card is never free
MAX_MINOR = 10**12                    # ten billion in a 2-decimal currency: a typing slip
MAX_VALIDITY_DAYS = 36_500
MAX_NAME = 120
MAX_TERMS = 5000
# Cards that were sold (paid) count in the list, refunded ones too: they were sold.
SOLD = (CardStatus.ACTIVE, CardStatus.FROZEN, CardStatus.REFUNDED)


def _invalid(errors: dict[str, str]) -> GiftCardError:
    return GiftCardError(GiftCardErrorCode.INVALID, _("Please correct the marked fields."),
                         errors=errors)


def _missing() -> GiftCardError:
    return GiftCardError(GiftCardErrorCode.NOT_FOUND, _("There is no such gift card."))


def is_builtin(design: str | None) -> bool:
    return design in BUILTIN_DESIGNS


def design_name(design: str) -> str:
    return str(BUILTIN_DESIGNS.get(design, _("Uploaded image")))


def price_minor(product: GiftCardProduct, face_minor: int) -> int:
    """What the buyer pays for a card of `face_minor`."""
    return face_minor - face_minor * (product.discount_bp or 0) // 10_000


def check_amount(product: GiftCardProduct, face_minor) -> int:
    """`face_minor` if the product sells a card of that value (one of its denominations or,
    with custom amounts on, within the range); else GiftCardError(INVALID)."""
    if not _is_int(face_minor) or face_minor <= 0:
        raise GiftCardError(GiftCardErrorCode.INVALID, _("The amount must be more than 0."))
    if face_minor in (product.denominations or []):
        return face_minor
    if product.custom_amount and product.custom_min_minor <= face_minor \
            <= product.custom_max_minor:
        return face_minor
    if product.custom_amount:
        raise GiftCardError(GiftCardErrorCode.INVALID,
                            _("Choose an amount from the list or within the range."),
                            low=product.custom_min_minor, high=product.custom_max_minor)
    raise GiftCardError(GiftCardErrorCode.INVALID, _("Choose an amount from the list."))


# --- checking what the merchant typed ------------------------------------------------------

def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _name_taken(session: Session, name: str, product_id: int | None) -> bool:
    query = select(GiftCardProduct.id).where(func.lower(GiftCardProduct.name) == name.lower())
    if product_id is not None:
        query = query.where(GiftCardProduct.id != product_id)
    return session.scalar(query.limit(1)) is not None


def _check_name(session: Session, raw, product_id: int | None, errors: dict,
                key: str = "name") -> str:
    name = (raw or "").strip()
    if not name:
        errors.setdefault(key, _("Give the gift card a name."))
    elif len(name) > MAX_NAME:
        errors.setdefault(key, _("At most %(n)d characters.", n=MAX_NAME))
    elif _name_taken(session, name, product_id):
        errors.setdefault(key, _("Another gift card has this name: choose another."))
    return name


def _money(value, name: str, errors: dict, *, required: bool) -> int | None:
    if value is None:
        if required:
            errors.setdefault(name, _("Enter an amount."))
        return None
    if not _is_int(value) or value <= 0 or value > MAX_MINOR:
        errors.setdefault(name, _("The amount must be more than 0."))
        return None
    return value


def _denominations(data: dict, custom: bool, errors: dict) -> list[int]:
    values = [v for v in (data.get("denominations") or []) if v is not None]
    if len(values) > MAX_DENOMINATIONS:
        errors.setdefault("denominations",
                          _("At most %(n)d denominations: remove %(extra)d.",
                            n=MAX_DENOMINATIONS, extra=len(values) - MAX_DENOMINATIONS))
        return []
    if not values and not custom:
        errors.setdefault("denominations",
                          _("Give at least one denomination, or allow a custom amount."))
        return []
    if any(not _is_int(v) or v <= 0 or v > MAX_MINOR for v in values):
        errors.setdefault("denominations", _("Each denomination must be more than 0."))
        return []
    if len(set(values)) != len(values):
        errors.setdefault("denominations", _("Each denomination only once."))
        return []
    return sorted(values)


def clean(session: Session, data: dict, product: GiftCardProduct | None = None) -> dict:
    """The values to store for a product, from parsed input: money in minor units (ints),
    the discount in basis points, store ids, lists of channels. `data["errors"]` may carry
    what the caller could not read. Raises GiftCardError(INVALID, errors={field: message})
    with everything wrong at once; nothing is saved."""
    errors: dict[str, str] = dict(data.get("errors") or {})
    v: dict = {}
    kind = data.get("kind") or (product.kind if product else "")
    if kind not in KINDS:
        errors.setdefault("kind", _("Choose an electronic or a physical card."))
    v["kind"] = kind
    v["name"] = _check_name(session, data.get("name"), product.id if product else None,
                            errors)
    if product is not None:
        v["currency"] = product.currency       # cards are priced in it: fixed once created
    else:
        currency = (data.get("currency") or "").upper()
        if not (len(currency) == 3 and currency.isalpha()):
            errors.setdefault("currency", _("Choose a currency."))
        v["currency"] = currency

    try:
        store_ids = sorted({int(i) for i in data.get("store_ids") or []})
    except (TypeError, ValueError):
        store_ids = []
        errors.setdefault("store_ids", _("Choose from the list."))
    if store_ids and set(store_ids) - set(session.scalars(
            select(Store.id).where(Store.id.in_(store_ids)))):
        errors.setdefault("store_ids", _("Choose from the list."))
    v["store_ids"] = store_ids

    design = data.get("design_image") or data.get("design") or ""
    # An uploaded image is new (the view stored it) or the one the product already has.
    if not (is_builtin(design) or design == data.get("design_image")
            or (product is not None and design == product.design)):
        errors.setdefault("design", _("Choose a design or upload an image."))
    v["design"] = design

    custom = bool(data.get("custom_amount"))
    v["custom_amount"] = custom
    v["denominations"] = _denominations(data, custom, errors)
    discount = data.get("discount_bp")
    if discount is None:
        discount = 0
    if not _is_int(discount) or not 0 <= discount <= MAX_DISCOUNT_BP:
        errors.setdefault("discount_bp", _("Enter a discount from 0 to 99.99%."))
        discount = 0
    v["discount_bp"] = discount
    v["custom_min_minor"] = v["custom_max_minor"] = None
    if custom:
        low = _money(data.get("custom_min_minor"), "custom_min_minor", errors, required=True)
        high = _money(data.get("custom_max_minor"), "custom_max_minor", errors,
                      required=True)
        if low is not None and high is not None and high <= low:
            errors.setdefault("custom_max_minor", _("The most must be more than the least."))
        v["custom_min_minor"], v["custom_max_minor"] = low, high

    channels = data.get("channels") or []
    if not channels or set(channels) - set(CHANNELS):
        errors.setdefault("channels", _("Choose at least one sales channel: POS or online."))
    v["channels"] = [c for c in CHANNELS if c in channels]

    given = data.get("buyer_fields") or {}
    buyer = {}
    for key in BUYER_FIELDS:
        mode = given.get(key) or DEFAULT_BUYER_FIELDS[key]
        if mode not in BUYER_MODES:
            errors.setdefault(f"buyer_{key}", _("Choose required, optional or off."))
            mode = DEFAULT_BUYER_FIELDS[key]
        buyer[key] = mode
    if buyer["card_number"] != "off" and "POS" not in v["channels"]:
        errors.setdefault("buyer_card_number",
                          _("The card number is asked for at POS sales only: add the POS "
                            "channel or switch it off."))
    v["buyer_fields"] = buyer

    days = data.get("validity_days")
    if days is not None and (not _is_int(days) or not 1 <= days <= MAX_VALIDITY_DAYS):
        errors.setdefault("validity_days",
                          _("Enter a number of days from 1 (empty: no expiry)."))
        days = None
    v["validity_days"] = days
    v["pos_recharge"] = bool(data.get("pos_recharge"))
    terms = (data.get("terms") or "").strip()
    if len(terms) > MAX_TERMS:
        errors.setdefault("terms", _("At most %(n)d characters.", n=MAX_TERMS))
    v["terms"] = terms
    if errors:
        raise _invalid(errors)
    return v


# --- saving ---------------------------------------------------------------------------------

SNAPSHOT_SKIP = {"created_at", "updated_at"}


def _snapshot(product: GiftCardProduct) -> dict:
    return {c.key: getattr(product, c.key) for c in GiftCardProduct.__mapper__.column_attrs
            if c.key not in SNAPSHOT_SKIP}


def _locked(session: Session, product_id: int) -> GiftCardProduct:
    product = session.scalar(select(GiftCardProduct).where(GiftCardProduct.id == product_id)
                             .with_for_update().execution_options(populate_existing=True))
    if product is None:
        raise _missing()
    return product


def get(session: Session, product_id: int) -> GiftCardProduct | None:
    return session.get(GiftCardProduct, product_id)


def create(session: Session, data: dict, *, operator_id: int | None,
           activate: bool = False) -> GiftCardProduct:
    """A new product, as a draft or on sale at once."""
    with transaction(session):
        values = clean(session, data)
        product = GiftCardProduct(**values, status=ProductStatus.ACTIVE if activate
                                  else ProductStatus.DRAFT)
        session.add(product)
        session.flush()
        record(session, operator_id, "giftcard_product.create", product,
               after=_snapshot(product))
        return product


def update(session: Session, product_id: int, data: dict, *, operator_id: int | None
           ) -> GiftCardProduct:
    """Save the merchant's changes. Sold cards keep their face value, price and expiry
    (each card stores its own); the currency does not change."""
    with transaction(session):
        product = _locked(session, product_id)
        values = clean(session, data, product)
        before = _snapshot(product)
        for name, value in values.items():
            setattr(product, name, value)
        product.updated_at = clock.now()
        session.flush()
        record(session, operator_id, "giftcard_product.update", product, before=before,
               after=_snapshot(product))
        return product


def copy(session: Session, product_id: int, name: str, *, operator_id: int | None
         ) -> GiftCardProduct:
    """A draft with everything of the product but a new name (which must be free)."""
    with transaction(session):
        source = session.get(GiftCardProduct, product_id)
        if source is None:
            raise _missing()
        errors: dict[str, str] = {}
        new_name = _check_name(session, name, None, errors)
        if errors:
            raise GiftCardError(GiftCardErrorCode.INVALID, errors["name"], errors=errors)
        values = {k: v for k, v in _snapshot(source).items() if k not in ("id", "status")}
        values.update(name=new_name, store_ids=list(source.store_ids or []),
                      denominations=list(source.denominations or []),
                      buyer_fields=dict(source.buyer_fields or {}),
                      channels=list(source.channels or []))
        product = GiftCardProduct(**values, status=ProductStatus.DRAFT)
        session.add(product)
        session.flush()
        record(session, operator_id, "giftcard_product.copy", product,
               before={"copied_from": source.id}, after=_snapshot(product))
        return product


ACTIONS = {
    "activate": ({ProductStatus.DRAFT, ProductStatus.INACTIVE}, ProductStatus.ACTIVE),
    "deactivate": ({ProductStatus.ACTIVE}, ProductStatus.INACTIVE),
}


def set_status(session: Session, product_id: int, action: str, *, operator_id: int | None
               ) -> GiftCardProduct:
    """Put a product on sale or take it off sale. Only the product's status changes: cards
    already sold stay valid, keep their balance and can still be spent."""
    with transaction(session):
        product = _locked(session, product_id)
        if action not in ACTIONS:
            raise _missing()
        allowed, to = ACTIONS[action]
        if product.status not in allowed:
            raise GiftCardError(GiftCardErrorCode.NOT_NOW,
                                _("This gift card cannot do that now."))
        before = product.status
        product.status = to
        product.updated_at = clock.now()
        record(session, operator_id, f"giftcard_product.{action}", product,
               before={"status": before}, after={"status": to})
        return product


@dataclass
class Row:
    product: GiftCardProduct
    cards_sold: int
    value_sold_minor: int      # face value of the cards sold


def product_list(session: Session, status: str | None = None) -> list[Row]:
    """Products newest first with the cards sold of each and their face value, in one
    query."""
    sold = (select(GiftCard.product_id, func.count(GiftCard.id).label("n"),
                   func.coalesce(func.sum(GiftCard.face_minor), 0).label("value"))
            .where(GiftCard.status.in_(SOLD)).group_by(GiftCard.product_id).subquery())
    query = (select(GiftCardProduct, func.coalesce(sold.c.n, 0),
                    func.coalesce(sold.c.value, 0))
             .outerjoin(sold, sold.c.product_id == GiftCardProduct.id)
             .order_by(GiftCardProduct.id.desc()))
    if status:
        query = query.where(GiftCardProduct.status == status)
    return [Row(p, int(n), int(v)) for p, n, v in session.execute(query).all()]


def on_sale(session: Session, channel: str) -> list[GiftCardProduct]:
    """Active products selling on `channel` ("POS" or "ONLINE"), oldest first."""
    products = session.scalars(select(GiftCardProduct)
                               .where(GiftCardProduct.status == ProductStatus.ACTIVE)
                               .order_by(GiftCardProduct.id))
    # Channels are a JSON list: filtered here, the same on SQLite and PostgreSQL.
    return [p for p in products if channel in (p.channels or [])]


def store_choices(session: Session) -> list[Store]:
    return list(session.scalars(select(Store).order_by(Store.name)))
