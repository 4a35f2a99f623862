"""The abnormal-points alarm: too many points in one local day marks a member abnormal;
earning or spending can then be blocked; a report of the day goes out after 0:00."""
from __future__ import annotations

from datetime import timedelta

from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import clock, jobs, ledger
from portal.db import transaction
from portal.ledger import AccountKind
from portal.loyalty.errors import LoyaltyError, LoyaltyErrorCode
from portal.loyalty.models import AbnormalEvent, PointsAlarm
from portal.members.models import Member, MemberStatus

EARNING_REASONS = ("order", "adjustment", "event")


def settings(session: Session) -> PointsAlarm:
    alarm = session.scalar(select(PointsAlarm).limit(1))
    if alarm is None:
        alarm = PointsAlarm(emails=[])
        session.add(alarm)
        session.flush()
    return alarm


def is_blocked(session: Session, member: Member, what: str) -> bool:
    """Whether an abnormal member may not `earn` or `redeem` now."""
    if member.status != MemberStatus.ABNORMAL:
        return False
    alarm = session.scalar(select(PointsAlarm).limit(1))
    return alarm is not None and (alarm.block_earning if what == "earn"
                                  else alarm.block_redeeming)


def check(session: Session, member_id: int) -> None:
    """After points were credited, in the caller's transaction: mark the member abnormal
    once their points today pass the threshold."""
    alarm = session.scalar(select(PointsAlarm).limit(1))
    if alarm is None or alarm.daily_threshold is None:
        return
    today = clock.today()
    earned = session.scalar(
        select(func.coalesce(func.sum(ledger.Entry.delta), 0))
        .join(ledger.Account, ledger.Account.id == ledger.Entry.account_id)
        .where(ledger.Account.kind == AccountKind.POINTS, ledger.Account.owner_type == "member",
               ledger.Account.owner_id == member_id, ledger.Entry.delta > 0,
               ledger.Entry.reason.in_(EARNING_REASONS),
               ledger.Entry.created_at >= clock.start_of_local_day(today)))
    if earned <= alarm.daily_threshold:
        return
    member = session.get(Member, member_id)
    member.status = MemberStatus.ABNORMAL
    try:
        with session.begin_nested():
            session.add(AbnormalEvent(member_id=member_id, day=today, points_that_day=earned))
    except IntegrityError:
        pass  # already reported today


def save(session: Session, *, daily_threshold: int | None, block_earning: bool,
         block_redeeming: bool, emails: list[str], operator_id: int) -> PointsAlarm:
    from portal.staff.services import record

    errors = {}
    if daily_threshold is not None and daily_threshold <= 0:
        errors["daily_threshold"] = _("A threshold above zero, or empty to switch it off.")
    clean = []
    for email in emails:
        try:
            clean.append(validate_email(email, check_deliverability=False).normalized)
        except EmailNotValidError:
            errors["emails"] = _("“%(email)s” is not an email address.", email=email)
    if errors:
        raise LoyaltyError(LoyaltyErrorCode.INVALID, _("Please correct the marked fields."),
                           errors=errors)
    with transaction(session):
        alarm = settings(session)
        before = {"daily_threshold": alarm.daily_threshold, "block_earning": alarm.block_earning,
                  "block_redeeming": alarm.block_redeeming, "emails": alarm.emails}
        alarm.daily_threshold, alarm.block_earning = daily_threshold, block_earning
        alarm.block_redeeming, alarm.emails = block_redeeming, clean
        record(session, operator_id, "points_alarm.update", ("points_alarm", alarm.id),
               before=before, after={"daily_threshold": daily_threshold,
                                     "block_earning": block_earning,
                                     "block_redeeming": block_redeeming, "emails": clean})
        return alarm


def set_normal(session: Session, member_id: int, *, operator_id: int) -> None:
    """Staff clear the abnormal mark after looking into it."""
    from portal.staff.services import record

    with transaction(session):
        member = session.get(Member, member_id)
        if member is not None and member.status == MemberStatus.ABNORMAL:
            member.status = MemberStatus.NORMAL
            record(session, operator_id, "member.status", member,
                   before={"status": "abnormal"}, after={"status": "normal"})


@jobs.on_tick("abnormal_points_report")
def send_report(session: Session) -> int:
    """Once the merchant's day has turned, mail yesterday's abnormal members (once)."""
    from portal.notifications import services as notifications
    from portal.notifications.models import Channel

    yesterday = clock.today() - timedelta(days=1)
    with transaction(session):
        alarm = session.scalar(select(PointsAlarm).limit(1)
                               .with_for_update().execution_options(populate_existing=True))
        if alarm is None or not alarm.emails or alarm.last_report_on == yesterday:
            return 0
        # Every day not reported yet (a stopped worker catches up), at most a week back.
        week_back = yesterday - timedelta(days=6)
        day = max(alarm.last_report_on + timedelta(days=1), week_back) \
            if alarm.last_report_on else week_back
        sent = 0
        while day <= yesterday:
            sent += _report_day(session, alarm, day, notifications, Channel)
            day += timedelta(days=1)
        alarm.last_report_on = yesterday
        return sent


def _report_day(session: Session, alarm: PointsAlarm, day, notifications, channel) -> int:
    rows = session.execute(
        select(Member.full_name, Member.mobile, AbnormalEvent.points_that_day)
        .join(Member, Member.id == AbnormalEvent.member_id)
        .where(AbnormalEvent.day == day).order_by(AbnormalEvent.id)).all()
    if not rows:
        return 0
    lines = "\n".join(f"- {name or '?'} ({mobile}): {points}" for name, mobile, points in rows)
    body = _("Members whose points passed %(n)d on %(day)s:", n=alarm.daily_threshold or 0,
             day=day.isoformat()) + "\n" + lines
    for email in alarm.emails:
        notifications.queue(session, channel=channel.EMAIL, recipient=email,
                            template="abnormal_points",
                            subject=_("Abnormal points on %(day)s", day=day.isoformat()),
                            body=body)
    return len(rows)
