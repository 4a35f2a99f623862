"""Activities: who may take part, claiming a profile completion gift once, and delivering
delayed gifts exactly once from the minute tick."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from portal import clock, jobs, ledger

# Imported first so the tick runs the daily scan before delivering the grants it makes.
from portal.campaigns import reengagement
from portal.campaigns.errors import CampaignError, CampaignErrorCode
from portal.campaigns.models import (
    Activity,
    ActivityGift,
    ActivityKind,
    Grant,
    Participation,
)
from portal.coupons import services as coupons
from portal.coupons.errors import CouponError
from portal.db import transaction
from portal.ledger import AccountKind
from portal.members.models import Member, MemberCard

log = logging.getLogger(__name__)
# A grant is given up (and shown as such on the performance page) a week after its
# activity ends; MAX_ATTEMPTS marks it, and bounds a grant that fails for ever.
MAX_ATTEMPTS = 10_000
GIVE_UP_AFTER = timedelta(days=7)
RETRY_CAP = timedelta(hours=6)


@dataclass
class Eligibility:
    ok: bool
    reason: str | None          # not_running, out_of_scope, incomplete, already_claimed
    missing: list[str]


def missing_fields(activity: Activity, member: Member) -> list[str]:
    """The required fields the member has not completed (a mobile must be verified)."""
    missing = []
    for name in activity.required_fields:
        if name == "mobile":
            if not (member.mobile and member.mobile_verified):
                missing.append(name)
        elif getattr(member, name) in (None, ""):
            missing.append(name)
    return missing


def eligibility(session: Session, activity: Activity, member: Member) -> Eligibility:
    if activity.state() != "active":
        return Eligibility(False, CampaignErrorCode.NOT_RUNNING, [])
    cards = session.scalars(select(MemberCard).where(MemberCard.member_id == member.id)).all()
    in_scope = any((not activity.plan_ids or c.plan_id in activity.plan_ids)
                   and (not activity.tier_ids or c.tier_id in activity.tier_ids)
                   for c in cards)
    if not in_scope:
        return Eligibility(False, CampaignErrorCode.OUT_OF_SCOPE, [])
    if session.scalar(select(Participation.id).where(Participation.activity_id == activity.id,
                                                     Participation.member_id == member.id)):
        return Eligibility(False, CampaignErrorCode.ALREADY_CLAIMED, [])
    missing = missing_fields(activity, member)
    return Eligibility(not missing, CampaignErrorCode.INCOMPLETE if missing else None, missing)


def gift_window(gift: ActivityGift, received_at: datetime) -> tuple[datetime, datetime] | None:
    """The validity the activity sets for a coupon gift (None: the coupon's own)."""
    if gift.validity == "relative":
        return received_at, received_at + timedelta(days=gift.valid_days)
    if gift.validity == "fixed":
        return gift.valid_from, gift.valid_until
    return None


def _refusal(code: CampaignErrorCode, **details) -> CampaignError:
    message = {
        CampaignErrorCode.NOT_RUNNING: _("This activity is not running."),
        CampaignErrorCode.OUT_OF_SCOPE: _("This activity is not for your card or tier."),
        CampaignErrorCode.INCOMPLETE: _("Complete the marked fields first."),
        CampaignErrorCode.ALREADY_CLAIMED: _("You have already claimed this gift."),
    }[code]
    return CampaignError(code, message, **details)


def claim(session: Session, activity_id: int, member_id: int) -> Participation:
    """Claim a profile completion gift: points and instant coupons now, delayed coupons
    as grants. Once per member (a unique row: a double click or two tabs get one); an
    instant coupon out of stock fails the whole claim."""
    try:
        with transaction(session):
            activity = session.scalar(select(Activity).options(selectinload(Activity.gifts))
                                      .where(Activity.id == activity_id))
            member = session.scalar(select(Member).where(Member.id == member_id)
                                    .with_for_update().execution_options(populate_existing=True))
            if activity is None or member is None:
                raise CampaignError(CampaignErrorCode.NOT_FOUND, _("There is no such activity."))
            check = eligibility(session, activity, member)
            if not check.ok:
                raise _refusal(check.reason, missing=check.missing)
            now = clock.now()
            participation = Participation(activity_id=activity.id, member_id=member.id,
                                          points=activity.points)
            session.add(participation)
            session.flush()  # a parallel claim stops here, on the unique constraint
            if activity.points:
                account = ledger.account(session, AccountKind.POINTS, "member", member.id)
                from portal.loyalty.services import points_expiry, rule_for_member

                ledger.post(session, account, activity.points, reason="activity",
                            key=f"activity:{activity.id}", source=("activity", activity.id),
                            expires_at=points_expiry(rule_for_member(session, member.id), now))
            arrived = []
            for gift in activity.gifts:
                grant = Grant(participation_id=participation.id, gift_id=gift.id,
                              member_id=member.id, due_at=reengagement.due_at(gift, now))
                session.add(grant)
                session.flush()
                if gift.delay == "instant" and _deliver(session, grant, gift, activity):
                    arrived.append(gift)
            if activity.notify and (arrived or activity.points):
                _tell_gift(session, activity, member.id, arrived, activity.points)
            return participation
    except IntegrityError:
        session.rollback()
        raise _refusal(CampaignErrorCode.ALREADY_CLAIMED) from None


def _deliver(session: Session, grant: Grant, gift: ActivityGift, activity: Activity) -> bool:
    """Issue a grant's coupons and mark it delivered, in the caller's transaction; False
    if another worker had it already.

    The conditional UPDATE claims the grant: a second worker gets no row and skips it;
    the coupons' idempotency key makes a retry after a crash harmless too. A re-engagement
    gift tells the member "coupon arrived" (when the activity and the merchant's message
    settings say so); a profile completion gift says "gift delivered" instead, once for
    what arrives together."""
    now = clock.now()
    taken = session.execute(update(Grant).where(Grant.id == grant.id,
                                                Grant.delivered_at.is_(None))
                            .values(delivered_at=now)).rowcount
    if taken == 0:
        return False
    coupons.issue(session, member_id=grant.member_id, template_id=gift.template_id,
                  package_id=gift.package_id, quantity=gift.quantity,
                  source=coupons.Source("activity", ref=activity.code),
                  key=f"grant:{grant.id}", valid_window=gift_window(gift, now),
                  notify=activity.notify and activity.kind == ActivityKind.REENGAGEMENT)
    return True


def _tell_gift(session: Session, activity: Activity, member_id: int,
               gifts: list[ActivityGift], points: int = 0) -> None:
    from portal.notifications import services as notifications
    from portal.notifications.models import MessageKind

    titles = gift_titles(session, activity)
    notifications.send(session, MessageKind.GIFT_DELIVERED, member_id, {
        "activity": activity.name, "points": points,
        "titles": [f"{titles[g.id]} × {g.quantity}" if g.quantity > 1 else titles[g.id]
                   for g in gifts]})


def retry_at(attempts: int, now: datetime) -> datetime:
    """When to try a gift that could not be given again: 2, 4, 8 … minutes, at most
    every 6 hours (a merchant restocking in the morning still delivers that day)."""
    return now + min(timedelta(minutes=2 ** attempts), RETRY_CAP)


@jobs.on_tick("deliver_grants")
def deliver_due(session: Session, limit: int = 1000) -> int:
    """Deliver the gifts whose time has come. The grants of one participation due
    together go in one transaction with one message; one that cannot be given (out of
    stock, a limit) is retried later with back-off, without holding up the others, until
    a week after its activity ends."""
    due = session.execute(select(Grant.id, Grant.participation_id).where(
        Grant.delivered_at.is_(None), Grant.due_at <= clock.now(),
        Grant.attempts < MAX_ATTEMPTS).order_by(Grant.due_at, Grant.id).limit(limit)).all()
    session.rollback()
    groups: dict[int, list[int]] = {}
    for grant_id, participation_id in due:
        groups.setdefault(participation_id, []).append(grant_id)
    delivered = 0
    for grant_ids in groups.values():
        failed: dict[int, str] = {}
        with transaction(session):
            grants = session.scalars(select(Grant).options(
                selectinload(Grant.gift).selectinload(ActivityGift.activity))
                .where(Grant.id.in_(grant_ids), Grant.delivered_at.is_(None))
                .order_by(Grant.id).with_for_update(skip_locked=True).execution_options(populate_existing=True)).all()
            arrived = []
            for grant in grants:
                try:
                    with session.begin_nested():
                        if _deliver(session, grant, grant.gift, grant.gift.activity):
                            arrived.append(grant.gift)
                except CouponError as e:
                    failed[grant.id] = str(e)[:255]
            delivered += len(arrived)
            activity = grants[0].gift.activity if grants else None
            if arrived and activity.notify and \
                    activity.kind == ActivityKind.PROFILE_COMPLETION:
                _tell_gift(session, activity, grants[0].member_id, arrived)
        if failed:
            _retry_later(session, failed)
    return delivered


def _retry_later(session: Session, failed: dict[int, str]) -> None:
    now = clock.now()
    with transaction(session):
        for grant in session.scalars(select(Grant).options(
                selectinload(Grant.gift).selectinload(ActivityGift.activity))
                .where(Grant.id.in_(failed))):
            log.warning("grant %s not delivered: %s", grant.id, failed[grant.id])
            grant.attempts += 1
            grant.last_error = failed[grant.id]
            if now > grant.gift.activity.ends_at + GIVE_UP_AFTER:
                grant.attempts = MAX_ATTEMPTS       # given up: staff see it counted
            else:
                grant.due_at = retry_at(grant.attempts, now)


def activity_by_code(session: Session, code: str) -> Activity | None:
    return session.scalar(select(Activity).options(selectinload(Activity.gifts))
                          .where(Activity.code == code.upper(),
                                 Activity.kind == "profile_completion"))


def participation_for(session: Session, activity_id: int, member_id: int) -> Participation | None:
    return session.scalar(select(Participation).options(
        selectinload(Participation.grants).selectinload(Grant.gift))
        .where(Participation.activity_id == activity_id, Participation.member_id == member_id))


def gift_titles(session: Session, activity: Activity) -> dict[int, str]:
    """A title per gift, for the member's page (template titles, package names)."""
    from portal.coupons.models import CouponPackage, CouponTemplate

    out = {}
    for gift in activity.gifts:
        if gift.template_id:
            out[gift.id] = session.get(CouponTemplate, gift.template_id).title
        else:
            out[gift.id] = session.get(CouponPackage, gift.package_id).name
    return out

