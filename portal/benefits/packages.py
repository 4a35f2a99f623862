"""Paid benefit packages for the merchant (spec 2.2): create and edit (every field error at
once), activate / deactivate / archive, sales data, and the merchant-wide validity rule.

Sales rules are kept by position: a rule that purchases were made under cannot be removed
(its purchases keep pointing at it), only changed; purchases already made keep the price
and period they were given."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import distinct, func, or_, select
from sqlalchemy.orm import Session, selectinload

from portal import clock
from portal.benefits.models import (
    Benefit,
    BenefitKind,
    BenefitPackage,
    BenefitPackageItem,
    BenefitStatus,
    PackageItemKind,
    PackagePurchase,
    PackageRule,
    PackageSettings,
    PackageStatus,
    PurchaseStatus,
)
from portal.coupons.models import CouponPackage, CouponTemplate
from portal.db import transaction
from portal.members.models import CardPlan, Member, Segment, Tag, Tier
from portal.staff.services import record
from portal.wallet import schedule as schedules

MAX_RULES = 5
MAX_MINOR = 10**11
MAX_DAYS = 3660
MAX_POINTS = 10_000_000
CHANNELS = ("POS", "ONLINE")
GIFT_KINDS = (PackageItemKind.FIRST_GIFT, PackageItemKind.REPEAT_GIFT,
              PackageItemKind.RENEWAL_GIFT)
# The package item kinds that point at an existing benefit, and the benefit kind each needs.
BENEFIT_KINDS = {
    PackageItemKind.MEMBER_PRICE: BenefitKind.MEMBER_PRICE,
    PackageItemKind.DISCOUNT: BenefitKind.DISCOUNT,
    PackageItemKind.MULTIPLIER: BenefitKind.MULTIPLIER,
    PackageItemKind.PROMOTION: BenefitKind.PROMOTION,
    PackageItemKind.CARD_EXTENSION: BenefitKind.CARD_EXTENSION,
}
DISTRIBUTIONS = ("immediate", "on_start")


class ValidityMode(StrEnum):
    IMMEDIATE = "immediate"
    PURCHASE_DAY = "purchase_day"
    NEXT_DAY = "next_day"


VALIDITY_LABELS = {
    ValidityMode.IMMEDIATE: _l("Immediately after purchase"),
    ValidityMode.PURCHASE_DAY: _l("From 00:00 of the purchase day"),
    ValidityMode.NEXT_DAY: _l("From 00:00 of the next day"),
}

ITEM_LABELS = {
    PackageItemKind.FIRST_GIFT: _l("First purchase gift"),
    PackageItemKind.REPEAT_GIFT: _l("Repeat purchase gift"),
    PackageItemKind.RENEWAL_GIFT: _l("Early renewal gift"),
    PackageItemKind.MEMBER_PRICE: _l("Member pricing"),
    PackageItemKind.DISCOUNT: _l("Member discount"),
    PackageItemKind.MULTIPLIER: _l("Multiplier points"),
    PackageItemKind.PROMOTION: _l("Promotion"),
    PackageItemKind.TIER_UPGRADE: _l("Tier upgrade"),
    PackageItemKind.CARD_EXTENSION: _l("Card extension"),
}

STATUS_LABELS = {
    PackageStatus.DRAFT: _l("Draft"),
    PackageStatus.ACTIVE: _l("Active"),
    PackageStatus.INACTIVE: _l("Inactive"),
    PackageStatus.ARCHIVED: _l("Archived"),
}


class PackageErrorCode(StrEnum):
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    ARCHIVED = "archived"
    NOT_NOW = "not_now"
    NOT_AVAILABLE = "not_available"
    AGREEMENT = "agreement"


class PackageError(Exception):
    """A package rule refused the request; `code` is stable, the message is for people,
    `details["errors"]` says what is wrong by field ("rules-0-promo_minor", …)."""

    def __init__(self, code: PackageErrorCode, message: str, **details):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    @property
    def errors(self) -> dict[str, str]:
        return self.details.get("errors") or {}


def _invalid(errors: dict[str, str]) -> PackageError:
    return PackageError(PackageErrorCode.INVALID, _("Please correct the marked fields."),
                        errors=errors)


# --- checking what the merchant typed ------------------------------------------------------

def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ids(value) -> list[int]:
    return sorted({int(v) for v in value or [] if str(v).lstrip("-").isdecimal()})


def _unknown(session: Session, column, ids: list[int]) -> bool:
    return bool(ids) and len(set(session.scalars(select(column).where(column.in_(ids))))) \
        != len(set(ids))


def _price(rule: dict, name: str, key: str, errors: dict, *, required: bool = False
           ) -> int | None:
    value = rule.get(name)
    if value is None:
        if required:
            errors.setdefault(key, _("Enter the original price."))
        return None
    if not _is_int(value) or value < 0:
        errors.setdefault(key, _("A price cannot be below zero."))
        return None
    if value > MAX_MINOR:
        errors.setdefault(key, _("This price is too large."))
        return None
    return value


def _check_rules(rules: list, sales: tuple[datetime | None, datetime | None],
                 errors: dict) -> list[dict]:
    if len(rules) > MAX_RULES:
        errors["rules"] = _("A package has at most %(n)d sales rules.", n=MAX_RULES)
    if not rules:
        errors["rules"] = _("Add at least one sales rule.")
    starts, ends = sales
    out = []
    for i, rule in enumerate(rules[:MAX_RULES]):
        def key(name, i=i):
            return f"rules-{i}-{name}"
        days = rule.get("duration_days")
        if days is None:
            errors.setdefault(key("duration_days"), _("Enter how many days the package lasts."))
        elif not _is_int(days) or not 1 <= days <= MAX_DAYS:
            errors.setdefault(key("duration_days"),
                              _("Enter a number of days from 1 to %(n)d.", n=MAX_DAYS))
            days = None
        v = {"duration_days": days,
             "original_minor": _price(rule, "original_minor", key("original_minor"), errors,
                                      required=True)}
        for name in ("first_minor", "repeat_minor", "renewal_minor", "promo_minor"):
            v[name] = _price(rule, name, key(name), errors)
        p_start, p_end = rule.get("promo_starts_at"), rule.get("promo_ends_at")
        if v["promo_minor"] is not None or p_start or p_end:
            if v["promo_minor"] is None and key("promo_minor") not in errors:
                errors[key("promo_minor")] = _("Enter the limited-time price, or clear its "
                                               "dates.")
            if p_start is None:
                errors.setdefault(key("promo_starts_at"), _("When does the promotion start?"))
            if p_end is None:
                errors.setdefault(key("promo_ends_at"), _("When does the promotion end?"))
            if p_start and p_end:
                if p_end <= p_start:
                    errors.setdefault(key("promo_ends_at"),
                                      _("The promotion must end after it starts."))
                elif (starts and p_start < starts) or (ends and p_end > ends):
                    errors.setdefault(key("promo_starts_at"),
                                      _("The promotion must lie within the package's sales "
                                        "period."))
        v["promo_starts_at"], v["promo_ends_at"] = p_start, p_end
        out.append(v)
    return out


def _check_items(session: Session, items: list, rule_count: int, errors: dict) -> list[dict]:
    benefit_ids = _ids(i.get("benefit_id") for i in items if i.get("benefit_id"))
    benefits = {b.id: b for b in session.scalars(select(Benefit).where(
        Benefit.id.in_(benefit_ids)))} if benefit_ids else {}
    template_ids = _ids(i.get("coupon_template_id") for i in items)
    templates = dict(session.execute(select(CouponTemplate.id, CouponTemplate.status).where(
        CouponTemplate.id.in_(template_ids))).all()) if template_ids else {}
    package_ids = _ids(i.get("coupon_package_id") for i in items)
    coupon_packages = dict(session.execute(select(CouponPackage.id, CouponPackage.status).where(
        CouponPackage.id.in_(package_ids))).all()) if package_ids else {}
    tier_ids = _ids(i.get("tier_id") for i in items)
    tiers = set(session.scalars(select(Tier.id).where(Tier.id.in_(tier_ids)))) \
        if tier_ids else set()
    out = []
    for i, item in enumerate(items):
        def key(name, i=i):
            return f"items-{i}-{name}"
        kind = item.get("kind")
        if kind not in set(PackageItemKind):
            errors[key("kind")] = _("Choose one of the nine kinds of package benefit.")
            continue
        name = (item.get("name") or "").strip()
        if len(name) > 80:
            errors[key("name")] = _("At most %(n)d characters.", n=80)
        positions = sorted({int(p) for p in item.get("rule_positions") or []
                            if str(p).isdecimal()})
        if any(p >= rule_count for p in positions):
            errors[key("rule_positions")] = _("Choose among the package's sales rules.")
        v = {"kind": kind, "name": name, "description": (item.get("description") or "").strip(),
             "rule_positions": positions, "points": 0, "coupon_template_id": None,
             "coupon_package_id": None, "distribution": None, "benefit_id": None,
             "tier_id": None}
        if kind in GIFT_KINDS:
            points = item.get("points") or 0
            if not _is_int(points) or not 0 <= points <= MAX_POINTS:
                errors[key("points")] = _("Enter whole points from 0 to %(n)s.", n=MAX_POINTS)
                points = 0
            t_id, p_id = item.get("coupon_template_id"), item.get("coupon_package_id")
            if t_id and p_id:
                errors[key("gift")] = _("Choose a coupon or a coupon package, not both.")
            elif t_id and templates.get(t_id) != "active":
                errors[key("gift")] = _("This coupon is not active: activate it or choose "
                                        "another.")
            elif p_id and coupon_packages.get(p_id) != "active":
                errors[key("gift")] = _("This coupon package is not active.")
            if not points and not t_id and not p_id:
                errors.setdefault(key("points"), _("A gift gives points, a coupon or both."))
            v.update(points=points, coupon_template_id=t_id or None,
                     coupon_package_id=p_id or None)
            if not name:
                v["name"] = str(ITEM_LABELS[kind])
            if kind == PackageItemKind.RENEWAL_GIFT:
                distribution = item.get("distribution") or "immediate"
                if distribution not in DISTRIBUTIONS:
                    errors[key("distribution")] = _("Choose when the gift is given.")
                v["distribution"] = distribution
        elif kind == PackageItemKind.TIER_UPGRADE:
            tier_id = item.get("tier_id")
            if not tier_id or tier_id not in tiers:
                errors[key("tier_id")] = _("Choose the tier the package gives.")
            v["tier_id"] = tier_id
        else:
            benefit = benefits.get(item.get("benefit_id"))
            if benefit is None:
                errors[key("benefit_id")] = _("Choose an existing benefit.")
            elif benefit.kind != BENEFIT_KINDS[kind]:
                errors[key("benefit_id")] = _("This benefit is of another kind: choose a "
                                              "%(kind)s benefit.",
                                              kind=str(ITEM_LABELS[kind]).lower())
            elif benefit.status != BenefitStatus.ACTIVE:
                errors[key("benefit_id")] = _("This benefit is deactivated: activate it or "
                                              "choose another.")
            else:
                v["benefit_id"] = benefit.id
                if not name:
                    v["name"] = benefit.name
        out.append(v)
    return out


def clean(session: Session, data: dict, package: BenefitPackage | None = None
          ) -> tuple[dict, list[dict], list[dict]]:
    """The values to store, its sales rules and its items, from parsed input (money in minor
    units, aware datetimes, lists of ids). Raises PackageError with every problem by field
    at once; nothing is saved."""
    errors: dict[str, str] = dict(data.get("errors") or {})
    v: dict = {}
    name = (data.get("name") or "").strip()
    if not name:
        errors.setdefault("name", _("Give the package a name."))
    elif len(name) > 80:
        errors.setdefault("name", _("At most %(n)d characters.", n=80))
    v["name"] = name
    currency = (data.get("currency") or (package.currency if package else "")).upper()
    if package is None and not (len(currency) == 3 and currency.isalpha()):
        errors.setdefault("currency", _("Choose a currency."))
    v["currency"] = package.currency if package else currency
    v["tags"] = sorted({t.strip()[:30] for t in data.get("tags") or [] if t.strip()})
    v["cover"] = data.get("cover") or (package.cover if package else None)
    for group, column in (("plan_ids", CardPlan.id), ("tier_ids", Tier.id),
                          ("segment_ids", Segment.id), ("tag_ids", Tag.id)):
        v[group] = _ids(data.get(group))
        if _unknown(session, column, v[group]):
            errors.setdefault(group, _("Choose from the list."))
    v["starts_at"], v["ends_at"] = data.get("starts_at"), data.get("ends_at")
    if v["starts_at"] and v["ends_at"] and v["ends_at"] <= v["starts_at"]:
        errors.setdefault("ends_at", _("The end must be after the start."))
    schedule_errors = schedules.validate_schedule(data.get("schedule"))
    for k, message in schedule_errors.items():
        errors.setdefault(f"schedule_{k}", message)
    v["schedule"] = schedules.clean_schedule(data.get("schedule")) if not schedule_errors \
        else dict(data.get("schedule") or {})
    channels = [c for c in CHANNELS if c in (data.get("channels") or [])]
    if not channels:
        errors.setdefault("channels", _("Choose at least one sales channel."))
    v["channels"] = channels
    v["refund_restricted"] = bool(data.get("refund_restricted"))
    for text in ("agreement", "terms", "faq", "description"):
        v[text] = (data.get(text) or "").strip()
    rules = _check_rules(list(data.get("rules") or []), (v["starts_at"], v["ends_at"]), errors)
    items = _check_items(session, list(data.get("items") or []), len(rules), errors)
    if errors:
        raise _invalid(errors)
    return v, rules, items


# --- saving -------------------------------------------------------------------------------

def _snapshot(package: BenefitPackage) -> dict:
    out = {c.key: getattr(package, c.key) for c in BenefitPackage.__mapper__.column_attrs
           if c.key not in ("created_at", "updated_at")}
    out["rules"] = [{c.key: getattr(r, c.key) for c in PackageRule.__mapper__.column_attrs
                     if c.key not in ("id", "package_id")} for r in package.rules]
    out["items"] = [{c.key: getattr(i, c.key)
                     for c in BenefitPackageItem.__mapper__.column_attrs
                     if c.key not in ("id", "package_id")} for i in package.items]
    return out


def _apply(session: Session, package: BenefitPackage, values: dict, rules: list[dict],
           items: list[dict]) -> None:
    for name, value in values.items():
        setattr(package, name, value)
    existing = {r.position: r for r in package.rules}
    for position, rule in enumerate(rules):
        row = existing.pop(position, None)
        if row is None:
            package.rules.append(PackageRule(position=position, **rule))
        else:
            for name, value in rule.items():
                setattr(row, name, value)
    for row in existing.values():
        package.rules.remove(row)
    package.items = [BenefitPackageItem(position=i, **item) for i, item in enumerate(items)]


def _locked(session: Session, package_id: int) -> BenefitPackage | None:
    return session.scalar(select(BenefitPackage).where(BenefitPackage.id == package_id)
                          .with_for_update().execution_options(populate_existing=True))


def get(session: Session, package_id: int) -> BenefitPackage | None:
    return session.scalar(select(BenefitPackage).options(
        selectinload(BenefitPackage.rules), selectinload(BenefitPackage.items))
        .where(BenefitPackage.id == package_id))


def create(session: Session, data: dict, *, operator_id: int | None,
           activate: bool = False) -> BenefitPackage:
    """A new package, as a draft or active at once."""
    with transaction(session):
        values, rules, items = clean(session, data)
        package = BenefitPackage(status=PackageStatus.ACTIVE if activate
                                 else PackageStatus.DRAFT, operator_id=operator_id)
        session.add(package)
        _apply(session, package, values, rules, items)
        session.flush()
        record(session, operator_id, "benefit_package.create", package,
               after=_snapshot(package))
        return package


def update(session: Session, package_id: int, data: dict, *, operator_id: int | None
           ) -> BenefitPackage:
    """Save the merchant's changes (an archived package is read-only; the currency stays)."""
    with transaction(session):
        package = _locked(session, package_id)
        if package is None:
            raise PackageError(PackageErrorCode.NOT_FOUND, _("There is no such package."))
        if package.status == PackageStatus.ARCHIVED:
            raise PackageError(PackageErrorCode.ARCHIVED,
                               _("An archived package cannot be changed."))
        try:
            values, rules, items = clean(session, data, package)
            errors: dict[str, str] = {}
        except PackageError as e:
            values, rules, items, errors = None, list(data.get("rules") or []), None, e.errors
        sold = set(session.scalars(select(PackageRule.position).join(
            PackagePurchase, PackagePurchase.rule_id == PackageRule.id)
            .where(PackageRule.package_id == package.id)))
        if sold and max(sold) >= len(rules):
            errors.setdefault("rules", _("Rule %(n)d has purchases: it can be changed but not "
                                         "removed.", n=max(sold) + 1))
        if errors:
            raise _invalid(errors)
        before = _snapshot(package)
        _apply(session, package, values, rules, items)
        package.updated_at, package.operator_id = clock.now(), operator_id
        session.flush()
        record(session, operator_id, "benefit_package.update", package, before=before,
               after=_snapshot(package))
        return package


# Which status each action moves from and to. An active package is deactivated before it
# is archived, so members never see it vanish mid-checkout without a step in between.
ACTIONS = {
    "activate": ({PackageStatus.DRAFT, PackageStatus.INACTIVE}, PackageStatus.ACTIVE),
    "deactivate": ({PackageStatus.ACTIVE}, PackageStatus.INACTIVE),
    "archive": ({PackageStatus.DRAFT, PackageStatus.INACTIVE}, PackageStatus.ARCHIVED),
}


def set_status(session: Session, package_id: int, action: str, *, operator_id: int | None
               ) -> BenefitPackage:
    """Activate, deactivate or archive (read-only, hidden from the list unless asked for).
    Members keep the periods they bought either way."""
    with transaction(session):
        package = _locked(session, package_id)
        if package is None or action not in ACTIONS:
            raise PackageError(PackageErrorCode.NOT_FOUND, _("There is no such package."))
        allowed, to = ACTIONS[action]
        if package.status not in allowed:
            raise PackageError(PackageErrorCode.NOT_NOW,
                               _("Deactivate the package before archiving it.")
                               if action == "archive" and package.status == PackageStatus.ACTIVE
                               else _("This package cannot do that now."))
        before = package.status
        package.status, package.updated_at = to, clock.now()
        record(session, operator_id, f"benefit_package.{action}", package,
               before={"status": before}, after={"status": to})
        return package


# --- sales data ---------------------------------------------------------------------------

@dataclass
class Sales:
    volume: int = 0           # paid purchases (refunded ones are not counted)
    revenue_minor: int = 0
    buyers: int = 0           # distinct members


def _sales_columns():
    return (func.count(PackagePurchase.id), func.coalesce(func.sum(PackagePurchase.price_minor), 0),
            func.count(distinct(PackagePurchase.member_id)))


@dataclass
class Row:
    package: BenefitPackage
    sales: Sales


def package_list(session: Session, *, q: str = "", status: str | None = None) -> list[Row]:
    """Packages newest first with their sales figures, in one query (and one for their
    rules). Archived packages only when `status` asks for them."""
    paid = (select(PackagePurchase.package_id, *(c.label(n) for c, n in zip(
        _sales_columns(), ("volume", "revenue", "buyers"), strict=True)))
        .where(PackagePurchase.status == PurchaseStatus.PAID)
        .group_by(PackagePurchase.package_id).subquery())
    query = (select(BenefitPackage, func.coalesce(paid.c.volume, 0),
                    func.coalesce(paid.c.revenue, 0), func.coalesce(paid.c.buyers, 0))
             .outerjoin(paid, paid.c.package_id == BenefitPackage.id)
             .options(selectinload(BenefitPackage.rules))
             .order_by(BenefitPackage.id.desc()))
    if status in set(PackageStatus):
        query = query.where(BenefitPackage.status == status)
    else:
        query = query.where(BenefitPackage.status != PackageStatus.ARCHIVED)
    if q.strip():
        like = f"%{q.strip().lower()}%"
        query = query.where(or_(func.lower(BenefitPackage.name).like(like),
                                func.lower(BenefitPackage.description).like(like)))
    return [Row(p, Sales(int(v), int(r), int(b))) for p, v, r, b in session.execute(query)]


@dataclass
class Buyer:
    member: Member
    purchases: int
    spent_minor: int
    last_at: datetime


@dataclass
class SalesReport:
    total: Sales
    by_rule: list[tuple[PackageRule, Sales]]
    buyers: list[Buyer]


def sales(session: Session, package_id: int, limit: int = 200) -> SalesReport:
    """Volume, revenue and buyers of one package, in three queries."""
    paid = (PackagePurchase.package_id == package_id,
            PackagePurchase.status == PurchaseStatus.PAID)
    v, r, b = session.execute(select(*_sales_columns()).where(*paid)).one()
    per_rule = session.execute(
        select(PackageRule, *_sales_columns())
        .outerjoin(PackagePurchase, (PackagePurchase.rule_id == PackageRule.id)
                   & (PackagePurchase.status == PurchaseStatus.PAID))
        .where(PackageRule.package_id == package_id)
        .group_by(PackageRule.id).order_by(PackageRule.position)).all()
    buyers = session.execute(
        select(Member, func.count(PackagePurchase.id), func.sum(PackagePurchase.price_minor),
               func.max(PackagePurchase.paid_at))
        .join(PackagePurchase, PackagePurchase.member_id == Member.id).where(*paid)
        .group_by(Member.id).order_by(func.max(PackagePurchase.paid_at).desc())
        .limit(limit)).all()
    return SalesReport(Sales(int(v), int(r), int(b)),
                       [(rule, Sales(int(n), int(s), int(m))) for rule, n, s, m in per_rule],
                       [Buyer(m, int(n), int(s or 0), at) for m, n, s, at in buyers])


# --- the merchant-wide validity rule ------------------------------------------------------

def settings(session: Session) -> PackageSettings:
    """The one settings row (unsaved defaults until the merchant saves)."""
    return session.scalar(select(PackageSettings).order_by(PackageSettings.id).limit(1)) \
        or PackageSettings(validity_mode=ValidityMode.IMMEDIATE)


def save_settings(session: Session, validity_mode: str, *, operator_id: int | None
                  ) -> PackageSettings:
    if validity_mode not in set(ValidityMode):
        message = _("Choose how a package's validity is counted.")
        raise PackageError(PackageErrorCode.INVALID, message,
                           errors={"validity_mode": message})
    with transaction(session):
        row = session.scalar(select(PackageSettings).order_by(PackageSettings.id).limit(1)
                             .with_for_update().execution_options(populate_existing=True))
        before = row.validity_mode if row else None
        if row is None:
            row = PackageSettings()
            session.add(row)
        row.validity_mode, row.operator_id, row.updated_at = \
            validity_mode, operator_id, clock.now()
        session.flush()
        record(session, operator_id, "benefit_package.settings", row,
               before={"validity_mode": before}, after={"validity_mode": validity_mode})
        return row


# --- choices for the merchant's form ------------------------------------------------------

def benefit_choices(session: Session) -> dict[str, list[Benefit]]:
    """Active benefits by the package item kind that may point at them."""
    rows = session.scalars(select(Benefit).where(
        Benefit.status == BenefitStatus.ACTIVE,
        Benefit.kind.in_([str(k) for k in BENEFIT_KINDS.values()])).order_by(Benefit.name))
    by_kind = {str(b): str(i) for i, b in BENEFIT_KINDS.items()}
    out: dict[str, list[Benefit]] = {str(k): [] for k in BENEFIT_KINDS}
    for benefit in rows:
        out[by_kind[benefit.kind]].append(benefit)
    return out
