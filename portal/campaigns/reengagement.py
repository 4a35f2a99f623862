"""The re-engagement gift: each day at 0:00 (merchant time) find the members who have not
bought for X days and owe each of them the activity's coupons, once per lapse.

A lapse is named by the moment it counts from: the last purchase, or joining for members
who never bought. That moment is the participation's `occasion`, unique per member and
activity, so the scan run twice (or by two workers) owes nothing more, and a new purchase
starts a new lapse that will be gifted again once it is X days old.

The scan itself is two INSERT ... SELECT statements (participations, then grants due
now); the minute tick delivers the grants, each exactly once (services.deliver_due)."""
from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import (
    BigInteger,
    String,
    and_,
    cast,
    exists,
    extract,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.orm import Session, selectinload

from portal import clock, jobs
from portal.campaigns.models import (
    Activity,
    ActivityKind,
    ActivityStatus,
    Grant,
    Participation,
)
from portal.db import transaction
from portal.members.models import Member, MemberCard, member_tags


def lapse_start():
    """When a member's current lapse began: the last purchase, else joining."""
    return func.coalesce(Member.last_purchase_at, Member.became_member_at)


def occasion():
    """The lapse's name as text: its start in epoch seconds (the same on every backend
    and in every session time zone)."""
    return cast(cast(extract("epoch", lapse_start()), BigInteger), String)


def audience(session: Session, activity: Activity):
    """The members the activity is for. Each dimension the merchant filled narrows it:
    a card of one of the plans (and tiers), in one of the segments, with one of the tags."""
    conditions = [Member.became_member_at.is_not(None), Member.closed_at.is_(None)]
    if activity.plan_ids or activity.tier_ids:
        card = [MemberCard.member_id == Member.id]
        if activity.plan_ids:
            card.append(MemberCard.plan_id.in_(activity.plan_ids))
        if activity.tier_ids:
            card.append(MemberCard.tier_id.in_(activity.tier_ids))
        conditions.append(exists().where(*card))
    if activity.tag_ids:
        conditions.append(exists().where(member_tags.c.member_id == Member.id,
                                         member_tags.c.tag_id.in_(activity.tag_ids)))
    if activity.segment_ids:
        from portal.members import segments

        conditions.append(segments.condition_for_ids(session, activity.segment_ids))
    return and_(*conditions)


def due_at(gift, now: datetime) -> datetime:
    if gift.delay == "hours":
        return now + timedelta(hours=gift.delay_amount)
    if gift.delay == "days":
        return now + timedelta(days=gift.delay_amount)
    return now


def lapsed_before(day: date, lapse_days: int):
    """A lapse that began before this moment counts on `day`: X whole local days, as a
    segment's "days since the last purchase" counts them (bought on 1 March, 30 days:
    gifted from 0:00 on 31 March)."""
    return clock.start_of_local_day(day - timedelta(days=lapse_days - 1))


def scan(session: Session, activity_id: int, day: date | None = None) -> int:
    """Owe the gift to every member of the audience newly lapsed on `day` (default
    today); returns how many members. Safe to run again: it owes nothing twice."""
    day = day or clock.today()
    with transaction(session):
        activity = session.scalar(select(Activity).options(selectinload(Activity.gifts))
                                  .where(Activity.id == activity_id)
                                      .with_for_update().execution_options(populate_existing=True))
        if activity is None or activity.kind != ActivityKind.REENGAGEMENT \
                or activity.state() != "active" or not activity.lapse_days:
            return 0
        now = clock.now()
        # The activity row is locked, so the participations this scan adds are exactly
        # this activity's rows above the highest id now (ids only grow).
        last_id = session.scalar(select(func.max(Participation.id))) or 0
        already = exists().where(Participation.activity_id == activity.id,
                                 Participation.member_id == Member.id,
                                 Participation.occasion == occasion())
        lapsed = (select(literal(activity.id), Member.id, occasion(), literal(0),
                         literal(now, Participation.created_at.type))
                  .where(lapse_start() < lapsed_before(day, activity.lapse_days),
                         audience(session, activity), ~already))
        # An INSERT ... SELECT has no row count unless asked for (psycopg gives -1).
        added = session.connection().execute(insert(Participation).from_select(
            ["activity_id", "member_id", "occasion", "points", "created_at"], lapsed)
            .execution_options(preserve_rowcount=True)).rowcount
        # The grants of the participations just made, one statement per gift (its delay
        # sets when it is due).
        for gift in activity.gifts if added else []:
            owed = (select(Participation.id, literal(gift.id), Participation.member_id,
                           literal(due_at(gift, now), Grant.due_at.type), literal(0))
                    .where(Participation.id > last_id,
                           Participation.activity_id == activity.id))
            session.connection().execute(insert(Grant).from_select(
                ["participation_id", "gift_id", "member_id", "due_at", "attempts"], owed))
        activity.last_scan_on = day
        return added


@jobs.on_tick("reengagement")
def daily_scan(session: Session) -> dict[int, int]:
    """From local 0:00, once a day per running re-engagement activity."""
    today = clock.today()
    now = clock.now()
    due = session.scalars(select(Activity.id).where(
        Activity.kind == ActivityKind.REENGAGEMENT, Activity.status == ActivityStatus.ACTIVE,
        Activity.starts_at <= now, Activity.ends_at > now,
        (Activity.last_scan_on.is_(None)) | (Activity.last_scan_on < today))).all()
    session.rollback()
    return {activity_id: scan(session, activity_id, today) for activity_id in due}
