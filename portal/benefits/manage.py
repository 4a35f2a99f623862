"""Member benefits on the merchant side (spec 2.1): create, change, deactivate and
activate benefits of the ten kinds, and the management list.

Each kind keeps only its own fields; what another kind would use is stored empty, so a
reader (the basket quote, earning, the member page) never sees a stale value.

Who has a benefit: its card plans (none chosen: every plan) and its tiers (none chosen:
every tier of those plans; see `portal.benefits.rules.in_scope`). Tier perks (member days
and birthdays) are added to the benefit's own discount and multiplier for members of
exactly that tier.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal import clock
from portal.benefits.errors import BenefitError, BenefitErrorCode
from portal.benefits.models import Benefit, BenefitKind, BenefitStatus
from portal.campaigns.models import Activity, ActivityStatus
from portal.db import transaction
from portal.members.models import CardPlan, Tier
from portal.staff.models import StaffUser
from portal.staff.services import record
from portal.wallet import schedule as schedules

CHANNELS = ("POS", "ONLINE")
RESTRICTIONS = ("none", "balance_below_amount", "balance_below_due",
                "balance_below_discounted_due")
EXCLUSION_MODES = ("none", "products", "categories")
BIRTHDAY_WINDOWS = ("day", "week", "month")
MAX_IMAGES = 6
MAX_PRICES = 200
MAX_VALUES = 500
MAX_ID = 64
MAX_MINOR = 10**12
MAX_MULTIPLIER_BP = 100_000          # points × 10
MAX_EXTENSION_DAYS = 3650
MAX_DESCRIPTION = 5000
MAX_NOTE = 120
PAGE_SIZE = 50

# Which groups of fields each kind has (name, brief, description, icon and the plans /
# tiers every kind has).
KIND_FIELDS: dict[str, frozenset[str]] = {
    BenefitKind.MARKETING: frozenset({"activity"}),
    BenefitKind.PROMOTION: frozenset({"activity", "promotion", "channels"}),
    BenefitKind.MEMBER_PRICE: frozenset({"prices", "channels", "restriction", "exclusions"}),
    BenefitKind.DISCOUNT: frozenset({"discount", "channels", "restriction", "exclusions"}),
    BenefitKind.MEMBER_DAY: frozenset({"schedule", "extras", "tier_perks", "channels",
                                       "restriction", "exclusions"}),
    BenefitKind.BIRTHDAY: frozenset({"birthday_window", "extras", "tier_perks", "channels",
                                     "restriction", "exclusions"}),
    BenefitKind.MULTIPLIER: frozenset({"multiplier"}),
    BenefitKind.CARD_EXTENSION: frozenset({"extension"}),
    BenefitKind.SERVICE: frozenset({"images"}),
    BenefitKind.CUSTOM: frozenset(),
}
# Kinds whose amounts are money: their plans must share one currency.
MONEY_KINDS = (BenefitKind.PROMOTION, BenefitKind.MEMBER_PRICE)

STORED = ("kind", "name", "brief", "description", "icon", "status", "currency", "plan_ids",
          "tier_ids", "channels", "activity_id", "threshold_minor", "off_minor", "prices",
          "discount_bp", "multiplier_bp", "restriction", "exclusions", "schedule",
          "birthday_window", "tier_perks", "extension_days", "images")


def has(kind: str, group: str) -> bool:
    return group in KIND_FIELDS.get(kind, frozenset())


def _invalid(errors: dict[str, str]) -> BenefitError:
    return BenefitError(BenefitErrorCode.INVALID, _("Please correct the marked fields."),
                        errors=errors)


def _not_found() -> BenefitError:
    return BenefitError(BenefitErrorCode.NOT_FOUND, _("There is no such benefit."))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ids(value) -> list[int]:
    return sorted({int(v) for v in value or [] if _is_int(v) or str(v).isdecimal()})


# --- checking what the merchant typed ------------------------------------------------------

def _text(data: dict, v: dict, errors: dict) -> None:
    name = (data.get("name") or "").strip()
    if not name:
        errors["name"] = _("Give the benefit a name.")
    elif len(name) > 80:
        errors["name"] = _("At most %(n)d characters.", n=80)
    brief = (data.get("brief") or "").strip()
    if len(brief) > 160:
        errors["brief"] = _("At most %(n)d characters.", n=160)
    description = (data.get("description") or "").strip()
    if len(description) > MAX_DESCRIPTION:
        errors["description"] = _("At most %(n)d characters.", n=MAX_DESCRIPTION)
    v.update(name=name, brief=brief, description=description)


def _scope(session: Session, kind: str, data: dict, v: dict, errors: dict) -> list[CardPlan]:
    """Plans and tiers; returns the plans the benefit reaches (for the currency and the
    card extension check)."""
    plan_ids, tier_ids = _ids(data.get("plan_ids")), _ids(data.get("tier_ids"))
    plans = list(session.scalars(select(CardPlan).order_by(CardPlan.id)))
    by_id = {p.id: p for p in plans}
    if set(plan_ids) - set(by_id):
        errors["plan_ids"] = _("Choose from the list.")
    chosen = [by_id[i] for i in plan_ids if i in by_id] or plans
    tier_plan = dict(session.execute(select(Tier.id, Tier.plan_id)).all()) if tier_ids else {}
    if set(tier_ids) - set(tier_plan):
        errors["tier_ids"] = _("Choose from the list.")
    elif plan_ids and any(tier_plan[t] not in plan_ids for t in tier_ids):
        errors["tier_ids"] = _("Choose tiers of the chosen card plans.")
    v.update(plan_ids=plan_ids, tier_ids=tier_ids)
    return chosen


def _currency(kind: str, data: dict, plans: list[CardPlan], v: dict, errors: dict) -> None:
    """The chosen plans' currency (every plan's when none is chosen)."""
    currencies = sorted({p.currency for p in plans})
    if len(currencies) == 1:
        v["currency"] = currencies[0]
    else:
        v["currency"] = (data.get("currency") or (currencies[0] if currencies else "")).upper()
    uses_money = kind in MONEY_KINDS or (
        has(kind, "restriction")
        and (data.get("restriction") or {}).get("rule") == "balance_below_amount")
    if len(currencies) > 1 and uses_money:
        errors.setdefault("plan_ids", _("Amounts are in one currency: choose card plans "
                                        "that use the same currency."))


def _money(value, name: str, errors: dict, *, required: bool = True) -> int | None:
    if value is None:
        if required:
            errors.setdefault(name, _("Enter an amount."))
        return None
    if not _is_int(value) or value > MAX_MINOR:
        errors.setdefault(name, _("Enter an amount such as 12.50."))
        return None
    if value < 0:
        errors.setdefault(name, _("An amount cannot be below zero."))
        return None
    return value


def _promotion(data: dict, v: dict, errors: dict) -> None:
    threshold = _money(data.get("threshold_minor"), "threshold_minor", errors)
    off = _money(data.get("off_minor"), "off_minor", errors)
    if threshold is not None and threshold == 0:
        errors["threshold_minor"] = _("The order amount must be more than 0.")
        threshold = None
    if off is not None and off == 0:
        errors["off_minor"] = _("The amount off must be more than 0.")
    elif off is not None and threshold is not None and off >= threshold:
        errors["off_minor"] = _("The amount off must be less than the order amount.")
    v.update(threshold_minor=threshold, off_minor=off)


def _prices(data: dict, v: dict, errors: dict) -> None:
    rows = list(data.get("prices") or [])
    clean, seen = [], set()
    if not rows:
        errors["prices"] = _("Add at least one product and its member price.")
    elif len(rows) > MAX_PRICES:
        errors["prices"] = _("At most %(n)d products.", n=MAX_PRICES)
    for i, row in enumerate(rows):
        product = str(row.get("product_id") or "").strip()
        price = row.get("price_minor")
        if not product:
            errors[f"prices-{i}-product_id"] = _("Enter the product id.")
        elif len(product) > MAX_ID:
            errors[f"prices-{i}-product_id"] = _("At most %(n)d characters.", n=MAX_ID)
        elif product in seen:
            errors[f"prices-{i}-product_id"] = _("This product is already in the list.")
        seen.add(product)
        if price is None:
            errors.setdefault(f"prices-{i}-price_minor", _("Enter the member price."))
        elif not _is_int(price) or price > MAX_MINOR:
            errors.setdefault(f"prices-{i}-price_minor", _("Enter an amount such as 12.50."))
        elif price < 0:
            errors[f"prices-{i}-price_minor"] = _("A member price cannot be below zero.")
        clean.append({"product_id": product, "price_minor": price})
    v["prices"] = clean


def _bp(value, name: str, errors: dict, *, required: bool) -> int | None:
    if value is None:
        if required:
            errors[name] = _("Enter the discount percentage.")
        return None
    if not _is_int(value) or not 0 < value < 10_000:
        errors[name] = _("Enter a percentage above 0 and below 100, such as 20 for 20%% off.")
        return None
    return value


def _multiplier(value, name: str, errors: dict, *, required: bool) -> int | None:
    if value is None:
        if required:
            errors[name] = _("Enter the points multiplier.")
        return None
    if not _is_int(value) or not 10_000 < value <= MAX_MULTIPLIER_BP:
        errors[name] = _("Enter a multiplier above 1 and at most 10, such as 1.5 or 2.")
        return None
    return value


def _channels(data: dict, v: dict, errors: dict) -> None:
    given = data.get("channels", CHANNELS) or []
    channels = [c for c in CHANNELS if c in given]
    if set(given) - set(CHANNELS):
        errors["channels"] = _("Choose from the list.")
    elif not channels:
        errors["channels"] = _("Choose at least one channel.")
    v["channels"] = channels


def _restriction(data: dict, v: dict, errors: dict) -> None:
    raw = data.get("restriction") or {}
    rule = raw.get("rule") or "none"
    if rule not in RESTRICTIONS:
        errors["restriction_rule"] = _("Choose from the list.")
        rule = "none"
    clean = {"rule": rule}
    if rule == "balance_below_amount":
        amount = _money(raw.get("amount_minor"), "restriction_amount_minor", errors)
        clean["amount_minor"] = amount
    v["restriction"] = clean


def _exclusions(data: dict, v: dict, errors: dict) -> None:
    raw = data.get("exclusions") or {}
    mode = raw.get("mode") or "none"
    if mode not in EXCLUSION_MODES:
        errors["exclusions_mode"] = _("Choose from the list.")
        mode = "none"
    values: list[str] = []
    for value in raw.get("values") or []:
        value = str(value).strip()
        if value and value not in values:
            values.append(value)
    if mode == "none":
        values = []
    elif not values:
        errors["exclusions_values"] = (
            _("Enter the products to leave out, one per line.") if mode == "products"
            else _("Enter the categories to leave out, one per line."))
    elif len(values) > MAX_VALUES or any(len(x) > MAX_ID for x in values):
        errors["exclusions_values"] = _("At most %(n)d entries of %(m)d characters each.",
                                        n=MAX_VALUES, m=MAX_ID)
    v["exclusions"] = {"mode": mode, "values": values}


def _schedule(data: dict, v: dict, errors: dict) -> None:
    raw = data.get("schedule") or {}
    if raw.get("frequency") not in ("weekly", "monthly"):
        errors["schedule_frequency"] = _("Choose weekly or monthly member days.")
        v["schedule"] = {}
        return
    found = schedules.validate_schedule(raw)
    for key, message in found.items():
        errors[f"schedule_{key}"] = message
    v["schedule"] = {} if found else schedules.clean_schedule(raw)


def _tier_perks(session: Session, data: dict, v: dict, plans: list[CardPlan],
                errors: dict) -> None:
    rows = list(data.get("tier_perks") or [])
    plan_ids = {p.id for p in plans}
    tier_plan = dict(session.execute(select(Tier.id, Tier.plan_id)).all()) if rows else {}
    clean, seen = [], set()
    for i, row in enumerate(rows):
        p = f"tier_perks-{i}-"
        tier_id = row.get("tier_id")
        if not _is_int(tier_id) or tier_id not in tier_plan:
            errors[p + "tier_id"] = _("Choose a tier.")
        elif tier_plan[tier_id] not in plan_ids or (v["tier_ids"] and
                                                     tier_id not in v["tier_ids"]):
            errors[p + "tier_id"] = _("Choose a tier that has this benefit.")
        elif tier_id in seen:
            errors[p + "tier_id"] = _("This tier already has a row.")
        seen.add(tier_id)
        discount = row.get("discount_bp")
        if discount is not None and (not _is_int(discount) or not 0 < discount < 10_000
                                     or discount + (v.get("discount_bp") or 0) >= 10_000):
            errors[p + "discount_bp"] = _("Enter a percentage above 0; with the benefit's "
                                          "own it must stay below 100.")
        multiplier = row.get("multiplier_bp")
        base = v.get("multiplier_bp") or 10_000
        if multiplier is not None and (not _is_int(multiplier) or multiplier <= 0
                                       or base + multiplier > MAX_MULTIPLIER_BP):
            errors[p + "multiplier_bp"] = _("Enter extra points above 0; the total stays at "
                                            "most × 10.")
        note = (row.get("note") or "").strip()
        if len(note) > MAX_NOTE:
            errors[p + "note"] = _("At most %(n)d characters.", n=MAX_NOTE)
        if discount is None and multiplier is None and not note:
            errors.setdefault(p + "tier_id", _("Give the tier an extra discount, extra "
                                               "points or a note."))
        clean.append({"tier_id": tier_id, "discount_bp": discount,
                      "multiplier_bp": multiplier, "note": note})
    v["tier_perks"] = clean


def _extension(data: dict, v: dict, plans: list[CardPlan], errors: dict) -> None:
    days = data.get("extension_days")
    if days is None:
        errors["extension_days"] = _("Enter the number of days.")
    elif not _is_int(days) or not 1 <= days <= MAX_EXTENSION_DAYS:
        errors["extension_days"] = _("Enter %(low)d to %(high)d days.", low=1,
                                     high=MAX_EXTENSION_DAYS)
    v["extension_days"] = days
    permanent = [p.name for p in plans if p.validity_days is None]
    if permanent:
        names = ", ".join(f"“{n}”" for n in permanent)
        errors.setdefault("plan_ids", _(
            "A card extension is only for cards that expire; %(names)s never expires. "
            "Choose card plans with a validity period.", names=names)
            if data.get("plan_ids") else _(
            "A card extension is only for cards that expire, and %(names)s never expires: "
            "choose the card plans with a validity period.", names=names))


def _activity(session: Session, data: dict, v: dict, errors: dict) -> None:
    activity_id = data.get("activity_id")
    if activity_id is None:
        errors["activity_id"] = _("Choose the linked activity.")
    else:
        status = session.scalar(select(Activity.status).where(Activity.id == activity_id)) \
            if _is_int(activity_id) else None
        if status is None:
            errors["activity_id"] = _("This activity does not exist: choose from the list.")
        elif status == ActivityStatus.ARCHIVED:
            errors["activity_id"] = _("This activity is archived: choose another.")
    v["activity_id"] = activity_id


def clean(session: Session, kind: str, data: dict, benefit: Benefit | None = None) -> dict:
    """The benefit's stored values from what the merchant typed; every problem at once
    (raises BenefitError with them by field). `data["errors"]` holds what the page could
    not read; they are reported with the rest."""
    if kind not in set(BenefitKind):
        raise _invalid({"kind": _("Choose a benefit type.")})
    errors: dict[str, str] = dict(data.get("errors") or {})
    v: dict = {"kind": kind}
    _text(data, v, errors)
    plans = _scope(session, kind, data, v, errors)
    _currency(kind, data, plans, v, errors)
    v.update(channels=list(CHANNELS), activity_id=None, threshold_minor=None, off_minor=None,
             prices=[], discount_bp=None, multiplier_bp=None, restriction={"rule": "none"},
             exclusions={"mode": "none", "values": []}, schedule={}, birthday_window=None,
             tier_perks=[], extension_days=None, images=[])
    if has(kind, "activity"):
        _activity(session, data, v, errors)
    if has(kind, "promotion"):
        _promotion(data, v, errors)
    if has(kind, "prices"):
        _prices(data, v, errors)
    if has(kind, "discount"):
        v["discount_bp"] = _bp(data.get("discount_bp"), "discount_bp", errors, required=True)
    if has(kind, "multiplier"):
        v["multiplier_bp"] = _multiplier(data.get("multiplier_bp"), "multiplier_bp", errors,
                                         required=True)
    if has(kind, "extras"):
        v["discount_bp"] = _bp(data.get("discount_bp"), "discount_bp", errors, required=False)
        v["multiplier_bp"] = _multiplier(data.get("multiplier_bp"), "multiplier_bp", errors,
                                         required=False)
    if has(kind, "channels"):
        _channels(data, v, errors)
    if has(kind, "restriction"):
        _restriction(data, v, errors)
    if has(kind, "exclusions"):
        _exclusions(data, v, errors)
    if has(kind, "schedule"):
        _schedule(data, v, errors)
    if has(kind, "birthday_window"):
        window = data.get("birthday_window")
        if window not in BIRTHDAY_WINDOWS:
            errors["birthday_window"] = _("Choose the birthday, its week or its month.")
        v["birthday_window"] = window
    if has(kind, "tier_perks"):
        _tier_perks(session, data, v, plans, errors)
    if has(kind, "extension"):
        _extension(data, v, plans, errors)
    if has(kind, "images"):
        images = [str(i) for i in data.get("images") or []]
        if len(images) > MAX_IMAGES:
            errors["images"] = _("Up to %(n)d detail images.", n=MAX_IMAGES)
        v["images"] = images
    v["icon"] = data["icon"] if "icon" in data else (benefit.icon if benefit else None)
    if errors:
        raise _invalid(errors)
    return v


# --- writing --------------------------------------------------------------------------------

def snapshot(benefit: Benefit) -> dict:
    return {name: getattr(benefit, name) for name in STORED}


def _locked(session: Session, benefit_id: int) -> Benefit:
    benefit = session.scalar(select(Benefit).where(Benefit.id == benefit_id)
                             .with_for_update().execution_options(populate_existing=True))
    if benefit is None:
        raise _not_found()
    return benefit


def create(session: Session, kind: str, data: dict, *, operator_id: int) -> Benefit:
    """A new benefit, active at once: members of its plans and tiers have it."""
    with transaction(session):
        values = clean(session, kind, data)
        benefit = Benefit(**values, status=BenefitStatus.ACTIVE, operator_id=operator_id)
        session.add(benefit)
        session.flush()
        record(session, operator_id, "benefit.create", benefit, after=snapshot(benefit))
    return benefit


def update(session: Session, benefit_id: int, data: dict, *, operator_id: int) -> Benefit:
    """Change a benefit (its kind stays); members see the change at once."""
    with transaction(session):
        benefit = _locked(session, benefit_id)
        values = clean(session, benefit.kind, data, benefit)
        before = snapshot(benefit)
        for name, value in values.items():
            setattr(benefit, name, value)
        benefit.operator_id, benefit.updated_at = operator_id, clock.now()
        record(session, operator_id, "benefit.update", benefit, before=before,
               after=snapshot(benefit))
    return benefit


def _set_status(session: Session, benefit_id: int, status: str, action: str,
                operator_id: int) -> Benefit:
    with transaction(session):
        benefit = _locked(session, benefit_id)
        if benefit.status != status:
            before = {"status": benefit.status}
            benefit.status, benefit.operator_id = status, operator_id
            benefit.updated_at = clock.now()
            record(session, operator_id, action, benefit, before=before,
                   after={"status": status})
    return benefit


def deactivate(session: Session, benefit_id: int, *, operator_id: int) -> Benefit:
    """Members lose the benefit at once: every reader looks at active benefits only."""
    return _set_status(session, benefit_id, BenefitStatus.INACTIVE, "benefit.deactivate",
                       operator_id)


def activate(session: Session, benefit_id: int, *, operator_id: int) -> Benefit:
    return _set_status(session, benefit_id, BenefitStatus.ACTIVE, "benefit.activate",
                       operator_id)


# --- reading --------------------------------------------------------------------------------

def get(session: Session, benefit_id: int) -> Benefit | None:
    return session.get(Benefit, benefit_id)


@dataclass(frozen=True)
class BenefitFilters:
    q: str = ""                      # part of the name, any case
    kind: str = ""
    status: str = ""
    operator_id: int | None = None   # the staff member who last changed it


@dataclass(frozen=True)
class BenefitRow:
    benefit: Benefit
    operator: str | None
    changed_at: datetime


def benefit_list(session: Session, filters: BenefitFilters, *, before_id: int | None = None,
                 limit: int = PAGE_SIZE) -> tuple[list[BenefitRow], bool]:
    """One page of the management list, newest first, in one query; and whether there is
    more."""
    stmt = select(Benefit, StaffUser.name).outerjoin(
        StaffUser, StaffUser.id == Benefit.operator_id).order_by(Benefit.id.desc())
    if filters.q:
        stmt = stmt.where(func.lower(Benefit.name).contains(filters.q.lower(),
                                                            autoescape=True))
    if filters.kind:
        stmt = stmt.where(Benefit.kind == filters.kind)
    if filters.status:
        stmt = stmt.where(Benefit.status == filters.status)
    if filters.operator_id:
        stmt = stmt.where(Benefit.operator_id == filters.operator_id)
    if before_id:
        stmt = stmt.where(Benefit.id < before_id)
    found = session.execute(stmt.limit(limit + 1)).all()
    rows = [BenefitRow(b, name, b.updated_at or b.created_at) for b, name in found[:limit]]
    return rows, len(found) > limit


def operators(session: Session) -> list[tuple[int, str]]:
    """Staff who last changed some benefit: the choices of the list's operator filter."""
    return list(session.execute(
        select(StaffUser.id, StaffUser.name).where(
            StaffUser.id.in_(select(Benefit.operator_id))).order_by(StaffUser.name)).all())


def choices(session: Session) -> tuple[list[CardPlan], list[Activity]]:
    """Card plans with their tiers, and the activities a benefit may link to."""
    from sqlalchemy.orm import selectinload

    plans = list(session.scalars(select(CardPlan).options(selectinload(CardPlan.tiers))
                                 .order_by(CardPlan.id)))
    activities = list(session.scalars(
        select(Activity).where(Activity.status != ActivityStatus.ARCHIVED)
        .order_by(Activity.id.desc())))
    return plans, activities
