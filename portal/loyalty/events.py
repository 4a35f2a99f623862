"""Points and experience for interactions (spec 2.22): event types the merchant defines,
each with daily, monthly and total caps per member."""
from __future__ import annotations

import re

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import clock, ledger
from portal.db import transaction
from portal.ledger import AccountKind
from portal.loyalty.errors import LoyaltyError, LoyaltyErrorCode
from portal.loyalty.models import InteractionEvent, InteractionRecord
from portal.members.models import Member

KEY = re.compile(r"^[a-z][a-z0-9_]{1,31}$")


def save_event(session: Session, *, key: str, name: str, points: int | None,
               experience: int | None, daily_cap: int | None, monthly_cap: int | None,
               total_cap: int | None, operator_id: int) -> InteractionEvent:
    from portal.staff.services import record

    key, name = (key or "").strip().lower(), " ".join((name or "").split())
    errors = {}
    if not KEY.match(key):
        errors["key"] = _("2 to 32 lowercase letters, digits and underscores, "
                          "starting with a letter.")
    if not name or len(name) > 60:
        errors["name"] = _("Give the event a name of at most 60 characters.")
    if points is None or experience is None or points < 0 or experience < 0 or \
            points + experience == 0:
        errors["points"] = _("Give points, experience or both (zero or more each).")
    for field, cap in (("daily_cap", daily_cap), ("monthly_cap", monthly_cap),
                       ("total_cap", total_cap)):
        if cap is not None and cap < 1:
            errors[field] = _("At least 1, or empty for no limit.")
    with transaction(session):
        if not errors.get("key") and session.scalar(
                select(InteractionEvent.id).where(InteractionEvent.key == key)):
            errors["key"] = _("Another event uses this ID.")
        if errors:
            raise LoyaltyError(LoyaltyErrorCode.INVALID, _("Please correct the marked fields."),
                               errors=errors)
        event = InteractionEvent(key=key, name=name, points=points, experience=experience,
                                 daily_cap=daily_cap, monthly_cap=monthly_cap,
                                 total_cap=total_cap)
        session.add(event)
        session.flush()
        record(session, operator_id, "interaction_event.create", event,
               after={"key": key, "name": name, "points": points, "experience": experience,
                      "caps": [daily_cap, monthly_cap, total_cap]})
        return event


def events(session: Session) -> list[InteractionEvent]:
    return list(session.scalars(select(InteractionEvent).order_by(InteractionEvent.id)))


def reward(session: Session, *, event_key: str, member_id: int,
           reference: str) -> InteractionRecord | None:
    """Reward one occurrence, once per reference; None when a cap is reached (nothing
    given). The member's row is locked so parallel events cannot pass a cap."""
    try:
        return _reward(session, event_key=event_key, member_id=member_id, reference=reference)
    except IntegrityError:
        # The same reference was recorded meanwhile (another member's parallel report).
        session.rollback()
        return _reward(session, event_key=event_key, member_id=member_id, reference=reference)


def _reward(session: Session, *, event_key: str, member_id: int,
            reference: str) -> InteractionRecord | None:
    from portal.loyalty import alarm, tiers

    with transaction(session):
        event = session.scalar(select(InteractionEvent).where(InteractionEvent.key == event_key))
        if event is None or not event.is_active:
            raise LoyaltyError(LoyaltyErrorCode.UNKNOWN_EVENT, _("There is no such event."))
        # Lock first: a parallel repeat of this member's report waits, then finds it.
        session.scalar(select(Member.id).where(Member.id == member_id)
                       .with_for_update().execution_options(populate_existing=True))
        done = session.scalar(select(InteractionRecord).where(
            InteractionRecord.event_id == event.id, InteractionRecord.reference == reference))
        if done is not None:
            if done.member_id != member_id:
                raise LoyaltyError(LoyaltyErrorCode.REFERENCE_USED,
                                   _("This reference was already used for another member."))
            return done
        today = clock.today()
        counts = {
            "daily_cap": InteractionRecord.day == today,
            "monthly_cap": InteractionRecord.day >= today.replace(day=1),
            "total_cap": True,
        }
        for cap_name, condition in counts.items():
            cap = getattr(event, cap_name)
            if cap is None:
                continue
            used = session.scalar(select(func.count(InteractionRecord.id)).where(
                InteractionRecord.event_id == event.id,
                InteractionRecord.member_id == member_id, condition))
            if used >= cap:
                return None
        earning_blocked = alarm.is_blocked(session, session.get(Member, member_id), "earn")
        points = 0 if earning_blocked else event.points
        rec = InteractionRecord(event_id=event.id, member_id=member_id, reference=reference,
                                day=today, points=points, experience=event.experience)
        session.add(rec)
        session.flush()
        if points:
            from portal.loyalty.services import points_expiry, rule_for_member

            account = ledger.account(session, AccountKind.POINTS, "member", member_id)
            ledger.post(session, account, points, reason="event",
                        key=f"event:{rec.id}", source=("interaction", rec.id),
                        expires_at=points_expiry(rule_for_member(session, member_id),
                                                 clock.now()))
            alarm.check(session, member_id)
        if event.experience:
            account = ledger.account(session, AccountKind.EXPERIENCE, "member", member_id)
            ledger.post(session, account, event.experience, reason="event",
                        key=f"event:{rec.id}", source=("interaction", rec.id))
            tiers.on_experience_change(session, member_id)
        return rec
