"""Smart top-up plans (spec 2.4) as the merchant sets them up: what may be saved (`clean`),
create, update, activate / deactivate / archive, and the list. What a tier offers for a bill
is `portal.wallet.smart.tier_offer`; this module only keeps the rules it reads sound.

Units as stored: money in minor units, percentages and multipliers in basis points
(1% = 100, 1.2× = 12000). Limits: 1 to 9 tiers; a multiplier above 0 and at most 10×
(100000 bp), every percentage from 0 to 1000% (100000 bp); the rounding precision one of
0.1 / 1 / 10 / 100 currency units (10 / 100 / 1000 / 10000 minor units).

Each kind keeps only its own fields (the others are cleared):
- discount: multiplier and bonus %;
- gift: multiplier, bonus %, points % and a coupon (points or a coupon, or both);
- fixed: amount (> 0), bonus amount, points and an optional coupon.
First top-up extras (only with the plan's first top-up bonus on): a coupon on any tier, and
extra bonus % and points % of the top-up on gift tiers.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from portal import clock
from portal.coupons.models import CouponTemplate
from portal.db import transaction
from portal.members.models import CardPlan, Tier
from portal.staff.services import record
from portal.wallet import plans
from portal.wallet.models import PlanStatus, SmartPlan, SmartTier, Topup, TopupStatus
from portal.wallet.plans import (
    CHANNELS,
    MAX_BP,
    MAX_TEXT,
    PlanError,
    PlanErrorCode,
    _bp,
    _check_scope,
    _count,
    _existing,
    _ids,
    _invalid,
    _is_int,
    _money,
)

MAX_TIERS = 9
KINDS = ("discount", "gift", "fixed")
ROUNDINGS = (10, 100, 1000, 10_000)       # minor units: 0.1 / 1 / 10 / 100 currency units
MAX_MULTIPLIER_BP = MAX_BP                 # 10×
TIER_FIELDS = ("multiplier_bp", "bonus_bp", "points_bp", "amount_minor", "bonus_minor",
               "bonus_points", "gift_template_id", "first_gift_template_id",
               "first_bonus_bp", "first_points_bp")


# --- checking what the merchant typed ------------------------------------------------------

def _coupon_statuses(session: Session, tiers: list[dict]) -> dict[int, str]:
    """The status of every coupon the tiers name, in one query."""
    ids = set()
    for t in tiers:
        for key in ("gift_template_id", "first_gift_template_id"):
            if _is_int(t.get(key)):
                ids.add(t[key])
    if not ids:
        return {}
    return dict(session.execute(select(CouponTemplate.id, CouponTemplate.status)
                                .where(CouponTemplate.id.in_(ids))).all())


def _coupon(tier: dict, key: str, statuses: dict, errors: dict, name: str) -> int | None:
    value = tier.get(key) or None
    if value is None:
        return None
    if not _is_int(value) or statuses.get(value) != "active":
        errors.setdefault(name, _("This coupon is not active: activate it or choose another."))
    return value


def _clean_tier(tier: dict, n: int, first: bool, statuses: dict, errors: dict) -> dict:
    """One tier's stored values; errors keyed `tier-<n>-<field>`."""
    p = f"tier-{n}-"
    found: dict[str, str] = {}
    kind = tier.get("kind")
    v = dict.fromkeys(TIER_FIELDS)
    v.update(kind=kind, first_bonus_bp=0, first_points_bp=0)
    if kind not in KINDS:
        errors[p + "kind"] = _("Choose top-up discount, top-up gift or fixed amount.")
        return v
    if kind in ("discount", "gift"):
        multiplier = tier.get("multiplier_bp")
        if multiplier is None:
            found["multiplier_bp"] = _("Enter how many times the bill to top up, such as 1.2.")
        elif not _is_int(multiplier) or not 0 < multiplier <= MAX_MULTIPLIER_BP:
            found["multiplier_bp"] = _("Enter a multiple above 0 and up to 10, such as 1.2.")
        else:
            v["multiplier_bp"] = multiplier
        v["bonus_bp"] = _bp(tier, "bonus_bp", found) or 0
        if kind == "gift":
            v["points_bp"] = _bp(tier, "points_bp", found) or 0
            v["gift_template_id"] = _coupon(tier, "gift_template_id", statuses, found,
                                            "gift_template_id")
            if not v["points_bp"] and not v["gift_template_id"] and "points_bp" not in found:
                found["points_bp"] = _("A top-up gift gives points or a coupon (or both).")
    else:
        v["amount_minor"] = _money(tier, "amount_minor", found, required=True, positive=True,
                                   label_zero=_("A fixed top-up must be more than 0."))
        v["bonus_minor"] = _money(tier, "bonus_minor", found, required=False,
                                  positive=False) or 0
        v["bonus_points"] = _count(tier, "bonus_points", found,
                                   message=_("Points are a whole number, 0 or more.")) or 0
        v["gift_template_id"] = _coupon(tier, "gift_template_id", statuses, found,
                                        "gift_template_id")
    if first:
        v["first_gift_template_id"] = _coupon(tier, "first_gift_template_id", statuses,
                                              found, "first_gift_template_id")
        if kind == "gift":
            v["first_bonus_bp"] = _bp(tier, "first_bonus_bp", found) or 0
            v["first_points_bp"] = _bp(tier, "first_points_bp", found) or 0
    for key, message in found.items():
        errors.setdefault(p + key, message)
    return v


def _has_first_extra(tier: dict) -> bool:
    return bool(tier.get("first_gift_template_id") or tier.get("first_bonus_bp")
                or tier.get("first_points_bp"))


def clean(session: Session, data: dict, plan: SmartPlan | None = None) -> dict:
    """The values to store for a smart plan, from parsed input (ints for money in minor
    units and basis points, aware datetimes, lists of ids, `tiers` a list of dicts). Raises
    PlanError with `errors={field: message}` for everything wrong at once (a tier's fields
    as `tier-<n>-<field>`, n counting from 0 in the given list); nothing is saved."""
    errors: dict[str, str] = dict(data.get("errors") or {})
    v: dict = {}
    v.update(plans.clean_basics(data, plan, errors))
    v["store_scope"] = _check_scope(session, data.get("store_scope") or {}, errors)
    for key, column in (("plan_ids", CardPlan.id), ("tier_ids", Tier.id)):
        try:
            ids = _ids(data.get(key))
        except (TypeError, ValueError):
            errors.setdefault(key, _("Choose from the list."))
            ids = []
        if set(ids) - _existing(session, column, ids):
            errors.setdefault(key, _("Choose from the list."))
        v[key] = ids

    v["min_topup_minor"] = _money(data, "min_topup_minor", errors, required=False,
                                  positive=False) or 0
    rounding = data.get("rounding_minor", 100)
    if rounding not in ROUNDINGS or not _is_int(rounding):
        errors.setdefault("rounding_minor", _("Choose 0.1, 1, 10 or 100."))
    v["rounding_minor"] = rounding
    v["first_bonus"] = bool(data.get("first_bonus"))
    v["first_topup_only"] = bool(data.get("first_topup_only"))
    v["stock_total"] = _count(data, "stock_total", errors, low=1, high=10**9,
                              message=_("Stock is a whole number from 1 (empty: unlimited)."))
    channels = data.get("channels")
    if not channels or set(channels) - set(CHANNELS):
        errors.setdefault("channels", _("Choose at least one channel: POS or online."))
    v["channels"] = [c for c in CHANNELS if c in (channels or [])]
    for key in ("agreement", "description"):
        text = (data.get(key) or "").strip()
        if len(text) > MAX_TEXT:
            errors.setdefault(key, _("At most %(n)d characters.", n=MAX_TEXT))
        v[key] = text
    if "cover_image" in data:
        v["cover_image"] = data["cover_image"]

    tiers = list(data.get("tiers") or [])
    if not tiers:
        errors.setdefault("tiers", _("Add at least one tier."))
    elif len(tiers) > MAX_TIERS:
        errors.setdefault("tiers", _("A plan has at most %(n)d tiers (%(count)d were given).",
                                     n=MAX_TIERS, count=len(tiers)))
    statuses = _coupon_statuses(session, tiers[:MAX_TIERS])
    v["tiers"] = [_clean_tier(t, n, v["first_bonus"], statuses, errors)
                  for n, t in enumerate(tiers[:MAX_TIERS])]
    if v["first_bonus"] and v["tiers"] and not any(_has_first_extra(t) for t in v["tiers"]) \
            and not any(k.startswith("tier-") for k in errors):
        errors.setdefault("first_bonus", _("Give a first top-up extra in at least one tier, "
                                           "or switch it off."))
    if errors:
        raise _invalid(errors)
    return v


# --- saving ---------------------------------------------------------------------------------

SNAPSHOT_SKIP = {"created_at", "updated_at"}


def _snapshot(plan: SmartPlan) -> dict:
    out = {c.key: getattr(plan, c.key) for c in SmartPlan.__mapper__.column_attrs
           if c.key not in SNAPSHOT_SKIP}
    out["tiers"] = [{"kind": t.kind, **{k: getattr(t, k) for k in TIER_FIELDS}}
                    for t in plan.tiers]
    return out


def get(session: Session, plan_id: int) -> SmartPlan | None:
    """The plan with its tiers."""
    return session.get(SmartPlan, plan_id, options=[selectinload(SmartPlan.tiers)])


def _set_tiers(session: Session, plan: SmartPlan, tiers: list[dict]) -> None:
    """Tiers by position: the tier at each position is changed in place (its id stays, so
    top-ups made with it still point at it); tiers beyond the new count are removed."""
    existing = {t.position: t for t in plan.tiers}
    for position, values in enumerate(tiers, start=1):
        tier = existing.pop(position, None)
        if tier is None:
            tier = SmartTier(position=position)
            plan.tiers.append(tier)
        tier.kind = values["kind"]
        for key in TIER_FIELDS:
            setattr(tier, key, values[key])
    for tier in existing.values():
        plan.tiers.remove(tier)


def create(session: Session, data: dict, *, operator_id: int | None,
           activate: bool = False) -> SmartPlan:
    """A new smart plan with its tiers, as a draft or active at once."""
    with transaction(session):
        values = clean(session, data)
        tiers = values.pop("tiers")
        plan = SmartPlan(**values, stock_left=values["stock_total"],
                         status=PlanStatus.ACTIVE if activate else PlanStatus.DRAFT)
        session.add(plan)
        _set_tiers(session, plan, tiers)
        session.flush()
        record(session, operator_id, "smart_plan.create", plan, after=_snapshot(plan))
        return plan


def update(session: Session, plan_id: int, data: dict, *, operator_id: int | None
           ) -> SmartPlan:
    """Save the merchant's changes. Top-ups already made keep what they were given (each
    stores its own amounts). Stock: what was sold stays sold, so the new total must cover
    it; a tier that members have topped up with cannot be removed (it can be changed);
    an archived plan is read-only; the currency does not change."""
    with transaction(session):
        plan = session.scalar(select(SmartPlan).where(SmartPlan.id == plan_id)
                              .with_for_update().execution_options(populate_existing=True))
        if plan is None:
            raise PlanError(PlanErrorCode.NOT_FOUND, _("There is no such smart top-up plan."))
        if plan.status == PlanStatus.ARCHIVED:
            raise PlanError(PlanErrorCode.ARCHIVED, _("An archived plan cannot be changed."))
        try:
            values = clean(session, data, plan)
            errors = {}
        except PlanError as e:
            values, errors = None, dict(e.details.get("errors", {}))
        sold = plans.units_sold(session, plan)
        total = (values or {}).get("stock_total", data.get("stock_total"))
        if _is_int(total) and total < sold:
            errors.setdefault("stock_total", _("%(n)d are already taken: the stock cannot be "
                                               "below that.", n=sold))
        count = len((values or {}).get("tiers") or data.get("tiers") or [])
        dropped = [t.id for t in plan.tiers if t.position > count]
        if dropped and count and session.scalar(select(func.count(Topup.id))
                                                .where(Topup.smart_tier_id.in_(dropped))):
            errors.setdefault("tiers", _("Members have topped up with the last tiers: keep "
                                         "%(n)d tiers or more (change them instead).",
                                         n=max(t.position for t in plan.tiers)))
        if errors:
            raise _invalid(errors)
        before = _snapshot(plan)
        tiers = values.pop("tiers")
        for name, value in values.items():
            setattr(plan, name, value)
        _set_tiers(session, plan, tiers)
        plan.stock_left = None if total is None else total - sold
        plan.updated_at = clock.now()
        session.flush()
        record(session, operator_id, "smart_plan.update", plan, before=before,
               after=_snapshot(plan))
        return plan


def set_status(session: Session, plan_id: int, action: str, *, operator_id: int | None
               ) -> SmartPlan:
    """The same moves as top-up plans."""
    return plans.move(session, SmartPlan, plan_id, action, operator_id=operator_id,
                      audit="smart_plan", missing=_("There is no such smart top-up plan."))


@dataclass
class Row:
    plan: SmartPlan
    tiers: int
    topups: int             # credited
    amount_minor: int       # credited principal


def plan_list(session: Session, status: str | None = None) -> list[Row]:
    """Plans newest first with their number of tiers and credited top-ups, in one query.
    Archived plans only when `status` asks for them."""
    tiers = (select(SmartTier.plan_id, func.count(SmartTier.id).label("n"))
             .group_by(SmartTier.plan_id).subquery())
    credited = (select(SmartTier.plan_id, func.count(Topup.id).label("n"),
                       func.coalesce(func.sum(Topup.amount_minor), 0).label("amount"))
                .join(Topup, Topup.smart_tier_id == SmartTier.id)
                .where(Topup.status == TopupStatus.CREDITED)
                .group_by(SmartTier.plan_id).subquery())
    query = (select(SmartPlan, func.coalesce(tiers.c.n, 0), func.coalesce(credited.c.n, 0),
                    func.coalesce(credited.c.amount, 0))
             .outerjoin(tiers, tiers.c.plan_id == SmartPlan.id)
             .outerjoin(credited, credited.c.plan_id == SmartPlan.id)
             .order_by(SmartPlan.id.desc()))
    if status:
        query = query.where(SmartPlan.status == status)
    else:
        query = query.where(SmartPlan.status != PlanStatus.ARCHIVED)
    return [Row(p, int(t), int(n), int(a)) for p, t, n, a in session.execute(query).all()]


def has_topups(session: Session, plan_id: int) -> bool:
    return bool(session.scalar(
        select(func.count(Topup.id)).join(SmartTier, SmartTier.id == Topup.smart_tier_id)
        .where(SmartTier.plan_id == plan_id,
               Topup.status.in_((TopupStatus.CREDITED, TopupStatus.REFUNDED)))))
