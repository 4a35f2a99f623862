"""Queue messages in the outbox and deliver them through the configured senders."""
from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from portal import clock, jobs
from portal.db import after_commit, transaction
from portal.notifications.models import Channel, InboxMessage, OutboxMessage, OutboxStatus
from portal.notifications.senders import load_sender

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
REDACTED = "[redacted after delivery]"


def queue(session: Session, *, channel: Channel, recipient: str, template: str, body: str,
          subject: str = "") -> OutboxMessage:
    """Add a message in the caller's transaction; delivery starts once it commits."""
    message = OutboxMessage(channel=channel, recipient=recipient, template=template,
                            subject=subject, body=body)
    session.add(message)
    session.flush()
    message_id = message.id
    after_commit(session, lambda: _wake(message_id))
    return message


def _wake(message_id: int) -> None:
    try:
        deliver_task(message_id)
    except Exception:  # noqa: BLE001 - the queue being down must not fail the request
        log.exception("could not queue outbox message %s; the tick will send it", message_id)


def deliver(session: Session, message_id: int) -> str:
    """Send one pending message. Safe to call twice: a sent message is left alone."""
    with transaction(session):
        message = session.scalar(
            select(OutboxMessage).where(OutboxMessage.id == message_id,
                                        OutboxMessage.status == OutboxStatus.PENDING)
            .with_for_update(skip_locked=True))
        if message is None:
            return "skipped"
        sender_name = current_app.config[
            "SMS_SENDER" if message.channel == Channel.SMS else "EMAIL_SENDER"]
        message.attempts += 1
        try:
            load_sender(sender_name, current_app).send(message)
        except Exception as exc:  # noqa: BLE001 - any sender failure is retried later
            log.warning("outbox message %s failed: %s", message.id, exc)
            message.last_error = str(exc)[:1000]
            if message.attempts >= MAX_ATTEMPTS:
                message.status = OutboxStatus.FAILED
            else:
                message.next_attempt_at = clock.now() + timedelta(minutes=2 ** message.attempts)
            return "retry"
        message.status = OutboxStatus.SENT
        message.sent_at = clock.now()
        if message.template == "otp" and not current_app.config["SHOW_DEV_CODES"]:
            # A sign-in code is a secret; once delivered it has no business at rest.
            message.body = REDACTED
        return "sent"


@jobs.task(retries=0)
def deliver_task(message_id: int) -> str:
    from portal.db import db

    return deliver(db.session, message_id)


@jobs.on_tick("deliver_outbox")
def deliver_due(session: Session, limit: int = 200) -> int:
    """Sweep: deliver whatever is pending and due (a lost task, a retry)."""
    due = session.scalars(
        select(OutboxMessage.id).where(OutboxMessage.status == OutboxStatus.PENDING,
                                       OutboxMessage.next_attempt_at <= clock.now())
        .order_by(OutboxMessage.id).limit(limit)).all()
    session.rollback()
    return sum(deliver(session, mid) == "sent" for mid in due)


def last_code_message(session: Session, recipient: str) -> OutboxMessage | None:
    """The newest sign-in code message to a number (the development banner shows it)."""
    return session.scalar(
        select(OutboxMessage).where(OutboxMessage.recipient == recipient,
                                    OutboxMessage.template == "otp")
        .order_by(OutboxMessage.id.desc()).limit(1))


# --- the member's inbox ----------------------------------------------------------------

def notify_member(session: Session, member, *, title: str, body: str,
                  link: str | None = None) -> InboxMessage:
    """An inbox message, and an e-mail too when the merchant turned e-mail on and the
    member gave an address. In the caller's transaction."""
    message = InboxMessage(member_id=member.id, title=title, body=body, link=link)
    session.add(message)
    if current_app.config["EMAIL_NOTIFICATIONS"] and member.email:
        queue(session, channel=Channel.EMAIL, recipient=member.email, template="notice",
              subject=title, body=body)
    return message


def notify_many(session: Session, member_ids: list[int], *, title: str, body: str,
                link: str | None = None) -> None:
    """The same inbox message to many members in one INSERT (plus e-mail when on; those
    wait for the outbox sweep rather than one task each)."""
    from sqlalchemy import insert

    from portal.members.models import Member

    now = clock.now()
    session.execute(insert(InboxMessage), [
        {"member_id": m, "title": title, "body": body, "link": link, "created_at": now}
        for m in member_ids])
    if current_app.config["EMAIL_NOTIFICATIONS"]:
        emails = session.scalars(select(Member.email).where(Member.id.in_(member_ids),
                                                            Member.email.is_not(None)))
        session.execute(insert(OutboxMessage), [
            {"channel": Channel.EMAIL, "recipient": e, "template": "notice",
             "subject": title, "body": body, "status": OutboxStatus.PENDING,
             "attempts": 0, "created_at": now, "next_attempt_at": now} for e in emails])


def inbox(session: Session, member_id: int, limit: int = 100) -> list[InboxMessage]:
    return list(session.scalars(select(InboxMessage).where(InboxMessage.member_id == member_id)
                                .order_by(InboxMessage.id.desc()).limit(limit)))


def unread_count(session: Session, member_id: int) -> int:
    return session.scalar(select(func.count(InboxMessage.id)).where(
        InboxMessage.member_id == member_id, InboxMessage.read_at.is_(None)))


def mark_read(session: Session, member_id: int) -> int:
    with transaction(session):
        return session.execute(
            update(InboxMessage).where(InboxMessage.member_id == member_id,
                                       InboxMessage.read_at.is_(None))
            .values(read_at=clock.now())).rowcount
