"""Buying a paid benefit package (spec 2.2): what a member may buy now, the price that
applies, checkout through payments, the paid period, gifts, renewals and refunds.

The price that applies now, first match wins (a price left empty falls back to the
original price):
1. the limited-time price, while its window runs (start included, end excluded);
2. the early-renewal price, if the member has a paid period of this package that has not
   ended (running or still to come);
3. the repeat-purchase price, if the member bought the package before;
4. the first-purchase price.

The period (the merchant-wide validity mode, in the merchant's time zone), for a 3-day
package bought at 23:00 on Dec 8:
- immediate: from the payment, until 23:00 on Dec 11;
- purchase_day: from 00:00 on Dec 8, until 23:59 on Dec 10 (ends 00:00 Dec 11, excluded);
- next_day: from 00:00 on Dec 9, until 23:59 on Dec 11.
An early renewal starts when the member's last period of the package ends.

Gifts: the first purchase gets the first-purchase gift; a renewal the early-renewal gift
(given at once, or when the renewed period starts, as the gift says); any other later
purchase the repeat gift. The tier upgrade and card extension come with the gifts."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session, selectinload

from portal import clock, jobs, ledger
from portal.benefits.models import (
    Benefit,
    BenefitPackage,
    BenefitPackageItem,
    BenefitStatus,
    PackageItemKind,
    PackagePurchase,
    PackageRule,
    PackageStatus,
    PurchaseStatus,
)
from portal.benefits.packages import (
    BENEFIT_KINDS,
    PackageError,
    PackageErrorCode,
    ValidityMode,
    settings,
)
from portal.coupons.errors import CouponError
from portal.coupons.models import Coupon, CouponStatus, IssueBatch
from portal.db import transaction
from portal.ledger import AccountKind
from portal.members.models import Member, MemberCard, Segment, Tier, member_tags
from portal.payments import services as payments
from portal.payments.errors import FulfilmentRefused, PaymentError, PaymentErrorCode
from portal.wallet import schedule as schedules

log = logging.getLogger(__name__)

ONLINE = "ONLINE"
COUNTED = (PurchaseStatus.PENDING, PurchaseStatus.PAID, PurchaseStatus.REFUNDED)
# Package items that count while the period runs (read by the basket quote).
RUNNING_KINDS = (PackageItemKind.MEMBER_PRICE, PackageItemKind.DISCOUNT,
                 PackageItemKind.MULTIPLIER, PackageItemKind.PROMOTION)

PRICE_LABELS = {
    "original": _l("Price"),
    "first": _l("First purchase price"),
    "repeat": _l("Repeat purchase price"),
    "renewal": _l("Early renewal price"),
    "promo": _l("Limited-time price"),
}


# --- the period ---------------------------------------------------------------------------

def _add_days(start: datetime, days: int, mode: str) -> datetime:
    if mode == ValidityMode.IMMEDIATE:
        return start + timedelta(days=days)
    # Day-counted modes end at a local midnight, whatever the clocks do in between.
    return clock.start_of_local_day(clock.local(start).date() + timedelta(days=days))


def period(mode: str, paid_at: datetime, days: int, *,
           after: datetime | None = None) -> tuple[datetime, datetime]:
    """[starts_at, ends_at) of a `days`-day period paid at `paid_at` under the validity
    mode; `after`: the end of the member's last period of the package (a renewal starts
    there)."""
    day = clock.local(paid_at).date()
    if mode == ValidityMode.PURCHASE_DAY:
        start = clock.start_of_local_day(day)
    elif mode == ValidityMode.NEXT_DAY:
        start = clock.start_of_local_day(day + timedelta(days=1))
    else:
        start = paid_at
    if after is not None and after > start:
        start = after
    return start, _add_days(start, days, mode)


# --- who may buy what ---------------------------------------------------------------------

def _on_sale(package: BenefitPackage, at: datetime, channel: str) -> bool:
    return (package.status == PackageStatus.ACTIVE and channel in (package.channels or [])
            and schedules.is_open(package, at))


def available(session: Session, member_id: int, *, at: datetime | None = None,
              channel: str = ONLINE) -> list[BenefitPackage]:
    """The packages the member may buy now: active, on the channel, in their sales period
    and purchase dates and times, and for the member's audience (card plans, tiers,
    segments, tags: each filled group narrows it; students-only: verified students). A
    fixed number of queries."""
    at = at or clock.now()
    candidates = [p for p in session.scalars(
        select(BenefitPackage).options(selectinload(BenefitPackage.rules),
                                       selectinload(BenefitPackage.items))
        .where(BenefitPackage.status == PackageStatus.ACTIVE).order_by(BenefitPackage.id))
        if _on_sale(p, at, channel) and p.rules]
    if not candidates:
        return []
    if any(p.plan_ids or p.tier_ids for p in candidates):
        cards = session.execute(select(MemberCard.plan_id, MemberCard.tier_id).where(
            MemberCard.member_id == member_id)).all()
        plans, tiers = {c.plan_id for c in cards}, {c.tier_id for c in cards}
        candidates = [p for p in candidates
                      if (not p.plan_ids or plans & set(p.plan_ids))
                      and (not p.tier_ids or tiers & set(p.tier_ids))]
    if any(p.tag_ids for p in candidates):
        tags = set(session.scalars(select(member_tags.c.tag_id)
                                   .where(member_tags.c.member_id == member_id)))
        candidates = [p for p in candidates if not p.tag_ids or tags & set(p.tag_ids)]
    if any(p.students_only for p in candidates):
        from portal.students.services import is_verified_student

        student = is_verified_student(session, member_id, at)
        candidates = [p for p in candidates if not p.students_only or student]
    segment_ids = sorted({s for p in candidates for s in p.segment_ids or []})
    if segment_ids:
        from portal.members import segments

        rules = session.execute(select(Segment.id, Segment.match, Segment.rules)
                                .where(Segment.id.in_(segment_ids))).all()
        inside: set[int] = set()
        if rules:
            # One SELECT answers "is the member in segment N" for every segment at once.
            row = session.execute(select(*(
                exists().where(Member.id == member_id, segments.condition(m, r))
                .label(f"s{i}") for i, m, r in rules))).one()
            inside = {i for (i, _m, _r), yes in zip(rules, row, strict=True) if yes}
        candidates = [p for p in candidates
                      if not p.segment_ids or inside & set(p.segment_ids)]
    return candidates


@dataclass
class Standing:
    """What the member has had of one package: whether they bought it before and the end
    of their last paid period that has not ended yet."""

    bought_before: bool = False
    running_until: datetime | None = None


def standings(session: Session, member_id: int, package_ids: list[int],
              at: datetime | None = None) -> dict[int, Standing]:
    """Per package, in one query."""
    at = at or clock.now()
    out = {pid: Standing() for pid in package_ids}
    if not package_ids:
        return out
    rows = session.execute(
        select(PackagePurchase.package_id, PackagePurchase.status,
               func.max(PackagePurchase.ends_at))
        .where(PackagePurchase.member_id == member_id,
               PackagePurchase.package_id.in_(package_ids),
               PackagePurchase.status.in_(COUNTED))
        .group_by(PackagePurchase.package_id, PackagePurchase.status)).all()
    for pid, status, ends_at in rows:
        out[pid].bought_before = True
        if status == PurchaseStatus.PAID and ends_at and ends_at > at:
            out[pid].running_until = ends_at
    return out


@dataclass
class Price:
    rule: PackageRule
    kind: str                  # original, first, repeat, renewal, promo
    minor: int
    is_renewal: bool
    is_first: bool
    currency: str = ""
    gifts: list[BenefitPackageItem] = field(default_factory=list)

    @property
    def label(self) -> str:
        return str(PRICE_LABELS[self.kind])

    @property
    def is_reduced(self) -> bool:
        return self.minor < self.rule.original_minor


def price(rule: PackageRule, standing: Standing, at: datetime) -> tuple[str, int]:
    """(kind, minor) of the price that applies now (see the module's docstring)."""
    if rule.promo_minor is not None and rule.promo_starts_at and rule.promo_ends_at and \
            rule.promo_starts_at <= at < rule.promo_ends_at:
        return "promo", rule.promo_minor
    for kind, value, applies in (
            ("renewal", rule.renewal_minor, standing.running_until is not None),
            ("repeat", rule.repeat_minor, standing.bought_before),
            ("first", rule.first_minor, True)):
        if applies:
            return (kind, value) if value is not None else ("original", rule.original_minor)
    return "original", rule.original_minor


def applies_to(item: BenefitPackageItem, rule: PackageRule) -> bool:
    return not item.rule_positions or rule.position in item.rule_positions


def gift_items(package: BenefitPackage, rule: PackageRule, *, is_first: bool,
               is_renewal: bool) -> list[BenefitPackageItem]:
    """The package's gifts for a purchase under `rule`: first-purchase, early-renewal or
    repeat gift (one kind per purchase)."""
    kind = PackageItemKind.FIRST_GIFT if is_first else \
        PackageItemKind.RENEWAL_GIFT if is_renewal else PackageItemKind.REPEAT_GIFT
    return [i for i in package.items if i.kind == kind and applies_to(i, rule)]


def quote(package: BenefitPackage, rule: PackageRule, standing: Standing,
          at: datetime | None = None) -> Price:
    at = at or clock.now()
    kind, minor = price(rule, standing, at)
    is_renewal, is_first = standing.running_until is not None, not standing.bought_before
    return Price(rule, kind, minor, is_renewal, is_first, package.currency,
                 gift_items(package, rule, is_first=is_first, is_renewal=is_renewal))


def offers(session: Session, member_id: int, at: datetime | None = None
           ) -> list[tuple[BenefitPackage, Standing, list[Price]]]:
    """The packages the member may buy, each with the price of each sales rule now."""
    at = at or clock.now()
    packages = available(session, member_id, at=at)
    standing = standings(session, member_id, [p.id for p in packages], at)
    return [(p, standing[p.id], [quote(p, r, standing[p.id], at) for r in p.rules])
            for p in packages]


# --- buying -------------------------------------------------------------------------------

def start(session: Session, *, member_id: int, package_id: int, rule_id: int,
          agreed: bool, channel: str = ONLINE) -> PackagePurchase:
    """A pending purchase and its payment, at the price that applies now.

    The member's row is locked while the price is decided: of two checkouts at once, the
    second sees the first's pending purchase and is not a first purchase any more."""
    with transaction(session):
        if not agreed:
            message = _("Read and accept the purchase agreement to continue.")
            raise PackageError(PackageErrorCode.AGREEMENT, message,
                               errors={"agree": message})
        member = session.scalar(select(Member).where(Member.id == member_id)
                                .with_for_update().execution_options(populate_existing=True))
        at = clock.now()
        package = next((p for p in available(session, member_id, at=at, channel=channel)
                        if p.id == package_id), None) if member else None
        rule = next((r for r in package.rules if r.id == rule_id), None) if package else None
        if package is None or rule is None:
            raise PackageError(PackageErrorCode.NOT_AVAILABLE,
                               _("This package is not on sale to you now."))
        offer = quote(package, rule, standings(session, member_id, [package.id], at)[package.id],
                      at)
        purchase = PackagePurchase(package_id=package.id, rule_id=rule.id, member_id=member_id,
                                   price_kind=offer.kind, price_minor=offer.minor,
                                   currency=package.currency, is_renewal=offer.is_renewal,
                                   is_first=offer.is_first, channel=channel)
        session.add(purchase)
        session.flush()
        if offer.minor == 0:
            # Free (a 100% first-purchase offer): nothing to pay, the period starts now.
            purchase.paid_at = at
            _fulfil_purchase(session, purchase)
            return purchase
        payment = payments.create(session, purpose="package", purpose_id=purchase.id,
                                  member_id=member_id, amount_minor=offer.minor,
                                  currency=package.currency,
                                  description=_("Benefit package: %(name)s",
                                                name=package.name))
        purchase.payment_id = payment.id
        return purchase


def _last_end(session: Session, purchase: PackagePurchase) -> datetime | None:
    return session.scalar(select(func.max(PackagePurchase.ends_at)).where(
        PackagePurchase.member_id == purchase.member_id,
        PackagePurchase.package_id == purchase.package_id,
        PackagePurchase.status == PurchaseStatus.PAID, PackagePurchase.id != purchase.id))


def _fulfil_purchase(session: Session, purchase: PackagePurchase) -> None:
    """Start the paid period and give (or schedule) the grants, in the caller's
    transaction."""
    # Two payments of one member's purchases at once must stack, not overlap.
    session.scalar(select(Member.id).where(Member.id == purchase.member_id).with_for_update())
    rule = session.get(PackageRule, purchase.rule_id)
    paid_at = purchase.paid_at or clock.now()
    last = _last_end(session, purchase)
    after = last if last and last > paid_at else None
    purchase.starts_at, purchase.ends_at = period(settings(session).validity_mode, paid_at,
                                                  rule.duration_days, after=after)
    purchase.status, purchase.paid_at = PurchaseStatus.PAID, paid_at
    purchase.grants_due_at = paid_at
    if purchase.is_renewal:
        package = session.get(BenefitPackage, purchase.package_id)
        gift = next(iter(gift_items(package, rule, is_first=False, is_renewal=True)), None)
        if after is not None and gift is not None and gift.distribution == "on_start":
            purchase.grants_due_at = purchase.starts_at
    session.flush()
    if purchase.grants_due_at <= clock.now():
        grant(session, purchase.id)


# --- grants -------------------------------------------------------------------------------

def grant(session: Session, purchase_id: int) -> bool:
    """Give the purchase's gifts, tier upgrade and card extension, once: `granted_at` is
    set by a conditional UPDATE, so the tick and a payment at once give it once."""
    now = clock.now()
    taken = session.execute(update(PackagePurchase).where(
        PackagePurchase.id == purchase_id, PackagePurchase.granted_at.is_(None),
        PackagePurchase.status == PurchaseStatus.PAID).values(granted_at=now)).rowcount
    if not taken:
        return False
    purchase = session.get(PackagePurchase, purchase_id)
    session.refresh(purchase)
    package = session.get(BenefitPackage, purchase.package_id)
    rule = session.get(PackageRule, purchase.rule_id)
    given = [_give_gift(session, purchase, item)
             for item in gift_items(package, rule, is_first=purchase.is_first,
                                    is_renewal=purchase.is_renewal)]
    for item in package.items:
        if not applies_to(item, rule):
            continue
        if item.kind == PackageItemKind.TIER_UPGRADE and item.tier_id:
            _upgrade(session, purchase.member_id, item.tier_id)
            given.append({"item_id": item.id, "name": item.name, "given": True})
        elif item.kind == PackageItemKind.CARD_EXTENSION and item.benefit_id:
            days = _extend(session, purchase, item.benefit_id, 1)
            given.append({"item_id": item.id, "name": item.name, "days": days,
                          "given": bool(days)})
    purchase.gifts = given
    return True


def _give_gift(session: Session, purchase: PackagePurchase,
               item: BenefitPackageItem) -> dict:
    """Points and coupons of one gift. A paid period is never undone for a gift that ran
    out: it is noted as not given, for staff to see."""
    out = {"item_id": item.id, "name": item.name, "kind": item.kind, "points": item.points,
           "given": True}
    key = f"package:{purchase.id}:item:{item.id}"
    if item.points:
        from portal.loyalty.services import points_expiry, rule_for_member

        account = ledger.account(session, AccountKind.POINTS, "member", purchase.member_id)
        ledger.post(session, account, item.points, reason="package", key=key,
                    source=("package", purchase.id),
                    expires_at=points_expiry(rule_for_member(session, purchase.member_id),
                                             clock.now()))
    if item.coupon_template_id or item.coupon_package_id:
        from portal.coupons import services as coupons

        try:
            with session.begin_nested():
                coupons.issue(session, member_id=purchase.member_id,
                              template_id=item.coupon_template_id,
                              package_id=item.coupon_package_id,
                              source=coupons.Source("package", ref=str(purchase.id)), key=key)
        except CouponError as e:
            log.warning("package purchase %s: gift %s not given: %s", purchase.id, item.id, e)
            out.update(given=False, why=str(e)[:200])
    return out


def _upgrade(session: Session, member_id: int, tier_id: int) -> None:
    from portal.wallet.topups import _upgrade as upgrade_card

    tier = session.get(Tier, tier_id)
    card = session.scalar(select(MemberCard).where(MemberCard.member_id == member_id,
                                                   MemberCard.plan_id == tier.plan_id))
    if card is not None:
        upgrade_card(session, card, tier_id)


def _extend(session: Session, purchase: PackagePurchase, benefit_id: int, sign: int) -> int:
    """Move the expiry of the member's relative-validity cards (in the benefit's plans) by
    the benefit's days; cards that never expire are left alone. Returns the days."""
    from portal.members.models import CardPlan

    benefit = session.get(Benefit, benefit_id)
    if benefit is None or not benefit.extension_days or benefit.status != BenefitStatus.ACTIVE:
        return 0
    cards = session.scalars(select(MemberCard).join(CardPlan, CardPlan.id == MemberCard.plan_id)
                            .where(MemberCard.member_id == purchase.member_id,
                                   CardPlan.validity_days.is_not(None),
                                   MemberCard.expires_at.is_not(None))).all()
    moved = 0
    for card in cards:
        if benefit.plan_ids and card.plan_id not in benefit.plan_ids:
            continue
        card.expires_at += timedelta(days=sign * benefit.extension_days)
        moved = benefit.extension_days
    return moved


@jobs.on_tick("package_grants")
def deliver_due(session: Session, limit: int = 200) -> int:
    """Grants of renewed periods that have started (each given once)."""
    due = session.scalars(select(PackagePurchase.id).where(
        PackagePurchase.status == PurchaseStatus.PAID, PackagePurchase.granted_at.is_(None),
        PackagePurchase.grants_due_at <= clock.now()).order_by(PackagePurchase.id)
        .limit(limit)).all()
    session.rollback()
    done = 0
    for purchase_id in due:
        with transaction(session):
            done += grant(session, purchase_id)
    return done


# --- the member's packages ----------------------------------------------------------------

@dataclass
class Held:
    purchase: PackagePurchase
    state: str                       # running, upcoming, ended, refunded
    items: list[BenefitPackageItem]  # what the period includes (its rule's items)


def mine(session: Session, member_id: int, at: datetime | None = None) -> list[Held]:
    """The member's paid and refunded periods, newest package first and each package's
    periods in order, in three queries."""
    at = at or clock.now()
    rows = session.scalars(select(PackagePurchase).options(
        selectinload(PackagePurchase.package).selectinload(BenefitPackage.items),
        selectinload(PackagePurchase.rule))
        .where(PackagePurchase.member_id == member_id,
               PackagePurchase.status.in_((PurchaseStatus.PAID, PurchaseStatus.REFUNDED)))
        .order_by(PackagePurchase.package_id.desc(), PackagePurchase.starts_at,
                  PackagePurchase.id)).all()
    out = []
    for p in rows:
        state = "refunded" if p.status == PurchaseStatus.REFUNDED else \
            "ended" if p.ends_at <= at else "upcoming" if p.starts_at > at else "running"
        out.append(Held(p, state, [i for i in p.package.items if applies_to(i, p.rule)]))
    return out


def active_package_benefit_ids(session: Session, member_id: int, at: datetime | None = None
                               ) -> set[int]:
    """Ids of the (active) member price, discount, multiplier and promotion benefits that the
    member's running package periods give at `at`, in one query: the basket quote adds them
    to the member's own."""
    at = at or clock.now()
    rows = session.execute(
        select(BenefitPackageItem.benefit_id, BenefitPackageItem.rule_positions,
               PackageRule.position)
        .join(PackagePurchase, PackagePurchase.package_id == BenefitPackageItem.package_id)
        .join(PackageRule, PackageRule.id == PackagePurchase.rule_id)
        .join(Benefit, Benefit.id == BenefitPackageItem.benefit_id)
        .where(PackagePurchase.member_id == member_id,
               PackagePurchase.status == PurchaseStatus.PAID,
               PackagePurchase.starts_at <= at, PackagePurchase.ends_at > at,
               BenefitPackageItem.kind.in_([str(k) for k in RUNNING_KINDS]),
               Benefit.status == BenefitStatus.ACTIVE,
               Benefit.kind.in_([str(BENEFIT_KINDS[k]) for k in RUNNING_KINDS]))).all()
    return {b for b, positions, position in rows if not positions or position in positions}


# --- the payment's purpose ----------------------------------------------------------------

def _locked(session: Session, payment) -> PackagePurchase:
    return session.scalar(select(PackagePurchase).where(
        PackagePurchase.id == payment.purpose_id)
        .with_for_update().execution_options(populate_existing=True))


def _fulfil(session: Session, payment) -> None:
    purchase = _locked(session, payment)
    if purchase.status == PurchaseStatus.PAID:
        return
    if purchase.status not in (PurchaseStatus.PENDING, PurchaseStatus.CANCELLED):
        raise FulfilmentRefused(f"purchase is {purchase.status}")
    # A payment that came in after its checkout was given up still buys the period.
    purchase.paid_at = payment.paid_at or clock.now()
    _fulfil_purchase(session, purchase)


def _release(session: Session, payment) -> None:
    purchase = _locked(session, payment)
    if purchase.status == PurchaseStatus.PENDING:
        purchase.status = PurchaseStatus.CANCELLED


def used_coupons(session: Session, purchase_id: int) -> int:
    return session.scalar(select(func.count(Coupon.id)).join(
        IssueBatch, IssueBatch.id == Coupon.batch_id).where(
        IssueBatch.source == "package", IssueBatch.source_ref == str(purchase_id),
        Coupon.status == CouponStatus.USED)) or 0


def _refund(session: Session, payment, amount_minor: int) -> dict:
    """Refund the whole price of a package: refused online when the package restricts
    refunds and a coupon it gave has been used (an offline refund at the till is not
    restricted). Takes back the unused coupons, the points (as far as they are left) and
    the card extension; the period stops counting."""
    purchase = _locked(session, payment)
    if purchase.status != PurchaseStatus.PAID:
        raise PaymentError(PaymentErrorCode.NOT_REFUNDABLE,
                           _("This package purchase cannot be refunded."))
    if amount_minor != payment.refundable_minor:
        raise PaymentError(PaymentErrorCode.NOT_REFUNDABLE,
                           _("A package is refunded whole: refund %(amount)s.",
                             amount=_money(payment.refundable_minor, payment.currency)),
                           field="amount")
    package = session.get(BenefitPackage, purchase.package_id)
    if package.refund_restricted and used_coupons(session, purchase.id):
        raise PaymentError(PaymentErrorCode.NOT_REFUNDABLE,
                           _("A coupon from this package has been used: the order cannot be "
                             "refunded online."))
    voided = session.execute(update(Coupon).where(
        Coupon.status == CouponStatus.AVAILABLE,
        Coupon.batch_id.in_(select(IssueBatch.id).where(
            IssueBatch.source == "package", IssueBatch.source_ref == str(purchase.id))))
        .values(status=CouponStatus.EXPIRED)).rowcount
    points_back = 0
    points = sum(g.get("points") or 0 for g in purchase.gifts or [] if g.get("given"))
    if points and purchase.granted_at:
        account = ledger.account(session, AccountKind.POINTS, "member", purchase.member_id)
        points_back = min(points, account.balance)
        if points_back:
            ledger.post(session, account, -points_back, reason="package_refund",
                        key=f"package:{purchase.id}:refund", source=("package", purchase.id))
    days = 0
    if purchase.granted_at:
        for item in package.items:
            if item.kind == PackageItemKind.CARD_EXTENSION and item.benefit_id and any(
                    g.get("item_id") == item.id and g.get("given") for g in purchase.gifts):
                days += _extend(session, purchase, item.benefit_id, -1)
    purchase.status = PurchaseStatus.REFUNDED
    purchase.grants_due_at = None
    return {"coupons": voided, "points": points_back, "extension_days": days}


def _money(minor: int, currency: str) -> str:
    from portal.web.filters import money

    return money(minor, currency)


def _result_url(session: Session, payment) -> str:
    from flask import url_for

    return url_for("packages.mine")


payments.register("package", label=_l("Benefit package"), fulfil=_fulfil, release=_release,
                  refund=_refund, result_url=_result_url)
