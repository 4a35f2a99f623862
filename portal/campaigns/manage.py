"""The merchant's side of activities: create and edit them (with the edit policy for
running ones), pause / resume / archive, the filtered list and the performance page."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import and_, case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from portal import clock
from portal.campaigns.errors import CampaignError, CampaignErrorCode
from portal.campaigns.models import (
    Activity,
    ActivityGift,
    ActivityKind,
    ActivityStatus,
    Grant,
    Participation,
)
from portal.coupons.models import Coupon, CouponPackage, CouponStatus, CouponTemplate, IssueBatch
from portal.db import transaction
from portal.staff.services import record

# The fields a profile completion gift may ask for (the doc's list).
PROFILE_FIELDS = ("full_name", "born_on", "gender", "address", "id_number", "email", "mobile")
STATES = ("draft", "scheduled", "active", "paused", "ended", "archived")
DELAYS = ("instant", "hours", "days")
VALIDITIES = ("template", "relative", "fixed")
CODE = re.compile(r"^[A-Za-z0-9_-]{2,40}$")
MAX_GIFTS = 5
MAX_DELAY = {"hours": 24 * 90, "days": 365}

# Once an activity has started, members have taken part under its rules: only these may
# change (the end only to a moment not yet past). Everything else is refused, field by
# field.
EDITABLE_WHEN_STARTED = frozenset({"name", "description", "ends_at", "notify"})


@dataclass
class ActivityInput:
    """What the merchant's form gives, already parsed into Python values (the view turns
    text into ints and datetimes, and puts what it could not parse into `errors`)."""

    name: str = ""
    code: str = ""
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    description: str = ""
    required_fields: list[str] = field(default_factory=list)
    plan_ids: list[int] = field(default_factory=list)
    tier_ids: list[int] = field(default_factory=list)
    segment_ids: list[int] = field(default_factory=list)
    tag_ids: list[int] = field(default_factory=list)
    points: int = 0
    lapse_days: int | None = None
    notify: bool = True
    gifts: list[dict] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def _invalid(errors: dict[str, str]) -> CampaignError:
    return CampaignError(CampaignErrorCode.INVALID, _("Please correct the marked fields."),
                         errors=errors)


def offer_problem(session: Session, template_id: int | None,
                  package_id: int | None) -> str | None:
    """Why this coupon or package cannot be given now (inactive, ended, a package with
    such a coupon inside), or None. The coupon service's own check decides."""
    from portal.coupons.errors import CouponError
    from portal.coupons.services import _check_active

    if template_id:
        template = session.get(CouponTemplate, template_id)
        if template is None:
            return _("Choose a coupon or a package.")
        templates = [template]
    elif package_id:
        package = session.get(CouponPackage, package_id)
        if package is None or package.status != "active":
            return _("This package is not active.")
        templates = [item.template for item in package.items]
    else:
        return _("Choose a coupon or a package.")
    for template in templates:
        try:
            _check_active(template)
        except CouponError as e:
            return _("%(why)s Activate it or choose another.", why=str(e))
    return None


def _check_gift(session: Session, i: int, gift: dict, errors: dict) -> None:
    prefix = f"gift-{i}-"
    problem = offer_problem(session, gift.get("template_id"), gift.get("package_id"))
    if problem:
        errors[prefix + "offer"] = problem
    quantity = gift.get("quantity")
    if not isinstance(quantity, int) or not 1 <= quantity <= 20:
        errors[prefix + "quantity"] = _("Give between 1 and 20.")
    delay = gift.get("delay", "instant")
    if delay not in DELAYS:
        errors[prefix + "delay"] = _("Choose when the gift arrives.")
    elif delay != "instant":
        amount = gift.get("delay_amount")
        if not isinstance(amount, int) or amount <= 0:
            errors[prefix + "delay_amount"] = _("A delay is at least 1.")
        elif amount > MAX_DELAY[delay]:
            errors[prefix + "delay_amount"] = _("That delay is too long.")
    validity = gift.get("validity", "template")
    if validity not in VALIDITIES:
        errors[prefix + "validity"] = _("Choose how long the coupon is valid.")
    elif validity == "relative":
        days = gift.get("valid_days")
        if not isinstance(days, int) or not 1 <= days <= 3650:
            errors[prefix + "valid_days"] = _("Valid for 1 to 3650 days.")
    elif validity == "fixed":
        start, end = gift.get("valid_from"), gift.get("valid_until")
        if start is None or end is None:
            errors[prefix + "valid_until"] = _("Give both dates of the window.")
        elif end <= start:
            errors[prefix + "valid_until"] = _("The window must end after it starts.")


def _check_ids(session: Session, data: ActivityInput, errors: dict) -> None:
    """Plans, tiers, segments and tags must exist (one may go in another tab meanwhile)."""
    from portal.members.models import CardPlan, Segment, Tag, Tier

    for name, model in (("plan_ids", CardPlan), ("tier_ids", Tier),
                        ("segment_ids", Segment), ("tag_ids", Tag)):
        wanted = set(getattr(data, name))
        if wanted and len(set(session.scalars(select(model.id).where(
                model.id.in_(wanted))))) != len(wanted):
            errors.setdefault(name, _("One of these no longer exists: reload the page."))


def _check(session: Session, kind: str, data: ActivityInput,
           activity: Activity | None) -> dict[str, str]:
    errors = dict(data.errors)
    if not data.name.strip():
        errors.setdefault("name", _("Give the activity a name."))
    elif len(data.name) > 120:
        errors.setdefault("name", _("At most 120 characters."))
    if not CODE.match(data.code or ""):
        errors.setdefault("code", _("2 to 40 letters, digits, - or _."))
    elif session.scalar(select(Activity.id).where(
            Activity.code == data.code.strip().upper(),
            Activity.id != (activity.id if activity else -1))):
        errors.setdefault("code", _("This code is used by another activity."))
    if data.starts_at is None:
        errors.setdefault("starts_at", _("Give a start."))
    if data.ends_at is None:
        errors.setdefault("ends_at", _("Give an end."))
    elif data.starts_at is not None and data.ends_at <= data.starts_at:
        errors.setdefault("ends_at", _("The end must be after the start."))
    if kind == ActivityKind.PROFILE_COMPLETION:
        if not data.required_fields:
            errors.setdefault("required_fields", _("Choose at least one field to complete."))
        elif set(data.required_fields) - set(PROFILE_FIELDS):
            errors.setdefault("required_fields", _("Choose among the listed fields."))
        if data.points < 0:
            errors.setdefault("points", _("Points cannot be negative."))
        if not data.gifts and not data.points:
            errors.setdefault("gifts", _("Choose a gift: points, coupons or both."))
    else:
        if data.lapse_days is None or not 1 <= data.lapse_days <= 3650:
            errors.setdefault("lapse_days", _("Give the days since the last purchase "
                                              "(1 to 3650)."))
        if not data.gifts:
            errors.setdefault("gifts", _("Choose at least one coupon to give."))
    _check_ids(session, data, errors)
    if len(data.gifts) > MAX_GIFTS:
        errors.setdefault("gifts", _("At most %(n)d gifts.", n=MAX_GIFTS))
    for i, gift in enumerate(data.gifts):
        _check_gift(session, i, gift, errors)
    return errors


def _snapshot(a: Activity) -> dict:
    return {"name": a.name, "code": a.code, "starts_at": a.starts_at, "ends_at": a.ends_at,
            "status": a.status, "required_fields": a.required_fields, "points": a.points,
            "plan_ids": a.plan_ids, "tier_ids": a.tier_ids, "segment_ids": a.segment_ids,
            "tag_ids": a.tag_ids, "lapse_days": a.lapse_days, "notify": a.notify,
            "gifts": [_gift_values(g) for g in a.gifts]}


def _gift_values(g: ActivityGift) -> dict:
    return {"template_id": g.template_id, "package_id": g.package_id,
            "quantity": g.quantity, "delay": g.delay, "delay_amount": g.delay_amount,
            "validity": g.validity, "valid_days": g.valid_days, "valid_from": g.valid_from,
            "valid_until": g.valid_until}


def _clean_gift(gift: dict) -> dict:
    delay = gift.get("delay", "instant")
    validity = gift.get("validity", "template")
    return {"template_id": gift.get("template_id") or None,
            "package_id": None if gift.get("template_id") else gift.get("package_id"),
            "quantity": gift["quantity"], "delay": delay,
            "delay_amount": gift.get("delay_amount") or 0 if delay != "instant" else 0,
            "validity": validity,
            "valid_days": gift.get("valid_days") if validity == "relative" else None,
            "valid_from": gift.get("valid_from") if validity == "fixed" else None,
            "valid_until": gift.get("valid_until") if validity == "fixed" else None}


def _values(kind: str, data: ActivityInput) -> dict:
    profile = kind == ActivityKind.PROFILE_COMPLETION
    return {"name": data.name.strip(), "code": data.code.strip().upper(),
            "starts_at": data.starts_at, "ends_at": data.ends_at,
            "description": data.description.strip(),
            "required_fields": [f for f in PROFILE_FIELDS if f in data.required_fields]
            if profile else [],
            "plan_ids": sorted(set(data.plan_ids)), "tier_ids": sorted(set(data.tier_ids)),
            "segment_ids": [] if profile else sorted(set(data.segment_ids)),
            "tag_ids": [] if profile else sorted(set(data.tag_ids)),
            "points": data.points if profile else 0,
            "lapse_days": None if profile else data.lapse_days, "notify": data.notify,
            "gifts": [_clean_gift(g) for g in data.gifts]}


def _flush_code(session: Session) -> None:
    """Write now: a code another request saved meanwhile is refused like a used one."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise _invalid({"code": _("This code is used by another activity.")}) from None


def create(session: Session, kind: str, data: ActivityInput, *, operator_id: int,
           launch: bool = False) -> Activity:
    """A new activity, as a draft or launched at once (active from its start)."""
    if kind not in set(ActivityKind):
        raise CampaignError(CampaignErrorCode.NOT_FOUND, _("There is no such activity type."))
    with transaction(session):
        errors = _check(session, kind, data, None)
        if errors:
            raise _invalid(errors)
        values = _values(kind, data)
        gifts = values.pop("gifts")
        activity = Activity(kind=kind, **values,
                            status=ActivityStatus.ACTIVE if launch else ActivityStatus.DRAFT,
                            gifts=[ActivityGift(**g) for g in gifts])
        session.add(activity)
        _flush_code(session)
        record(session, operator_id, "activity.create", activity, after=_snapshot(activity))
        return activity


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def started(activity: Activity) -> bool:
    """Whether members may have taken part: launched and past its start (or archived)."""
    return activity.status in (ActivityStatus.PAUSED, ActivityStatus.ARCHIVED) or (
        activity.status == ActivityStatus.ACTIVE and activity.starts_at <= clock.now())


def update(session: Session, activity_id: int, data: ActivityInput, *,
           operator_id: int) -> Activity:
    """Save the merchant's changes. Before the start anything may change; once started
    only the name, description, notification switch and the end, not into the past
    (EDITABLE_WHEN_STARTED);
    an archived activity is read-only."""
    with transaction(session):
        activity = session.scalar(select(Activity).options(selectinload(Activity.gifts))
                                  .where(Activity.id == activity_id)
                                      .with_for_update().execution_options(populate_existing=True))
        if activity is None:
            raise CampaignError(CampaignErrorCode.NOT_FOUND, _("There is no such activity."))
        if activity.status == ActivityStatus.ARCHIVED:
            raise CampaignError(CampaignErrorCode.INVALID,
                                _("An archived activity cannot be changed."))
        errors = _check(session, activity.kind, data, activity)
        values = _values(activity.kind, data)
        before = _snapshot(activity)
        if started(activity):
            if values["gifts"] == before["gifts"]:
                # Gifts kept as they were are not checked again: a coupon deactivated
                # since must not stop the merchant renaming or extending the activity.
                errors = {k: v for k, v in errors.items()
                          if not k.startswith("gift-") and k != "gifts"}
            locked = _("This cannot change once the activity has started.")
            current = {k: v for k, v in before.items() if k != "status"}
            if values["starts_at"] and _minute(values["starts_at"]) == \
                    _minute(activity.starts_at):
                values["starts_at"] = activity.starts_at  # as shown: to the minute
            for name, value in values.items():
                if name not in EDITABLE_WHEN_STARTED and value != current[name]:
                    errors.setdefault("gifts" if name == "gifts" else name, locked)
            if values["ends_at"] and values["ends_at"] < clock.now() \
                    and values["ends_at"] != activity.ends_at:
                errors.setdefault("ends_at", _("A running activity can only end from now on."))
        if errors:
            raise _invalid(errors)
        gifts = values.pop("gifts")
        for name, value in values.items():
            setattr(activity, name, value)
        if [_gift_values(g) for g in activity.gifts] != gifts:
            activity.gifts = [ActivityGift(**g) for g in gifts]
        activity.updated_at = clock.now()
        _flush_code(session)
        record(session, operator_id, "activity.update", activity, before=before,
               after=_snapshot(activity))
        return activity


# Which status each action moves from and to.
ACTIONS = {
    "launch": ({ActivityStatus.DRAFT}, ActivityStatus.ACTIVE),
    "pause": ({ActivityStatus.ACTIVE}, ActivityStatus.PAUSED),
    "resume": ({ActivityStatus.PAUSED}, ActivityStatus.ACTIVE),
    "archive": ({ActivityStatus.DRAFT, ActivityStatus.ACTIVE, ActivityStatus.PAUSED},
                ActivityStatus.ARCHIVED),
}


def set_status(session: Session, activity_id: int, action: str, *,
               operator_id: int) -> Activity:
    """Launch a draft, pause, resume or archive (for good) an activity. Paused or
    archived, nobody can claim and the daily scan gives nothing; delayed gifts already
    owed are still delivered (members were promised them)."""
    with transaction(session):
        activity = session.scalar(select(Activity).where(Activity.id == activity_id)
                                  .with_for_update().execution_options(populate_existing=True))
        if activity is None or action not in ACTIONS:
            raise CampaignError(CampaignErrorCode.NOT_FOUND, _("There is no such activity."))
        allowed_from, to = ACTIONS[action]
        if activity.status not in allowed_from:
            raise CampaignError(CampaignErrorCode.INVALID,
                                _("This activity cannot do that now."))
        if action in ("launch", "resume"):
            for gift in activity.gifts:
                problem = offer_problem(session, gift.template_id, gift.package_id)
                if problem:
                    raise CampaignError(CampaignErrorCode.INVALID, problem)
        before = activity.status
        activity.status = to
        activity.updated_at = clock.now()
        record(session, operator_id, f"activity.{action}", activity,
               before={"status": before}, after={"status": to})
        return activity


def state_condition(state: str):
    now = clock.now()
    launched = Activity.status == ActivityStatus.ACTIVE
    return {
        "draft": Activity.status == ActivityStatus.DRAFT,
        "scheduled": and_(launched, Activity.starts_at > now),
        "active": and_(launched, Activity.starts_at <= now, Activity.ends_at > now),
        "ended": and_(launched, Activity.ends_at <= now),
        "paused": Activity.status == ActivityStatus.PAUSED,
        "archived": Activity.status == ActivityStatus.ARCHIVED,
    }[state]


@dataclass
class Row:
    activity: Activity
    participants: int


def activity_list(session: Session, kind: str | None = None,
                  state: str | None = None) -> list[Row]:
    """The merchant's list, filtered by type and state, with participants: one query."""
    counts = (select(Participation.activity_id,
                     func.count(func.distinct(Participation.member_id)).label("n"))
              .group_by(Participation.activity_id).subquery())
    query = (select(Activity, func.coalesce(counts.c.n, 0))
             .outerjoin(counts, counts.c.activity_id == Activity.id)
             .order_by(Activity.created_at.desc(), Activity.id.desc()))
    if kind in set(ActivityKind):
        query = query.where(Activity.kind == kind)
    if state in STATES:
        query = query.where(state_condition(state))
    return [Row(a, n) for a, n in session.execute(query).all()]


def get(session: Session, activity_id: int) -> Activity | None:
    return session.scalar(select(Activity).options(selectinload(Activity.gifts))
                          .where(Activity.id == activity_id))


@dataclass
class Performance:
    participants: int
    gifts_delivered: int
    gifts_pending: int
    gifts_failed: int
    coupons_issued: int
    coupons_used: int
    points_given: int
    orders: int
    revenue: dict[str, int]          # currency → minor units


def performance(session: Session, activity: Activity) -> Performance:
    """Participants, gifts delivered and pending, coupons used, and the orders and revenue
    (less refunds) of participants since they first took part. A handful of aggregate
    queries."""
    from portal.campaigns.services import MAX_ATTEMPTS
    from portal.loyalty.models import Order, OrderRefund

    participants, points = session.execute(
        select(func.count(func.distinct(Participation.member_id)),
               func.coalesce(func.sum(Participation.points), 0))
        .where(Participation.activity_id == activity.id)).one()
    delivered, pending, failed = session.execute(
        select(func.count(Grant.delivered_at),
               func.count(case((and_(Grant.delivered_at.is_(None),
                                     Grant.attempts < MAX_ATTEMPTS), 1))),
               func.count(case((and_(Grant.delivered_at.is_(None),
                                     Grant.attempts >= MAX_ATTEMPTS), 1))))
        .join(Participation, Participation.id == Grant.participation_id)
        .where(Participation.activity_id == activity.id)).one()
    issued, used = session.execute(
        select(func.count(Coupon.id),
               func.count(case((Coupon.status == CouponStatus.USED, 1))))
        .join(IssueBatch, IssueBatch.id == Coupon.batch_id)
        .where(IssueBatch.source == "activity", IssueBatch.source_ref == activity.code)).one()
    first = (select(Participation.member_id, func.min(Participation.created_at).label("at"))
             .where(Participation.activity_id == activity.id)
             .group_by(Participation.member_id).subquery())
    refunded = (select(OrderRefund.order_id,
                       func.sum(OrderRefund.amount_minor).label("amount"))
                .group_by(OrderRefund.order_id).subquery())
    orders = 0
    revenue: dict[str, int] = {}
    for currency, n, total in session.execute(
            select(Order.currency, func.count(Order.id),
                   func.sum(Order.total_minor - func.coalesce(refunded.c.amount, 0)))
            .join(first, and_(first.c.member_id == Order.member_id,
                              Order.occurred_at >= first.c.at))
            .outerjoin(refunded, refunded.c.order_id == Order.id)
            .group_by(Order.currency)):
        orders += n
        revenue[currency] = int(total or 0)
    return Performance(participants, delivered, pending, failed, issued, used, int(points),
                       orders, revenue)


def offers(session: Session) -> tuple[list[CouponTemplate], list[CouponPackage]]:
    """Active coupons and packages a gift may be, for the form."""
    templates = session.scalars(select(CouponTemplate).where(CouponTemplate.status == "active")
                                .order_by(CouponTemplate.title)).all()
    packages = session.scalars(select(CouponPackage).where(CouponPackage.status == "active")
                               .order_by(CouponPackage.name)).all()
    return list(templates), list(packages)


def offer_titles(session: Session, activities: list[Activity]) -> dict[int, str]:
    """Gift id → coupon title or package name, for several activities in two queries."""
    gifts = [g for a in activities for g in a.gifts]
    template_ids = {g.template_id for g in gifts if g.template_id}
    package_ids = {g.package_id for g in gifts if g.package_id}
    titles = dict(session.execute(select(CouponTemplate.id, CouponTemplate.title)
                                  .where(CouponTemplate.id.in_(template_ids))).all()) \
        if template_ids else {}
    names = dict(session.execute(select(CouponPackage.id, CouponPackage.name)
                                 .where(CouponPackage.id.in_(package_ids))).all()) \
        if package_ids else {}
    return {g.id: titles.get(g.template_id) or names.get(g.package_id, "") for g in gifts}

