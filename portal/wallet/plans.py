"""Top-up plans (spec 2.3): the merchant's rules, what a top-up of a plan gives (`quote`),
which plans a member may use now (`available_plans`), and recharge codes.

Formulas (Decimal arithmetic, rounded once at the end, ROUND_DOWN for bonus and points):

- fixed: the plan's amount, bonus and points;
- range: bonus = amount × bonus_bp / 10000 (in minor units); points = amount in whole
  currency units × points_bp / 10000 (¥100.00 at 5% is 5 points);
- custom: bonus and points linear between their ends across the amount range
  (bonus_min at min, bonus_max at max);
- first top-up (fixed and range plans with the bonus on, when `first`): extra bonus =
  amount × first_bonus_bp / 10000 and extra points = units × first_points_bp / 10000,
  added before the one rounding, and the first-top-up gift after the plan's gift.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum

from flask_babel import gettext as _
from sqlalchemy import case, exists, func, insert, or_, select
from sqlalchemy.orm import Session, object_session

from portal import clock
from portal.coupons.models import CouponPackage, CouponTemplate
from portal.db import transaction
from portal.members.models import CardPlan, Member, MemberCard, Segment, Store, Tag, Tier
from portal.members.models import member_tags as member_tags_table
from portal.money import precision
from portal.staff.services import record
from portal.wallet import schedule as schedules
from portal.wallet.models import (
    PlanKind,
    PlanStatus,
    RechargeCode,
    RechargeCodeBatch,
    SmartTier,
    Topup,
    TopupPlan,
    TopupStatus,
)

CHANNELS = ("POS", "ONLINE")
STORE_MODES = ("all", "include", "exclude")
MAX_BP = 100_000                      # 1000 %
MAX_MINOR = 10**12                    # ten billion in a 2-decimal currency: a typing slip
MAX_POINTS = 2_000_000_000
MAX_TEXT = 5000
MAX_CODES = 10_000
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"   # no 0/O, 1/I/L
CODE_LENGTH = 16
PAGE_SIZE = 50


class PlanErrorCode(StrEnum):
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    ARCHIVED = "archived"
    NOT_NOW = "not_now"
    OUT_OF_RANGE = "out_of_range"
    CODE_USED = "code_used"
    CODE_EXPIRED = "code_expired"
    CODE_WRONG_STORE = "code_wrong_store"
    CODE_WRONG_CHANNEL = "code_wrong_channel"
    PLAN_INACTIVE = "plan_inactive"


class PlanError(Exception):
    """A top-up plan rule refused the request; `code` is stable, the message is for people,
    `details["errors"]` (when given) says what is wrong by field."""

    def __init__(self, code: PlanErrorCode | str, message: str, **details):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def _invalid(errors: dict[str, str]) -> PlanError:
    return PlanError(PlanErrorCode.INVALID, _("Please correct the marked fields."),
                     errors=errors)


# --- checking what the merchant typed ------------------------------------------------------

def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ids(value) -> list[int]:
    return sorted({int(v) for v in value or []})


def _existing(session: Session, column, ids: list[int]) -> set[int]:
    if not ids:
        return set()
    return set(session.scalars(select(column).where(column.in_(ids))))


def _check_gift(session: Session, template_id, package_id, name: str, errors: dict) -> None:
    if template_id and package_id:
        errors[name] = _("Choose a coupon or a package, not both.")
    elif template_id:
        status = session.scalar(select(CouponTemplate.status)
                                .where(CouponTemplate.id == template_id))
        if status != "active":
            errors[name] = _("This coupon is not active: activate it or choose another.")
    elif package_id:
        status = session.scalar(select(CouponPackage.status)
                                .where(CouponPackage.id == package_id))
        if status != "active":
            errors[name] = _("This package is not active.")


def _money(data: dict, name: str, errors: dict, *, required: bool, positive: bool,
           label_zero: str | None = None) -> int | None:
    value = data.get(name)
    if value is None:
        if required:
            errors.setdefault(name, _("Enter an amount."))
        return None
    if not _is_int(value) or value < 0 or value > MAX_MINOR:
        errors.setdefault(name, _("Enter an amount of 0 or more."))
        return None
    if positive and value == 0:
        errors.setdefault(name, label_zero or _("The amount must be more than 0."))
        return None
    return value


def _count(data: dict, name: str, errors: dict, *, low: int = 0, high: int = MAX_POINTS,
           message: str | None = None) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if not _is_int(value) or not low <= value <= high:
        errors.setdefault(name, message or _("Enter a whole number from %(low)d.", low=low))
        return None
    return value


def _bp(data: dict, name: str, errors: dict, high: int = MAX_BP) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if not _is_int(value) or not 0 <= value <= high:
        errors.setdefault(name, _("Enter a percentage from 0 to %(max)s%%.",
                                  max=high // 100))
        return None
    return value


def _check_scope(session: Session, scope: dict, errors: dict) -> dict:
    scope = scope or {}
    mode = scope.get("mode", "all")
    if mode not in STORE_MODES:
        errors["store_mode"] = _("Choose all stores, only some or all but some.")
        return {"mode": "all", "store_ids": [], "organisations": [], "groups": []}
    clean = {"mode": mode, "store_ids": _ids(scope.get("store_ids")),
             "organisations": sorted({str(v) for v in scope.get("organisations") or []}),
             "groups": sorted({str(v) for v in scope.get("groups") or []})}
    if mode == "all":
        return {"mode": "all", "store_ids": [], "organisations": [], "groups": []}
    if not (clean["store_ids"] or clean["organisations"] or clean["groups"]):
        errors["store_mode"] = _("Choose at least one store, organisation or store group.")
    if set(clean["store_ids"]) - _existing(session, Store.id, clean["store_ids"]):
        errors["store_ids"] = _("Choose from the list.")
    if clean["organisations"] or clean["groups"]:
        orgs, groups = set(), set()
        for org, group in session.execute(select(Store.organisation, Store.store_group)):
            orgs.add(org)
            groups.add(group)
        if set(clean["organisations"]) - orgs:
            errors["organisations"] = _("Choose from the list.")
        if set(clean["groups"]) - groups:
            errors["groups"] = _("Choose from the list.")
    return clean


def clean_basics(data: dict, plan, errors: dict) -> dict:
    """Name, currency (fixed once saved) and validity, as top-up and smart top-up plans
    both have them; problems go into `errors`."""
    v: dict = {}
    name = (data.get("name") or "").strip()
    if not name:
        errors.setdefault("name", _("Give the plan a name."))
    elif len(name) > 120:
        errors.setdefault("name", _("At most 120 characters."))
    v["name"] = name
    currency = (data.get("currency") or (plan.currency if plan else "")).upper()
    if plan is None and not (len(currency) == 3 and currency.isalpha()):
        errors.setdefault("currency", _("Choose a currency."))
    v["currency"] = plan.currency if plan else currency

    v["starts_at"], v["ends_at"] = data.get("starts_at"), data.get("ends_at")
    if v["starts_at"] and v["ends_at"] and v["ends_at"] <= v["starts_at"]:
        errors.setdefault("ends_at", _("The end must be after the start."))
    return v


def clean(session: Session, kind: str, data: dict, plan: TopupPlan | None = None) -> dict:
    """The values to store for a plan of `kind`, from parsed input (ints for money in minor
    units and basis points, aware datetimes, lists of ids). Raises PlanError with
    `errors={field: message}` for everything wrong at once; nothing is saved."""
    if kind not in set(PlanKind):
        raise PlanError(PlanErrorCode.NOT_FOUND, _("There is no such kind of top-up plan."))
    errors: dict[str, str] = dict(data.get("errors") or {})
    v: dict = {}
    v.update(clean_basics(data, plan, errors))
    sched = data.get("schedule") or {}
    for key, message in schedules.validate_schedule(sched).items():
        errors.setdefault(f"schedule_{key}", message)
    v["schedule"] = schedules.clean_schedule(sched) if not any(
        k.startswith("schedule_") for k in errors) else {}

    v["store_scope"] = _check_scope(session, data.get("store_scope") or {}, errors)
    for key, column in (("plan_ids", CardPlan.id), ("tier_ids", Tier.id),
                        ("segment_ids", Segment.id), ("tag_ids", Tag.id)):
        try:
            ids = _ids(data.get(key))
        except (TypeError, ValueError):
            errors.setdefault(key, _("Choose from the list."))
            ids = []
        if set(ids) - _existing(session, column, ids):
            errors.setdefault(key, _("Choose from the list."))
        v[key] = ids
    upgrade = data.get("upgrade_tier_id")
    if upgrade and not _existing(session, Tier.id, [upgrade]):
        errors.setdefault("upgrade_tier_id", _("Choose from the list."))
    v["upgrade_tier_id"] = upgrade or None

    # The rules of each kind; the other kinds' fields are cleared.
    for key in ("amount_minor", "bonus_minor", "bonus_points", "min_minor", "max_minor",
                "bonus_bp", "points_bp", "bonus_min_minor", "bonus_max_minor", "points_min",
                "points_max"):
        v[key] = None
    if kind == PlanKind.FIXED:
        v["amount_minor"] = _money(data, "amount_minor", errors, required=True,
                                   positive=True,
                                   label_zero=_("A fixed top-up must be more than 0."))
        v["bonus_minor"] = _money(data, "bonus_minor", errors, required=False,
                                  positive=False) or 0
        v["bonus_points"] = _count(data, "bonus_points", errors,
                                   message=_("Points are a whole number, 0 or more.")) or 0
    else:
        low = _money(data, "min_minor", errors, required=True, positive=True)
        high = _money(data, "max_minor", errors, required=True, positive=True)
        if low is not None and high is not None and high <= low:
            errors.setdefault("max_minor", _("The most must be more than the least."))
        v["min_minor"], v["max_minor"] = low, high
        if kind == PlanKind.RANGE:
            v["bonus_bp"] = _bp(data, "bonus_bp", errors) or 0
            v["points_bp"] = _bp(data, "points_bp", errors) or 0
        else:
            b_low = _money(data, "bonus_min_minor", errors, required=False,
                           positive=False) or 0
            b_high = _money(data, "bonus_max_minor", errors, required=False,
                            positive=False) or 0
            if b_high < b_low:
                errors.setdefault("bonus_max_minor",
                                  _("The bonus at the top cannot be below the bonus at the "
                                    "bottom."))
            p_low = _count(data, "points_min", errors,
                           message=_("Points are a whole number, 0 or more.")) or 0
            p_high = _count(data, "points_max", errors,
                            message=_("Points are a whole number, 0 or more.")) or 0
            if p_high < p_low:
                errors.setdefault("points_max",
                                  _("The points at the top cannot be below the points at "
                                    "the bottom."))
            v.update(bonus_min_minor=b_low, bonus_max_minor=b_high, points_min=p_low,
                     points_max=p_high)

    v["gift_template_id"] = data.get("gift_template_id") or None
    v["gift_package_id"] = data.get("gift_package_id") or None
    _check_gift(session, v["gift_template_id"], v["gift_package_id"], "gift", errors)

    first = bool(data.get("first_bonus")) and kind != PlanKind.CUSTOM
    v["first_bonus"] = first
    v["first_bonus_bp"] = (_bp(data, "first_bonus_bp", errors) or 0) if first else 0
    v["first_points_bp"] = (_bp(data, "first_points_bp", errors) or 0) if first else 0
    v["first_gift_template_id"] = (data.get("first_gift_template_id") or None) if first \
        else None
    v["first_gift_package_id"] = (data.get("first_gift_package_id") or None) if first \
        else None
    if first:
        _check_gift(session, v["first_gift_template_id"], v["first_gift_package_id"],
                    "first_gift", errors)
        if not (v["first_bonus_bp"] or v["first_points_bp"] or v["first_gift_template_id"]
                or v["first_gift_package_id"]):
            errors.setdefault("first_bonus", _("Give a first top-up bonus, points or gift, "
                                               "or switch it off."))
    try:
        v["benefit_ids"] = _ids(data.get("benefit_ids"))
    except (TypeError, ValueError):
        errors.setdefault("benefit_ids", _("Choose from the list."))
        v["benefit_ids"] = []

    v["first_topup_only"] = bool(data.get("first_topup_only"))
    v["stock_total"] = _count(data, "stock_total", errors, low=1, high=10**9,
                              message=_("Stock is a whole number from 1 (empty: unlimited)."))
    v["visible"] = bool(data.get("visible", True))
    channels = data.get("channels")
    if not channels or set(channels) - set(CHANNELS):
        errors.setdefault("channels", _("Choose at least one channel: POS or online."))
    v["channels"] = [c for c in CHANNELS if c in (channels or [])]
    products = data.get("spend_product_ids") or []
    if len(products) > 5000 or any(not isinstance(p, str) or len(p) > 64 for p in products):
        errors.setdefault("spend_product_ids", _("Product ids are up to 64 characters each."))
    v["spend_product_ids"] = list(dict.fromkeys(products))
    v["per_member_limit"] = _count(data, "per_member_limit", errors, low=1, high=10**6,
                                   message=_("At least 1 per member (empty: no limit)."))

    v["same_day_usable_bp"], v["bonus_locked_same_day"] = None, False
    if kind == PlanKind.CUSTOM:
        usable = _bp(data, "same_day_usable_bp", errors, high=10_000)
        locked = bool(data.get("bonus_locked_same_day"))
        if usable is not None and locked:
            errors.setdefault("same_day_usable_bp",
                              _("Choose one restriction: a usable share or the bonus "
                                "locked."))
        v["same_day_usable_bp"], v["bonus_locked_same_day"] = usable, locked
    for key in ("agreement", "description"):
        text = (data.get(key) or "").strip()
        if len(text) > MAX_TEXT:
            errors.setdefault(key, _("At most %(n)d characters.", n=MAX_TEXT))
        v[key] = text
    if "cover_image" in data:
        v["cover_image"] = data["cover_image"]
    if errors:
        raise _invalid(errors)
    return v


# --- saving ---------------------------------------------------------------------------------

SNAPSHOT_SKIP = {"created_at", "updated_at"}


def _snapshot(plan: TopupPlan) -> dict:
    return {c.key: getattr(plan, c.key) for c in TopupPlan.__mapper__.column_attrs
            if c.key not in SNAPSHOT_SKIP}


def get(session: Session, plan_id: int) -> TopupPlan | None:
    return session.get(TopupPlan, plan_id)


def create(session: Session, kind: str, data: dict, *, operator_id: int | None,
           activate: bool = False) -> TopupPlan:
    """A new plan, as a draft or active at once."""
    with transaction(session):
        values = clean(session, kind, data)
        plan = TopupPlan(kind=kind, **values, stock_left=values["stock_total"],
                         status=PlanStatus.ACTIVE if activate else PlanStatus.DRAFT)
        session.add(plan)
        session.flush()
        record(session, operator_id, "topup_plan.create", plan, after=_snapshot(plan))
        return plan


def units_sold(session: Session, plan) -> int:
    """The units of a limited plan (TopupPlan or SmartPlan) that top-ups hold. While the
    plan is unlimited nothing counts them down, so they are the top-ups that still hold
    one from when it was limited: a stock set again starts below them, as the nightly
    consistency check expects (portal.consistency.checks)."""
    if plan.stock_left is not None and plan.stock_total is not None:
        return plan.stock_total - plan.stock_left
    query = select(func.count(Topup.id)).where(Topup.holds_stock.is_(True))
    if isinstance(plan, TopupPlan):
        query = query.where(Topup.plan_id == plan.id)
    else:
        query = query.join(SmartTier, SmartTier.id == Topup.smart_tier_id).where(
            Topup.plan_id.is_(None), SmartTier.plan_id == plan.id)
    return session.scalar(query) or 0


def update(session: Session, plan_id: int, data: dict, *, operator_id: int | None
           ) -> TopupPlan:
    """Save the merchant's changes. Top-ups already made keep what they were given (each
    stores its own amount, bonus, points and gifts). Stock: what was sold stays sold, so
    the new total must cover it; an archived plan is read-only; the kind and currency do
    not change."""
    with transaction(session):
        plan = session.scalar(select(TopupPlan).where(TopupPlan.id == plan_id)
                              .with_for_update().execution_options(populate_existing=True))
        if plan is None:
            raise PlanError(PlanErrorCode.NOT_FOUND, _("There is no such top-up plan."))
        if plan.status == PlanStatus.ARCHIVED:
            raise PlanError(PlanErrorCode.ARCHIVED, _("An archived plan cannot be changed."))
        try:
            values = clean(session, plan.kind, data, plan)
            errors = {}
        except PlanError as e:
            values, errors = None, dict(e.details.get("errors", {}))
        sold = units_sold(session, plan)
        total = (values or {}).get("stock_total", data.get("stock_total"))
        if _is_int(total) and total < sold:
            errors.setdefault("stock_total", _("%(n)d are already taken: the stock cannot be "
                                               "below that.", n=sold))
        if errors:
            raise _invalid(errors)
        before = _snapshot(plan)
        for name, value in values.items():
            setattr(plan, name, value)
        plan.stock_left = None if total is None else total - sold
        plan.updated_at = clock.now()
        session.flush()
        record(session, operator_id, "topup_plan.update", plan, before=before,
               after=_snapshot(plan))
        return plan


# Which status each action moves from and to. Active plans are deactivated before they are
# archived, so a plan never disappears from members' screens and the list in one step.
ACTIONS = {
    "activate": ({PlanStatus.DRAFT, PlanStatus.INACTIVE}, PlanStatus.ACTIVE),
    "deactivate": ({PlanStatus.ACTIVE}, PlanStatus.INACTIVE),
    "archive": ({PlanStatus.DRAFT, PlanStatus.INACTIVE}, PlanStatus.ARCHIVED),
}


def move(session: Session, model, plan_id: int, action: str, *, operator_id: int | None,
         audit: str, missing: str):
    """Activate, deactivate or archive (for good: read-only, hidden from the list unless
    asked for) a top-up or smart top-up plan, audited as f"{audit}.{action}"."""
    with transaction(session):
        plan = session.scalar(select(model).where(model.id == plan_id)
                              .with_for_update().execution_options(populate_existing=True))
        if plan is None or action not in ACTIONS:
            raise PlanError(PlanErrorCode.NOT_FOUND, missing)
        allowed, to = ACTIONS[action]
        if plan.status not in allowed:
            raise PlanError(PlanErrorCode.NOT_NOW,
                            _("Deactivate the plan before archiving it.")
                            if action == "archive" and plan.status == PlanStatus.ACTIVE
                            else _("This plan cannot do that now."))
        before = plan.status
        plan.status = to
        plan.updated_at = clock.now()
        record(session, operator_id, f"{audit}.{action}", plan,
               before={"status": before}, after={"status": to})
        return plan


def set_status(session: Session, plan_id: int, action: str, *, operator_id: int | None
               ) -> TopupPlan:
    return move(session, TopupPlan, plan_id, action, operator_id=operator_id,
                audit="topup_plan", missing=_("There is no such top-up plan."))


@dataclass
class Row:
    plan: TopupPlan
    topups: int             # credited
    amount_minor: int       # credited, less nothing: the principal topped up


def plan_list(session: Session, kind: str | None = None, status: str | None = None
              ) -> list[Row]:
    """Plans newest first with their credited top-ups, in one query. Archived plans only
    when `status` asks for them."""
    credited = (select(Topup.plan_id, func.count(Topup.id).label("n"),
                       func.coalesce(func.sum(Topup.amount_minor), 0).label("amount"))
                .where(Topup.status == TopupStatus.CREDITED)
                .group_by(Topup.plan_id).subquery())
    query = (select(TopupPlan, func.coalesce(credited.c.n, 0),
                    func.coalesce(credited.c.amount, 0))
             .outerjoin(credited, credited.c.plan_id == TopupPlan.id)
             .order_by(TopupPlan.id.desc()))
    if kind:
        query = query.where(TopupPlan.kind == kind)
    if status:
        query = query.where(TopupPlan.status == status)
    else:
        query = query.where(TopupPlan.status != PlanStatus.ARCHIVED)
    return [Row(p, int(n), int(a)) for p, n, a in session.execute(query).all()]


def has_topups(session: Session, plan_id: int) -> bool:
    return bool(session.scalar(select(exists().where(
        Topup.plan_id == plan_id, Topup.status.in_((TopupStatus.CREDITED,
                                                    TopupStatus.REFUNDED))))))


# --- what a top-up gives ------------------------------------------------------------------

@dataclass(frozen=True)
class Quote:
    """What a top-up of `amount_minor` gives: bonus (minor units), points, and the
    coupons as Topup.gifts stores them."""

    amount_minor: int
    bonus_minor: int
    points: int
    gifts: list[dict] = field(default_factory=list)

    @property
    def amount(self) -> int:
        return self.amount_minor

    @property
    def bonus(self) -> int:
        return self.bonus_minor


def _gift(template_id, package_id) -> list[dict]:
    if template_id:
        return [{"template_id": template_id, "quantity": 1}]
    if package_id:
        return [{"package_id": package_id, "quantity": 1}]
    return []


def _bp_of(value: Decimal, bp: int | None) -> Decimal:
    return value * Decimal(bp or 0) / Decimal(10_000)


def amount_range(plan: TopupPlan) -> tuple[int, int]:
    if plan.kind == PlanKind.FIXED:
        return plan.amount_minor, plan.amount_minor
    return plan.min_minor, plan.max_minor


def quote(plan: TopupPlan, amount_minor: int | None = None, *, first: bool = False) -> Quote:
    """The bonus, points and gifts of topping up `amount_minor` with `plan` (a fixed plan's
    own amount when None). `first`: the card's first top-up, which adds the plan's
    first-top-up bonus if it has one. Raises PlanError (OUT_OF_RANGE) outside the plan's
    amounts."""
    low, high = amount_range(plan)
    amount = low if amount_minor is None and plan.kind == PlanKind.FIXED else amount_minor
    if not _is_int(amount) or not low <= amount <= high:
        raise PlanError(PlanErrorCode.OUT_OF_RANGE,
                        _("Choose an amount within the plan's range."),
                        low=low, high=high)
    money = Decimal(amount)
    units = Decimal(amount).scaleb(-precision(plan.currency))
    if plan.kind == PlanKind.FIXED:
        bonus, points = Decimal(plan.bonus_minor or 0), Decimal(plan.bonus_points or 0)
    elif plan.kind == PlanKind.RANGE:
        bonus, points = _bp_of(money, plan.bonus_bp), _bp_of(units, plan.points_bp)
    else:
        share = Decimal(amount - low) / Decimal(high - low) if high > low else Decimal(0)
        b_low, b_high = plan.bonus_min_minor or 0, plan.bonus_max_minor or 0
        p_low, p_high = plan.points_min or 0, plan.points_max or 0
        bonus = Decimal(b_low) + Decimal(b_high - b_low) * share
        points = Decimal(p_low) + Decimal(p_high - p_low) * share
    gifts = _gift(plan.gift_template_id, plan.gift_package_id)
    if first and plan.first_bonus:
        bonus += _bp_of(money, plan.first_bonus_bp)
        points += _bp_of(units, plan.first_points_bp)
        gifts += _gift(plan.first_gift_template_id, plan.first_gift_package_id)
    return Quote(amount, int(bonus.quantize(Decimal(1), ROUND_DOWN)),
                 int(points.quantize(Decimal(1), ROUND_DOWN)), gifts)


# --- which plans a member may use -----------------------------------------------------------

def _in_store_scope(scope: dict, store: Store | None) -> bool:
    mode = (scope or {}).get("mode", "all")
    if mode == "all" or store is None:
        return True
    hit = (store.id in (scope.get("store_ids") or [])
           or (store.organisation and store.organisation in (scope.get("organisations") or []))
           or (store.store_group and store.store_group in (scope.get("groups") or [])))
    return bool(hit) if mode == "include" else not hit


def available_plans(session: Session, member: Member, card: MemberCard, *, channel: str,
                    store_id: int | None = None, at: datetime | None = None
                    ) -> list[TopupPlan]:
    """The plans `member` may top up `card` with now, on `channel` at `store_id`: active,
    visible, in the card's currency, in their period and schedule, in store scope (no
    store: online, store scope does not apply), for the member's audience (plans, tiers,
    segments, tags: each filled dimension narrows), with stock left, first-top-up-only
    plans only before the card's first credited top-up, and under the per-member limit
    (credited or pending top-ups of the plan).

    A fixed number of queries whatever the number of plans: the candidates; then, only
    if some candidate needs them, the member's tags, every segment's rules and one SELECT
    answering "is the member in segment N" for all of them, the store, whether the card
    was ever topped up, and the member's top-ups per plan."""
    at = at or clock.now()
    currency = session.scalar(select(CardPlan.currency).where(CardPlan.id == card.plan_id))
    candidates = [
        p for p in session.scalars(
            select(TopupPlan).where(
                TopupPlan.status == PlanStatus.ACTIVE, TopupPlan.visible.is_(True),
                TopupPlan.currency == currency,
                or_(TopupPlan.stock_left.is_(None), TopupPlan.stock_left > 0),
                or_(TopupPlan.starts_at.is_(None), TopupPlan.starts_at <= at),
                or_(TopupPlan.ends_at.is_(None), TopupPlan.ends_at > at))
            .order_by(TopupPlan.id))
        if channel in (p.channels or []) and schedules.is_scheduled(p.schedule, at)
        and (not p.plan_ids or card.plan_id in p.plan_ids)
        and (not p.tier_ids or card.tier_id in p.tier_ids)]
    if not candidates:
        return []
    if any(p.tag_ids for p in candidates):
        tags = set(session.scalars(select(member_tags_table.c.tag_id)
                                   .where(member_tags_table.c.member_id == member.id)))
        candidates = [p for p in candidates if not p.tag_ids or tags & set(p.tag_ids)]
    segment_ids = sorted({s for p in candidates for s in p.segment_ids or []})
    if segment_ids:
        from portal.members import segments

        rules = session.execute(select(Segment.id, Segment.match, Segment.rules)
                                .where(Segment.id.in_(segment_ids))).all()
        inside: set[int] = set()
        if rules:
            row = session.execute(select(*(
                exists().where(Member.id == member.id, segments.condition(m, r))
                .label(f"s{i}") for i, m, r in rules))).one()
            inside = {i for (i, _m, _r), yes in zip(rules, row, strict=True) if yes}
        candidates = [p for p in candidates
                      if not p.segment_ids or inside & set(p.segment_ids)]
    if store_id is not None and any((p.store_scope or {}).get("mode", "all") != "all"
                                    for p in candidates):
        store = session.get(Store, store_id)
        candidates = [p for p in candidates if _in_store_scope(p.store_scope, store)]
    if any(p.first_topup_only for p in candidates) and has_credited_topup(session, card.id):
        candidates = [p for p in candidates if not p.first_topup_only]
    limited = [p.id for p in candidates if p.per_member_limit]
    if limited:
        used = dict(session.execute(
            select(Topup.plan_id, func.count(Topup.id))
            .where(Topup.member_id == member.id, Topup.plan_id.in_(limited),
                   Topup.status.in_((TopupStatus.CREDITED, TopupStatus.PENDING)))
            .group_by(Topup.plan_id)).all())
        candidates = [p for p in candidates
                      if not p.per_member_limit or used.get(p.id, 0) < p.per_member_limit]
    return candidates


def has_credited_topup(session: Session, card_id: int) -> bool:
    """Whether the card was ever topped up (a refunded top-up was credited too)."""
    return bool(session.scalar(select(exists().where(
        Topup.card_id == card_id,
        Topup.status.in_((TopupStatus.CREDITED, TopupStatus.REFUNDED))))))


# --- recharge codes --------------------------------------------------------------------------

def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(text: str) -> str:
    """What a member types, as stored: no spaces or dashes, capitals."""
    return "".join(c for c in (text or "").upper() if c.isalnum())


def generate_codes(session: Session, plan_id: int, *, count: int | None,
                   amount_minor: int | None = None, scenario: str = "",
                   store_ids: list[int] | None = None, channels: list[str] | None = None,
                   valid_until: datetime | None = None, operator_id: int | None = None,
                   errors: dict[str, str] | None = None) -> RechargeCodeBatch:
    """N single-use codes, each a free top-up of `amount_minor` with the plan (a fixed
    plan's own amount, whatever is given). Codes are 16 characters from `secrets` over an
    alphabet without look-alikes (32^16 = 2^80 codes: a clash with an existing code is not
    worth a retry loop; the unique index would refuse it). All rows in one INSERT."""
    errors = dict(errors or {})
    with transaction(session):
        plan = session.get(TopupPlan, plan_id)
        if plan is None:
            raise PlanError(PlanErrorCode.NOT_FOUND, _("There is no such top-up plan."))
        if plan.status == PlanStatus.ARCHIVED:
            raise PlanError(PlanErrorCode.ARCHIVED, _("An archived plan cannot be changed."))
        if not _is_int(count) or not 1 <= count <= MAX_CODES:
            errors.setdefault("count", _("Generate 1 to %(n)s codes at a time.",
                                         n=f"{MAX_CODES:,}"))
        if plan.kind == PlanKind.FIXED:
            amount_minor = plan.amount_minor
        elif "amount_minor" not in errors and (
                not _is_int(amount_minor) or not plan.min_minor <= amount_minor
                <= plan.max_minor):
            errors["amount_minor"] = _("Choose an amount within the plan's range.")
        scenario = (scenario or "").strip()
        if not scenario:
            errors.setdefault("scenario", _("Say what the codes are for."))
        elif len(scenario) > 120:
            errors.setdefault("scenario", _("At most 120 characters."))
        stores = _ids(store_ids)
        if set(stores) - _existing(session, Store.id, stores):
            errors.setdefault("store_ids", _("Choose from the list."))
        if not channels or set(channels) - set(CHANNELS):
            errors.setdefault("channels", _("Choose at least one channel: POS or online."))
        if valid_until is not None and valid_until <= clock.now():
            errors.setdefault("valid_until", _("Choose a moment in the future."))
        if errors:
            raise _invalid(errors)
        batch = RechargeCodeBatch(plan_id=plan.id, amount_minor=amount_minor,
                                  scenario=scenario, store_ids=stores,
                                  channels=[c for c in CHANNELS if c in channels],
                                  count=count, valid_until=valid_until,
                                  operator_id=operator_id)
        session.add(batch)
        session.flush()
        codes: set[str] = set()
        while len(codes) < count:
            codes.add(new_code())
        session.execute(insert(RechargeCode).values(
            [{"batch_id": batch.id, "code": c} for c in sorted(codes)]))
        record(session, operator_id, "topup_plan.codes", plan,
               after={"batch_id": batch.id, "count": count, "amount_minor": amount_minor,
                      "scenario": scenario, "store_ids": stores, "channels": batch.channels,
                      "valid_until": valid_until})
        return batch


@dataclass
class BatchRow:
    batch: RechargeCodeBatch
    redeemed: int


def code_batches(session: Session, plan_id: int) -> list[BatchRow]:
    """A plan's batches, newest first, with how many codes were redeemed (one query)."""
    rows = session.execute(
        select(RechargeCodeBatch, func.count(RechargeCode.redeemed_at))
        .outerjoin(RechargeCode, RechargeCode.batch_id == RechargeCodeBatch.id)
        .where(RechargeCodeBatch.plan_id == plan_id)
        .group_by(RechargeCodeBatch.id).order_by(RechargeCodeBatch.id.desc())).all()
    return [BatchRow(b, int(n)) for b, n in rows]


def batch_codes(session: Session, batch_id: int, *, operator_id: int | None = None
                ) -> tuple[RechargeCodeBatch, list[RechargeCode]] | None:
    """A batch and its codes, for staff to download; the download is audited (the codes
    are money)."""
    with transaction(session):
        batch = session.get(RechargeCodeBatch, batch_id)
        if batch is None:
            return None
        codes = list(session.scalars(select(RechargeCode).where(
            RechargeCode.batch_id == batch_id).order_by(RechargeCode.id)))
        record(session, operator_id, "topup_plan.codes_download", batch,
               after={"plan_id": batch.plan_id, "count": len(codes)})
        return batch, codes


def find_code(session: Session, code: str) -> RechargeCode | None:
    """The code as typed (spaces, dashes and case do not matter), with its batch."""
    from sqlalchemy.orm import joinedload

    text = normalise_code(code)
    if not text or len(text) > 24:
        return None
    return session.scalar(select(RechargeCode).options(joinedload(RechargeCode.batch))
                          .where(RechargeCode.code == text))


def check_code(code_row: RechargeCode, *, channel: str, store_id: int | None = None,
               at: datetime | None = None) -> None:
    """Whether the code may be redeemed now, here; raises PlanError saying why not."""
    at = at or clock.now()
    batch = code_row.batch
    if code_row.redeemed_at is not None:
        raise PlanError(PlanErrorCode.CODE_USED, _("This code has already been used."))
    if batch.valid_until is not None and batch.valid_until <= at:
        raise PlanError(PlanErrorCode.CODE_EXPIRED, _("This code has expired."))
    if channel not in (batch.channels or []):
        raise PlanError(PlanErrorCode.CODE_WRONG_CHANNEL,
                        _("This code cannot be used here (%(channel)s).",
                          channel=_("online") if channel == "ONLINE" else _("at the till")))
    if batch.store_ids and store_id not in batch.store_ids:
        raise PlanError(PlanErrorCode.CODE_WRONG_STORE,
                        _("This code cannot be used at this store."))
    plan = object_session(code_row).get(TopupPlan, batch.plan_id)
    if plan is None or plan.status != PlanStatus.ACTIVE:
        raise PlanError(PlanErrorCode.PLAN_INACTIVE,
                        _("The top-up plan of this code is not available now."))


# --- member top-up details --------------------------------------------------------------------

@dataclass
class DetailRow:
    topup: Topup
    member_id: int
    member_name: str
    card_number: str


@dataclass
class Details:
    rows: list[DetailRow]
    page: int
    pages: int
    total: int
    credited_minor: int
    bonus_minor: int
    points: int


def topup_details(session: Session, plan_id: int, page: int = 1) -> Details:
    """The plan's top-ups, newest first, PAGE_SIZE a page, with the member and card in the
    same query; plus the totals of credited ones (one more query)."""
    page = max(1, page)
    total, amount, bonus, points = session.execute(
        select(func.count(Topup.id),
               func.coalesce(func.sum(case((Topup.status == TopupStatus.CREDITED,
                                            Topup.amount_minor), else_=0)), 0),
               func.coalesce(func.sum(case((Topup.status == TopupStatus.CREDITED,
                                            Topup.bonus_minor), else_=0)), 0),
               func.coalesce(func.sum(case((Topup.status == TopupStatus.CREDITED,
                                            Topup.points), else_=0)), 0))
        .where(Topup.plan_id == plan_id)).one()
    name = func.coalesce(func.nullif(Member.full_name, ""), Member.mobile, "")
    rows = session.execute(
        select(Topup, Member.id, name, MemberCard.number)
        .join(Member, Member.id == Topup.member_id)
        .join(MemberCard, MemberCard.id == Topup.card_id)
        .where(Topup.plan_id == plan_id)
        .order_by(Topup.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
    pages = max(1, -(-int(total) // PAGE_SIZE))
    return Details([DetailRow(t, mid, n or f"#{mid}", num) for t, mid, n, num in rows],
                   page, pages, int(total), int(amount), int(bonus), int(points))


def offers(session: Session) -> tuple[list[CouponTemplate], list[CouponPackage]]:
    """Active coupons and packages a gift may be, for the form."""
    from portal.campaigns.manage import offers as campaign_offers

    return campaign_offers(session)


def store_choices(session: Session) -> tuple[list[Store], list[str], list[str]]:
    stores = list(session.scalars(select(Store).order_by(Store.name)))
    orgs = sorted({s.organisation for s in stores if s.organisation})
    groups = sorted({s.store_group for s in stores if s.store_group})
    return stores, orgs, groups

