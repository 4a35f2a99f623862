"""Coupon rules: templates and their edit rules, issuing (the one service every gift uses),
the wallet, claim links."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from portal import clock, jobs
from portal.coupons.errors import CouponError, CouponErrorCode
from portal.coupons.models import (
    ClaimLink,
    Coupon,
    CouponPackage,
    CouponStatus,
    CouponTemplate,
    IssueBatch,
    MemberTemplateCount,
    PackageItem,
    Redemption,
    TemplateStatus,
    ValidityKind,
)
from portal.db import transaction
from portal.members.models import Member
from portal.money import Money
from portal.notifications.models import MessageKind
from portal.staff.services import record

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at a till
CODE_LENGTH = 12  # 60 bits: not guessable
MAX_PER_ISSUE = 100
MAX_COUPONS_PER_ISSUE = 500


@dataclass(frozen=True)
class Source:
    """Why coupons were given: admin, claim, campaign, api, package, ..."""

    kind: str
    ref: str | None = None
    reason: str | None = None


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def validity(template: CouponTemplate, received_at: datetime) -> tuple[datetime, datetime]:
    """When a coupon received at `received_at` starts and stops (exclusive) being valid.

    Days are the merchant's: a fixed window covers both dates whole; a relative one starts
    N local days after receipt (at once when N is 0) and lasts M days."""
    if template.validity_kind == ValidityKind.FIXED:
        return (clock.start_of_local_day(template.valid_from_on),
                clock.start_of_local_day(template.valid_until_on + timedelta(days=1)))
    received_on = clock.local(received_at).date()
    starts_on = received_on + timedelta(days=template.starts_after_days or 0)
    start = received_at if not template.starts_after_days \
        else clock.start_of_local_day(starts_on)
    return start, clock.start_of_local_day(starts_on + timedelta(days=template.valid_days))


# --- issuing ---------------------------------------------------------------------------

def issue(session: Session, *, member_id: int, source: Source, key: str,
          template_id: int | None = None, package_id: int | None = None, quantity: int = 1,
          operator_id: int | None = None,
          valid_window: tuple[datetime, datetime] | None = None,
          notify: bool = True) -> list[Coupon]:
    """Give a member `quantity` of a template, or of a package, all or nothing; with
    `notify` (and the "coupon arrived" message on) the member is told.

    The same `key` twice issues once (the second call returns the first call's coupons).
    Inventory is taken with conditional UPDATEs and the per-member limit counts every
    coupon ever issued to the member from the template, so parallel calls cannot oversell
    or pass the limit."""
    if (template_id is None) == (package_id is None):
        raise ValueError("issue a template or a package")
    if not isinstance(quantity, int) or not 1 <= quantity <= MAX_PER_ISSUE:
        raise CouponError(CouponErrorCode.BAD_QUANTITY,
                          _("Issue between 1 and %(n)d at a time.", n=MAX_PER_ISSUE))
    try:
        return _issue(session, member_id=member_id, source=source, key=key,
                      template_id=template_id, package_id=package_id, quantity=quantity,
                      operator_id=operator_id, valid_window=valid_window, notify=notify)
    except IntegrityError:
        # The same key was issued meanwhile by a parallel call: return what it gave.
        coupons = issued_for_key(session, key)
        if coupons is None:
            raise
        return coupons


def issued_for_key(session: Session, key: str) -> list[Coupon] | None:
    batch_id = session.scalar(select(IssueBatch.id).where(IssueBatch.key == key))
    if batch_id is None:
        return None
    return list(session.scalars(select(Coupon).options(selectinload(Coupon.template))
                                .where(Coupon.batch_id == batch_id).order_by(Coupon.id)))


def _issue(session, *, member_id, source, key, template_id, package_id, quantity,
           operator_id, valid_window=None, notify=True) -> list[Coupon]:
    with transaction(session):
        done = issued_for_key(session, key)
        if done is not None:
            return done
        member = session.get(Member, member_id)
        if member is not None and member.is_closed:
            # Closing voided the member's coupons; a new one would belong to no one.
            raise CouponError(CouponErrorCode.MEMBER_CLOSED,
                              _("This account is closed: it cannot be given coupons."))
        if member is None or not member.is_member:
            raise CouponError(CouponErrorCode.NOT_A_MEMBER,
                              _("Coupons are for members: issue a card first."))
        lines = _lines(session, template_id, package_id, quantity)
        # The batch row first: a parallel call with the same key stops here.
        batch = IssueBatch(key=key, member_id=member_id, template_id=template_id,
                           package_id=package_id, quantity=quantity, source=source.kind,
                           source_ref=source.ref, reason=source.reason,
                           operator_id=operator_id)
        session.add(batch)
        session.flush()
        now = clock.now()
        coupons = []
        for template, n in lines:  # in template id order: locks are taken in one order
            _check_active(template)
            _take_stock(session, template, n)
            _count_for_member(session, template, member_id, n)
            start, end = valid_window or validity(template, now)
            for _copy in range(n):
                coupons.append(Coupon(code=new_code(), template_id=template.id,
                                      member_id=member_id, batch_id=batch.id,
                                      valid_from=start, valid_until=end, issued_at=now))
        session.add_all(coupons)
        session.flush()
        if operator_id is not None:
            record(session, operator_id, "coupon.issue", ("members", member_id),
                   after={"template_id": template_id, "package_id": package_id,
                          "quantity": quantity, "reason": source.reason,
                          "codes": [c.code for c in coupons]})
        if notify:
            _notify(session, member, coupons, lines)
        return coupons


def _lines(session, template_id, package_id, quantity) -> list[tuple[CouponTemplate, int]]:
    if template_id is not None:
        template = session.get(CouponTemplate, template_id)
        if template is None:
            raise CouponError(CouponErrorCode.NOT_FOUND, _("There is no such coupon."))
        return [(template, quantity)]
    package = session.scalar(select(CouponPackage).options(
        selectinload(CouponPackage.items).selectinload(PackageItem.template))
        .where(CouponPackage.id == package_id))
    if package is None or package.status != TemplateStatus.ACTIVE or not package.items:
        raise CouponError(CouponErrorCode.INACTIVE,
                          _("This coupon package is not available."))
    lines = sorted(((item.template, item.quantity * quantity) for item in package.items),
                   key=lambda line: line[0].id)
    if sum(n for _t, n in lines) > MAX_COUPONS_PER_ISSUE:
        raise CouponError(CouponErrorCode.BAD_QUANTITY,
                          _("That would be more than %(n)d coupons at once.",
                            n=MAX_COUPONS_PER_ISSUE))
    return lines


def _check_active(template: CouponTemplate) -> None:
    if not template.is_active:
        raise CouponError(CouponErrorCode.INACTIVE,
                          _("“%(title)s” is not available.", title=template.title))
    if template.validity_kind == ValidityKind.FIXED and \
            clock.start_of_local_day(template.valid_until_on + timedelta(days=1)) <= clock.now():
        raise CouponError(CouponErrorCode.INACTIVE,
                          _("“%(title)s” has ended.", title=template.title))


def _take_stock(session: Session, template: CouponTemplate, n: int) -> None:
    if template.inventory_total is None:
        return
    # A conditional UPDATE, not read-then-write: two claims on the last unit must not
    # both win.
    taken = session.execute(
        update(CouponTemplate)
        .where(CouponTemplate.id == template.id, CouponTemplate.inventory_left >= n)
        .values(inventory_left=CouponTemplate.inventory_left - n)
    ).rowcount
    if taken == 0:
        raise CouponError(CouponErrorCode.OUT_OF_STOCK,
                          _("“%(title)s” is all gone.", title=template.title))


def _count_for_member(session: Session, template: CouponTemplate, member_id: int,
                      n: int) -> None:
    try:
        with session.begin_nested():
            session.add(MemberTemplateCount(member_id=member_id, template_id=template.id,
                                            issued=0))
    except IntegrityError:
        pass  # the row exists already
    condition = [MemberTemplateCount.member_id == member_id,
                 MemberTemplateCount.template_id == template.id]
    if template.per_member_limit is not None:
        condition.append(MemberTemplateCount.issued + n <= template.per_member_limit)
    counted = session.execute(update(MemberTemplateCount).where(*condition)
                              .values(issued=MemberTemplateCount.issued + n)).rowcount
    if counted == 0:
        raise CouponError(CouponErrorCode.LIMIT_REACHED,
                          _("The per-member limit of “%(title)s” is reached.",
                            title=template.title), limit=template.per_member_limit)


def _notify(session: Session, member: Member, coupons: list[Coupon], lines) -> None:
    from portal.notifications import services as notifications

    # Worded when read, in the member's language; nothing if the merchant switched
    # "coupon arrived" off.
    notifications.send(session, MessageKind.COUPON_ARRIVED, member.id,
                       {"titles": [f"{t.title} × {n}" if n > 1 else t.title
                                   for t, n in lines]})


# --- the wallet ------------------------------------------------------------------------

WALLET_TABS = ("available", "used", "expired")


def wallet(session: Session, member_id: int, tab: str) -> tuple[list[Coupon], dict[str, int]]:
    """The coupons of one tab and the count of each tab, in a fixed number of queries.

    State is computed from the time, not from the nightly job: an expired coupon never
    shows as available."""
    now = clock.now()
    state = case(
        (Coupon.status == CouponStatus.USED, "used"),
        ((Coupon.status == CouponStatus.EXPIRED) | (Coupon.valid_until <= now), "expired"),
        else_="available")
    counts = dict(session.execute(
        select(state, func.count(Coupon.id)).where(Coupon.member_id == member_id)
        .group_by(state)).all())
    query = select(Coupon).options(selectinload(Coupon.template)) \
        .where(Coupon.member_id == member_id, state == tab)
    if tab == "available":
        query = query.order_by(Coupon.valid_until, Coupon.id)   # soonest to expire first
    elif tab == "used":
        query = query.order_by(Coupon.used_at.desc(), Coupon.id.desc())
    else:
        query = query.order_by(Coupon.valid_until.desc(), Coupon.id.desc())
    return list(session.scalars(query.limit(200))), {t: counts.get(t, 0) for t in WALLET_TABS}


def member_coupon(session: Session, member_id: int, coupon_id: int) -> Coupon | None:
    coupon = session.scalar(select(Coupon).options(selectinload(Coupon.template))
                            .where(Coupon.id == coupon_id))
    return coupon if coupon is not None and coupon.member_id == member_id else None


def available_count(session: Session, member_id: int) -> int:
    return session.scalar(select(func.count(Coupon.id)).where(
        Coupon.member_id == member_id, Coupon.status == CouponStatus.AVAILABLE,
        Coupon.valid_until > clock.now()))


@jobs.on_daily("expire_coupons")
def expire_coupons(session: Session) -> int:
    """Mark coupons past their end as expired (the wallet does not wait for this)."""
    with transaction(session):
        return session.execute(
            update(Coupon).where(Coupon.status == CouponStatus.AVAILABLE,
                                 Coupon.valid_until <= clock.now())
            .values(status=CouponStatus.EXPIRED)).rowcount


def days_left(coupon: Coupon) -> int:
    """Whole local days until the coupon ends (0: ends today)."""
    last_day: date = clock.local(coupon.valid_until - timedelta(microseconds=1)).date()
    return (last_day - clock.today()).days


# --- claim links -----------------------------------------------------------------------

def claim_link(session: Session, token: str) -> ClaimLink | None:
    return session.scalar(select(ClaimLink).options(selectinload(ClaimLink.template))
                          .where(ClaimLink.token == token))


def claim(session: Session, token: str, member_id: int) -> list[Coupon]:
    """A member claims one coupon through a link; once per member per link."""
    link = claim_link(session, token)
    if link is None or not link.is_active:
        raise CouponError(CouponErrorCode.INACTIVE, _("This offer is not available."))
    return issue(session, member_id=member_id, template_id=link.template_id,
                 source=Source("claim", ref=str(link.id)),
                 key=f"claim:{link.id}:{member_id}")


# --- staff: templates ------------------------------------------------------------------

# Once a coupon is issued these are its terms: issued coupons must keep meaning what they
# said, so they cannot change any more.
TERMS = ("kind", "currency", "amount_minor", "percent_off", "cap_minor", "gift_item",
         "min_spend_minor", "product_ids", "channels")
EDITABLE = ("internal_name", "title", "subtitle", "instructions", "theme", "validity_kind",
            "valid_from_on", "valid_until_on", "starts_after_days", "valid_days",
            "per_member_limit", "extra_fields", "online_url", "external_id")
THEMES = ("teal", "indigo", "amber", "rose", "slate")
MAX_PRODUCTS = 5000


def _invalid(errors: dict) -> CouponError:
    return CouponError(CouponErrorCode.INVALID, _("Please correct the marked fields."),
                       errors=errors)


def parse_product_ids(text: str) -> list[str]:
    """Product or SKU ids pasted or uploaded: one per line, or separated by commas,
    semicolons or spaces."""
    import re

    ids = [p for p in re.split(r"[\s,;，；]+", text or "") if p]
    bad = [p for p in ids if len(p) > 64 or not p.isprintable()]
    if bad or len(ids) > MAX_PRODUCTS:
        raise _invalid({"product_ids": _("Product ids are up to 64 characters each, at most "
                                         "%(n)d of them.", n=MAX_PRODUCTS)})
    return list(dict.fromkeys(ids))


def parse_extra_fields(text: str) -> dict[str, str]:
    """key = value, one per line."""
    fields = {}
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip() or len(key.strip()) > 40 or len(value.strip()) > 200:
            raise _invalid({"extra_fields": _("Line %(n)d: write key = value.", n=number)})
        fields[key.strip()] = value.strip()
    return fields


def clean_template(data: dict) -> dict:
    """Check a template's settings; every problem is reported at once, by field."""
    errors = {}
    kind = data.get("kind")
    if kind not in ("cash", "discount", "gift"):
        errors["kind"] = _("Choose the type of coupon.")
    for name in ("internal_name", "title"):
        if not (data.get(name) or "").strip():
            errors[name] = _("This field is required.")
    for name, limit in (("internal_name", 120), ("title", 120), ("subtitle", 200),
                        ("gift_item", 120), ("online_url", 500), ("external_id", 64),
                        ("instructions", 4000)):
        if len((data.get(name) or "").strip()) > limit:
            errors[name] = _("At most %(n)d characters.", n=limit)
    if kind == "cash" and not (data.get("amount_minor") or 0) > 0:
        errors["amount_minor"] = _("Enter the amount off, above zero.")
    if kind == "discount":
        percent = data.get("percent_off")
        if percent is None or not 0 < percent <= 10000:
            errors["percent_off"] = _("Enter a percentage above 0 and at most 100.")
        if data.get("cap_minor") is not None and data["cap_minor"] <= 0:
            errors["cap_minor"] = _("The cap must be above zero, or empty for none.")
    if kind == "gift" and not (data.get("gift_item") or "").strip():
        errors["gift_item"] = _("Name the free item.")
    if data.get("validity_kind") == "fixed":
        start, end = data.get("valid_from_on"), data.get("valid_until_on")
        if start is None:
            errors["valid_from_on"] = _("Enter the first day.")
        if end is None:
            errors["valid_until_on"] = _("Enter the last day.")
        elif start is not None and end < start:
            errors["valid_until_on"] = _("The last day cannot be before the first day.")
    elif data.get("validity_kind") == "relative":
        if data.get("starts_after_days") is None or not 0 <= data["starts_after_days"] <= 365:
            errors["starts_after_days"] = _("From 0 (at once) to 365 days.")
        if data.get("valid_days") is None or not 1 <= data["valid_days"] <= 3650:
            errors["valid_days"] = _("From 1 to 3650 days.")
    else:
        errors["validity_kind"] = _("Choose how long coupons are valid.")
    inventory = data.get("inventory_total")
    if inventory is not None and not 0 <= inventory <= 9_999_999_999:
        errors["inventory_total"] = _("From 0 to 9,999,999,999, or empty for unlimited.")
    limit = data.get("per_member_limit")
    if limit is not None and limit < 1:
        errors["per_member_limit"] = _("At least 1, or empty for no limit.")
    if data.get("min_spend_minor") is not None and data["min_spend_minor"] < 0:
        errors["min_spend_minor"] = _("The minimum spend cannot be negative.")
    url = (data.get("online_url") or "").strip()
    if url and not url.startswith("https://"):
        errors["online_url"] = _("Use an https:// link.")
    if data.get("theme") not in THEMES:
        errors["theme"] = _("Choose a colour.")
    channels = data.get("channels") or []
    if not channels or not set(channels) <= {"POS", "ONLINE"}:
        errors["channels"] = _("Choose where it can be used.")
    if errors:
        raise _invalid(errors)
    clean = dict(data)
    for name in ("internal_name", "title", "subtitle", "instructions", "gift_item",
                 "online_url", "external_id"):
        if isinstance(clean.get(name), str):
            clean[name] = clean[name].strip()
    clean["online_url"] = clean.get("online_url") or None
    clean["external_id"] = clean.get("external_id") or None
    # Only the fields of the chosen type and validity are kept.
    if kind != "cash":
        clean["amount_minor"] = None
    if kind != "discount":
        clean["percent_off"] = clean["cap_minor"] = None
    if kind != "gift":
        clean["gift_item"] = None
    if clean["validity_kind"] == "fixed":
        clean["starts_after_days"] = clean["valid_days"] = None
    else:
        clean["valid_from_on"] = clean["valid_until_on"] = None
    return clean


def _snapshot(template: CouponTemplate) -> dict:
    return {name: getattr(template, name) for name in (*TERMS, *EDITABLE, "status",
                                                       "inventory_total")}


def issued_count(session: Session, template_id: int) -> int:
    return session.scalar(select(func.count(Coupon.id))
                          .where(Coupon.template_id == template_id))


def create_template(session: Session, data: dict, *, operator_id: int) -> CouponTemplate:
    clean = clean_template(data)
    with transaction(session):
        inventory = clean.pop("inventory_total", None)
        template = CouponTemplate(**{k: clean[k] for k in (*TERMS, *EDITABLE)},
                                  inventory_total=inventory, inventory_left=inventory,
                                  status=TemplateStatus.DRAFT)
        session.add(template)
        session.flush()
        record(session, operator_id, "coupon_template.create", template,
               after=_snapshot(template))
        return template


def update_template(session: Session, template_id: int, data: dict, *,
                    operator_id: int) -> CouponTemplate:
    """Change a template. Once coupons are issued their terms stay as they were, and the
    inventory cannot go below what was already given out."""
    clean = clean_template(data)
    with transaction(session):
        template = session.scalar(select(CouponTemplate).where(CouponTemplate.id == template_id)
                                  .with_for_update().execution_options(populate_existing=True))
        if template is None:
            raise CouponError(CouponErrorCode.NOT_FOUND, _("There is no such coupon."))
        before = _snapshot(template)
        issued = issued_count(session, template.id)
        if issued:
            locked = [name for name in TERMS if clean.get(name) != getattr(template, name)]
            if locked:
                raise _invalid({name: _("Coupons have been issued with this: it cannot "
                                        "change any more.") for name in locked})
        _set_inventory(session, template, clean.get("inventory_total"), issued)
        for name in EDITABLE:
            setattr(template, name, clean[name])
        if not issued:
            for name in TERMS:
                setattr(template, name, clean[name])
        template.updated_at = clock.now()
        record(session, operator_id, "coupon_template.update", template, before=before,
               after=_snapshot(template))
        return template


def _set_inventory(session, template, new_total, issued) -> None:
    if new_total == template.inventory_total:
        return
    if new_total is not None and new_total < issued:
        raise _invalid({"inventory_total": _("%(n)d are already issued: the inventory "
                                             "cannot be lower.", n=issued)})
    # Relative to what is left now, in one conditional UPDATE: issues running meanwhile
    # keep their count.
    if new_total is None:
        values = {"inventory_total": None, "inventory_left": None}
    elif template.inventory_total is None:
        values = {"inventory_total": new_total, "inventory_left": new_total - issued}
    else:
        delta = new_total - template.inventory_total
        values = {"inventory_total": new_total,
                  "inventory_left": CouponTemplate.inventory_left + delta}
    changed = session.execute(
        update(CouponTemplate).where(CouponTemplate.id == template.id,
                                     CouponTemplate.inventory_total.is_(None)
                                     if template.inventory_total is None else
                                     CouponTemplate.inventory_total == template.inventory_total)
        .values(**values)).rowcount
    if changed == 0:
        raise CouponError(CouponErrorCode.LOCKED,
                          _("The inventory changed meanwhile. Reload and try again."))
    session.refresh(template)


def set_template_status(session: Session, template_id: int, status: str, *,
                        operator_id: int) -> CouponTemplate:
    if status not in (TemplateStatus.ACTIVE, TemplateStatus.INACTIVE):
        raise _invalid({"status": _("Choose active or inactive.")})
    with transaction(session):
        template = session.get(CouponTemplate, template_id)
        if template is None:
            raise CouponError(CouponErrorCode.NOT_FOUND, _("There is no such coupon."))
        before = {"status": template.status}
        template.status = status
        record(session, operator_id, f"coupon_template.{status}", template, before=before,
               after={"status": status})
        return template


@dataclass
class TemplateStats:
    issued: int = 0
    available: int = 0
    used: int = 0
    expired: int = 0

    @property
    def redemption_rate(self) -> float | None:
        return self.used / self.issued if self.issued else None


def template_list(session: Session) -> list[tuple[CouponTemplate, TemplateStats]]:
    """Every template with issued / available / used / expired counts, in two queries."""
    now = clock.now()
    state = case(
        (Coupon.status == CouponStatus.USED, "used"),
        ((Coupon.status == CouponStatus.EXPIRED) | (Coupon.valid_until <= now), "expired"),
        else_="available")
    stats: dict[int, TemplateStats] = {}
    for template_id, name, count in session.execute(
            select(Coupon.template_id, state, func.count(Coupon.id))
            .group_by(Coupon.template_id, state)):
        s = stats.setdefault(template_id, TemplateStats())
        setattr(s, name, count)
        s.issued += count
    templates = session.scalars(select(CouponTemplate).order_by(CouponTemplate.id.desc()))
    return [(t, stats.get(t.id, TemplateStats())) for t in templates]


def active_templates(session: Session) -> list[CouponTemplate]:
    return list(session.scalars(select(CouponTemplate).where(
        CouponTemplate.status == TemplateStatus.ACTIVE).order_by(CouponTemplate.title)))


def active_packages(session: Session) -> list[CouponPackage]:
    return list(session.scalars(select(CouponPackage).where(
        CouponPackage.status == TemplateStatus.ACTIVE).order_by(CouponPackage.name)))


# --- staff: packages and claim links ---------------------------------------------------

def create_package(session: Session, name: str, items: list[tuple[int, int]], *,
                   operator_id: int) -> CouponPackage:
    name = " ".join((name or "").split())
    errors = {}
    if not name:
        errors["name"] = _("Give the package a name.")
    merged: dict[int, int] = {}
    for template_id, quantity in items:
        if quantity < 1 or quantity > MAX_PER_ISSUE:
            errors["items"] = _("Each quantity is from 1 to %(n)d.", n=MAX_PER_ISSUE)
        merged[template_id] = merged.get(template_id, 0) + quantity
    if not merged:
        errors["items"] = _("Add at least one coupon.")
    if errors:
        raise _invalid(errors)
    with transaction(session):
        found = set(session.scalars(select(CouponTemplate.id)
                                    .where(CouponTemplate.id.in_(merged))))
        if found != set(merged):
            raise _invalid({"items": _("Choose coupons from the list.")})
        package = CouponPackage(name=name, items=[
            PackageItem(template_id=t, quantity=q) for t, q in sorted(merged.items())])
        session.add(package)
        session.flush()
        record(session, operator_id, "coupon_package.create", package,
               after={"name": name, "items": sorted(merged.items())})
        return package


def set_package_status(session: Session, package_id: int, active: bool, *,
                       operator_id: int) -> None:
    with transaction(session):
        package = session.get(CouponPackage, package_id)
        if package is None:
            raise CouponError(CouponErrorCode.NOT_FOUND, _("There is no such package."))
        package.status = TemplateStatus.ACTIVE if active else TemplateStatus.INACTIVE
        record(session, operator_id, "coupon_package.status", package,
               after={"status": package.status})


def packages(session: Session) -> list[CouponPackage]:
    return list(session.scalars(select(CouponPackage).options(
        selectinload(CouponPackage.items).selectinload(PackageItem.template))
        .order_by(CouponPackage.id.desc())))


def create_claim_link(session: Session, template_id: int, registration_page_id: int | None,
                      *, operator_id: int) -> ClaimLink:
    with transaction(session):
        if session.get(CouponTemplate, template_id) is None:
            raise CouponError(CouponErrorCode.NOT_FOUND, _("There is no such coupon."))
        link = ClaimLink(token=secrets.token_urlsafe(9), template_id=template_id,
                         registration_page_id=registration_page_id or None)
        session.add(link)
        session.flush()
        record(session, operator_id, "claim_link.create", link,
               after={"template_id": template_id, "page_id": registration_page_id})
        return link


def set_claim_link_active(session: Session, link_id: int, active: bool, *,
                          operator_id: int) -> ClaimLink:
    with transaction(session):
        link = session.get(ClaimLink, link_id)
        if link is None:
            raise CouponError(CouponErrorCode.NOT_FOUND, _("This offer is not available."))
        link.is_active = active
        record(session, operator_id, "claim_link.status", link, after={"active": active})
        return link


def claim_links(session: Session, template_id: int) -> list[ClaimLink]:
    return list(session.scalars(select(ClaimLink).options(
        selectinload(ClaimLink.registration_page))
        .where(ClaimLink.template_id == template_id).order_by(ClaimLink.id)))


def member_coupons(session: Session, member_id: int, limit: int = 50) -> list[Coupon]:
    """For the admin's member page: newest first."""
    return list(session.scalars(select(Coupon).options(selectinload(Coupon.template))
                                .where(Coupon.member_id == member_id)
                                .order_by(Coupon.id.desc()).limit(limit)))


# --- redemption at a till or in a shop ----------------------------------------------------

@dataclass(frozen=True)
class Line:
    product_id: str = ""
    sku_id: str = ""
    category: str = ""
    quantity: int = 1
    amount: int = 0  # the line's total, in minor units


@dataclass
class Check:
    valid: bool
    reason_code: str | None
    discount_minor: int
    currency: str
    coupon: Coupon | None = None


def _lookup(session: Session, code: str, *, for_update: bool = False) -> Coupon | None:
    query = select(Coupon).options(selectinload(Coupon.template)).where(
        Coupon.code == (code or "").replace("-", "").replace(" ", "").upper())
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalar(query)


def discount_for(template: CouponTemplate, lines: list[Line]) -> tuple[str | None, int]:
    """(reason it cannot apply, or None; the discount in minor units) for an order."""
    wanted = set(template.product_ids or [])
    eligible = [ln for ln in lines if not wanted or ln.product_id in wanted
                or ln.sku_id in wanted]
    if wanted and not eligible:
        return "no_eligible_product", 0
    subtotal = sum(ln.amount for ln in eligible)
    if template.min_spend_minor and subtotal < template.min_spend_minor:
        return "min_spend", 0
    if template.kind == "cash":
        return None, min(template.amount_minor, subtotal)
    if template.kind == "discount":
        off = Money(subtotal, template.currency).multiply(
            Decimal(template.percent_off) / 10000).minor
        return None, min(off, template.cap_minor) if template.cap_minor else off
    # A gift: the cheapest eligible unit is free when the products are named; otherwise
    # the till hands the item over and nothing is taken off the order.
    units = [ln.amount // ln.quantity for ln in eligible if ln.quantity > 0] if wanted else []
    return None, min(units) if units else 0


def check(session: Session, *, code: str, member_id: int | None, channel: str,
          lines: list[Line], for_update: bool = False) -> Check:
    coupon = _lookup(session, code, for_update=for_update)
    if coupon is None:
        return Check(False, "unknown", 0, "")
    template = coupon.template
    currency = template.currency

    def no(reason):
        return Check(False, reason, 0, currency, coupon)

    if member_id is not None and coupon.member_id != member_id:
        return no("other_member")
    state = coupon.state()
    if state == CouponStatus.USED:
        return no("used")
    if state == CouponStatus.EXPIRED:
        return no("expired")
    if state == "not_yet_valid":
        return no("not_yet_valid")
    if template.status != TemplateStatus.ACTIVE:
        return no("inactive")
    if channel not in (template.channels or []):
        return no("wrong_channel")
    reason, discount = discount_for(template, lines)
    if reason:
        return no(reason)
    return Check(True, None, discount, currency, coupon)


def redeem(session: Session, *, code: str, member_id: int | None, channel: str,
           lines: list[Line], order_external_id: str, client_id: int,
           store_id: int) -> tuple[Redemption | None, Check]:
    """Use a coupon on an order: once. The same code and order again returns the first
    redemption (a till that retries after a timeout does not fail or double count)."""
    with transaction(session):
        # Lock the coupon first: a retry of the same order waits here for the first
        # attempt, then finds its redemption.
        coupon = _lookup(session, code, for_update=True)
        if coupon is not None:
            earlier = session.scalar(select(Redemption).where(
                Redemption.coupon_id == coupon.id,
                Redemption.order_external_id == order_external_id,
                Redemption.store_id == store_id,
                Redemption.rolled_back_at.is_(None)))
            if earlier is not None:
                return earlier, Check(True, None, earlier.discount_minor, earlier.currency,
                                      coupon)
        result = check(session, code=code, member_id=member_id, channel=channel,
                       lines=lines)
        if not result.valid:
            return None, result
        # The conditional UPDATE decides between two tills using the same code at once.
        used = session.execute(update(Coupon).where(
            Coupon.id == result.coupon.id, Coupon.status == CouponStatus.AVAILABLE)
            .values(status=CouponStatus.USED, used_at=clock.now())).rowcount
        if used == 0:
            return None, Check(False, "used", 0, result.currency, result.coupon)
        redemption = Redemption(
            coupon_id=result.coupon.id, order_external_id=order_external_id,
            client_id=client_id, store_id=store_id, channel=channel,
            discount_minor=result.discount_minor, currency=result.currency,
            lines=[line.__dict__ for line in lines])
        session.add(redemption)
        session.flush()
        return redemption, result


def rollback(session: Session, redemption_id: int, *, store_id: int) -> Redemption:
    """Undo a redemption (a refund), once: the coupon is available again while valid."""
    with transaction(session):
        redemption = session.scalar(select(Redemption).where(Redemption.id == redemption_id)
                                    .with_for_update().execution_options(populate_existing=True))
        if redemption is None or redemption.store_id != store_id:
            raise CouponError(CouponErrorCode.NOT_FOUND, _("There is no such redemption."))
        if redemption.rolled_back_at is not None:
            raise CouponError(CouponErrorCode.LOCKED,
                              _("This redemption was already rolled back."))
        redemption.rolled_back_at = clock.now()
        session.execute(update(Coupon).where(Coupon.id == redemption.coupon_id,
                                             Coupon.status == CouponStatus.USED)
                        .values(status=CouponStatus.AVAILABLE, used_at=None))
        return redemption


# --- issuing to many members at once --------------------------------------------------------

def issue_bulk(session: Session, *, template_id: int, member_ids: list[int], source: Source,
               key: str, notify: bool = True) -> int:
    """One coupon of a template to each member, in a few set-based statements.

    Per member the key is `key:member_id`, so a rerun after a failure gives only what is
    missing. Members at their per-member limit or without a card are skipped; if the
    inventory cannot cover everyone else, nothing is issued. Returns how many were given."""
    from sqlalchemy import insert

    from portal.members.models import MemberCard

    with transaction(session):
        template = session.get(CouponTemplate, template_id)
        if template is None:
            raise CouponError(CouponErrorCode.NOT_FOUND, _("There is no such coupon."))
        _check_active(template)
        wanted = set(member_ids)
        members = set(session.scalars(select(MemberCard.member_id).distinct()
                                      .where(MemberCard.member_id.in_(wanted))))
        done = {int(k.rsplit(":", 1)[1]) for k in session.scalars(
            select(IssueBatch.key).where(IssueBatch.key.in_([f"{key}:{m}" for m in members])))}
        todo = sorted(members - done)
        if not todo:
            return 0
        known = set(session.scalars(select(MemberTemplateCount.member_id).where(
            MemberTemplateCount.template_id == template.id,
            MemberTemplateCount.member_id.in_(todo))))
        fresh = [{"member_id": m, "template_id": template.id, "issued": 0}
                 for m in todo if m not in known]
        if fresh:
            session.execute(insert(MemberTemplateCount), fresh)
        condition = [MemberTemplateCount.template_id == template.id,
                     MemberTemplateCount.member_id.in_(todo)]
        if template.per_member_limit is not None:
            condition.append(MemberTemplateCount.issued + 1 <= template.per_member_limit)
        allowed = sorted(session.scalars(
            update(MemberTemplateCount).where(*condition)
            .values(issued=MemberTemplateCount.issued + 1)
            .returning(MemberTemplateCount.member_id)))
        if not allowed:
            return 0
        _take_stock(session, template, len(allowed))
        now = clock.now()
        start, end = validity(template, now)
        batches = session.execute(
            insert(IssueBatch).returning(IssueBatch.id, IssueBatch.member_id,
                                         sort_by_parameter_order=True),
            [{"key": f"{key}:{m}", "member_id": m, "template_id": template.id,
              "quantity": 1, "source": source.kind, "source_ref": source.ref,
              "reason": source.reason, "created_at": now} for m in allowed]).all()
        session.execute(insert(Coupon), [
            {"code": new_code(), "template_id": template.id, "member_id": member_id,
             "batch_id": batch_id, "status": CouponStatus.AVAILABLE, "valid_from": start,
             "valid_until": end, "issued_at": now} for batch_id, member_id in batches])
        if notify:
            from portal.notifications import services as notifications

            notifications.send(session, MessageKind.COUPON_ARRIVED, allowed,
                               {"titles": [template.title]})
        return len(allowed)
