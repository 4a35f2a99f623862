"""Coupon rules: templates and their edit rules, issuing (the one service every gift uses),
the wallet, claim links."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

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
    TemplateStatus,
    ValidityKind,
)
from portal.db import transaction
from portal.members.models import Member
from portal.staff.services import record

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at a till
CODE_LENGTH = 12  # 60 bits: not guessable
MAX_PER_ISSUE = 100


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
          operator_id: int | None = None) -> list[Coupon]:
    """Give a member `quantity` of a template, or of a package, all or nothing.

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
                      operator_id=operator_id)
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
           operator_id) -> list[Coupon]:
    with transaction(session):
        done = issued_for_key(session, key)
        if done is not None:
            return done
        member = session.get(Member, member_id)
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
            start, end = validity(template, now)
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
    return sorted(((item.template, item.quantity * quantity) for item in package.items),
                  key=lambda line: line[0].id)


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
                          _("You already have the most “%(title)s” one member can get.",
                            title=template.title), limit=template.per_member_limit)


def _notify(session: Session, member: Member, coupons: list[Coupon], lines) -> None:
    from portal.notifications import services as notifications

    titles = ", ".join(f"{t.title} × {n}" if n > 1 else t.title for t, n in lines)
    notifications.notify_member(
        session, member,
        title=_("New coupon in your wallet"),
        body=_("You received: %(titles)s.", titles=titles),
        link="/wallet")


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
