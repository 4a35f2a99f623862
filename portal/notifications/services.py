"""Queue messages in the outbox and deliver them through the configured senders."""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import clock, jobs, ledger
from portal.db import after_commit, transaction
from portal.notifications.errors import NotificationError, NotificationErrorCode
from portal.notifications.messages import Wording, word
from portal.notifications.models import (
    Channel,
    InboxMessage,
    MessageKind,
    MessageSetting,
    OutboxMessage,
    OutboxStatus,
)
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
    jobs.wake(deliver_task, message_id)  # queue down: the tick's deliver_outbox sends it


def deliver(session: Session, message_id: int) -> str:
    """Send one pending message. Safe to call twice: a sent message is left alone."""
    with transaction(session):
        message = session.scalar(
            select(OutboxMessage).where(OutboxMessage.id == message_id,
                                        OutboxMessage.status == OutboxStatus.PENDING)
            .with_for_update(skip_locked=True).execution_options(populate_existing=True))
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


# --- member messages --------------------------------------------------------------------

CHUNK = 5000
# A few e-mails go out at once, one task each; a crowd waits for the outbox sweep (a tick
# a minute) rather than flooding the queue with thousands of tasks.
WAKE_AT_MOST = 20


def message_settings(session: Session) -> dict[MessageKind, MessageSetting]:
    """The merchant's switch for every kind; a kind never saved is on, with e-mail."""
    stored = {s.kind: s for s in session.scalars(select(MessageSetting))}
    return {kind: stored.get(kind) or _default_setting(kind) for kind in MessageKind}


def setting_for(session: Session, kind: MessageKind) -> MessageSetting:
    return session.get(MessageSetting, str(kind)) or _default_setting(kind)


def _default_setting(kind: MessageKind) -> MessageSetting:
    return MessageSetting(kind=str(kind), enabled=True, email=True, lead_days=30)


LEAD_DAYS_MAX = 365


def _ensure_rows(session: Session) -> None:
    """A row per kind before saving, so two first saves at once lock the same rows
    instead of both inserting them."""
    with transaction(session):
        have = set(session.scalars(select(MessageSetting.kind)))
        for kind in MessageKind:
            if kind not in have:
                try:
                    with session.begin_nested():
                        session.add(_default_setting(kind))
                except IntegrityError:
                    pass  # added meanwhile by the other save


def save_settings(session: Session, values: dict[str, dict], *,
                  operator_id: int) -> dict[MessageKind, MessageSetting]:
    """Switch kinds of message on or off, with or without e-mail, and how many days ahead
    members hear of expiring points (1 to 365). All or nothing; audited."""
    from portal.staff.services import record

    errors = {}
    for kind in MessageKind:
        lead = values.get(kind, {}).get("lead_days")
        if lead is not None and (not isinstance(lead, int) or isinstance(lead, bool)
                                 or not 1 <= lead <= LEAD_DAYS_MAX):
            errors[f"{kind}-lead_days"] = _("A number of days from 1 to %(max)d.",
                                            max=LEAD_DAYS_MAX)
    if errors:
        raise NotificationError(NotificationErrorCode.INVALID,
                                _("Please correct the marked fields."), errors=errors)
    _ensure_rows(session)
    with transaction(session):
        stored = {s.kind: s for s in session.scalars(
            select(MessageSetting).with_for_update().execution_options(populate_existing=True))}
        before, after = {}, {}
        for kind in MessageKind:
            given = values.get(kind, {})
            setting = stored.get(kind)
            if setting is None:
                setting = _default_setting(kind)
                session.add(setting)
            before[kind] = _as_dict(setting)
            setting.enabled = bool(given.get("enabled"))
            setting.email = bool(given.get("email"))
            if given.get("lead_days") is not None:
                setting.lead_days = given["lead_days"]
            setting.updated_at = clock.now()
            after[kind] = _as_dict(setting)
        changed = {k for k in MessageKind if before[k] != after[k]}
        record(session, operator_id, "messages.settings", ("message_settings", "all"),
               before={k: before[k] for k in changed}, after={k: after[k] for k in changed})
        return message_settings(session)


def _as_dict(setting: MessageSetting) -> dict:
    return {"enabled": setting.enabled, "email": setting.email, "lead_days": setting.lead_days}


def send(session: Session, kind: MessageKind | str, member_ids: int | Iterable[int],
         params: dict, *, dedupe_key: str | None = None) -> int:
    """Put a message of `kind` in each member's inbox, worded from `params` when read, and
    queue an e-mail to those with an address if the merchant has e-mail on for the kind.

    In the caller's transaction. Nothing happens when the kind is switched off. With a
    `dedupe_key`, a member who already has a message with that key gets no second one
    (also when two runs race). Returns how many members got the message."""
    ids = [member_ids] if isinstance(member_ids, int) else member_ids
    return send_each(session, kind, {m: params for m in ids}, dedupe_key=dedupe_key)


def send_each(session: Session, kind: MessageKind | str, params_by_member: dict[int, dict],
              *, dedupe_key: str | None = None) -> int:
    """`send`, with each member's own params (points expiring: each their own number)."""
    kind = MessageKind(kind)
    with transaction(session):
        setting = setting_for(session, kind)
        if not setting.enabled or not params_by_member:
            return 0
        wording = _Wordings(kind)
        sent = 0
        ids = sorted(params_by_member)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            sent += _send_chunk(session, kind, setting, {m: params_by_member[m] for m in chunk},
                                dedupe_key, wording)
        return sent


def _send_chunk(session, kind, setting, params_by_member, dedupe_key, wording) -> int:
    from portal.members.models import Member

    members = session.execute(select(Member.id, Member.email, Member.locale)
                              .where(Member.id.in_(list(params_by_member)))).all()
    if dedupe_key is not None and members:
        # Skip who has it already; ON CONFLICT below covers a parallel run in between.
        have = set(session.scalars(select(InboxMessage.member_id).where(
            InboxMessage.dedupe_key == dedupe_key,
            InboxMessage.member_id.in_([m.id for m in members]))))
        members = [m for m in members if m.id not in have]
    if not members:
        return 0
    now = clock.now()
    rows = []
    for m in members:
        params = params_by_member[m.id]
        # Stored in the default language for anyone reading the table; the inbox words
        # typed messages afresh in the reader's language.
        stored = wording.get(None, params)
        rows.append({"member_id": m.id, "kind": str(kind), "params": params,
                     "dedupe_key": dedupe_key, "title": stored.title[:200],
                     "body": stored.body, "link": stored.link, "created_at": now})
    got = set(session.execute(_insert_once(session).returning(InboxMessage.member_id),
                              rows).scalars())
    if setting.email:
        _queue_emails(session, kind, [m for m in members if m.id in got and m.email],
                      params_by_member, wording, now)
    return len(got)


def _insert_once(session: Session):
    """An INSERT into the inbox that quietly skips rows the unique (member, key) refuses."""
    table = InboxMessage.__table__
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:  # pragma: no cover - other databases rely on the pre-select alone
        return insert(table)
    return dialect_insert(table).on_conflict_do_nothing(
        index_elements=[table.c.member_id, table.c.dedupe_key])


def _queue_emails(session, kind, members, params_by_member, wording, now) -> None:
    if not members:
        return
    rows = []
    for m in sorted(members, key=lambda m: m.locale or ""):  # grouped by language
        words = wording.get(m.locale, params_by_member[m.id])
        rows.append({"channel": Channel.EMAIL, "recipient": m.email, "template": str(kind),
                     "subject": words.title[:200], "body": words.body,
                     "status": OutboxStatus.PENDING, "attempts": 0, "created_at": now,
                     "next_attempt_at": now})
    ids = list(session.execute(insert(OutboxMessage.__table__).returning(OutboxMessage.id),
                               rows).scalars())
    if len(ids) <= WAKE_AT_MOST:
        for message_id in ids:
            after_commit(session, lambda mid=message_id: _wake(mid))


class _Wordings:
    """Words each (language, params) once: a thousand members reading Chinese with the
    same params cost one gettext, not a thousand."""

    def __init__(self, kind: MessageKind):
        self.kind = kind
        self.languages = current_app.config["LANGUAGES"]
        self.default = current_app.config["BABEL_DEFAULT_LOCALE"]
        self.cache: dict[tuple, Wording] = {}

    def get(self, locale: str | None, params: dict) -> Wording:
        locale = locale if locale in self.languages else self.default
        key = (locale, json.dumps(params, sort_keys=True, default=str))
        if key not in self.cache:
            with force_locale(locale):
                self.cache[key] = word(self.kind, params)
        return self.cache[key]


@jobs.on_daily("points_expiring")
def tell_points_expiring(session: Session) -> int:
    """Tell members, once per expiry date, how many of their points expire within the
    merchant's lead days: one grouped query, then one `send` per expiry date (1 January,
    mostly: one date). Safe to run twice: the date is the dedupe key."""
    setting = setting_for(session, MessageKind.POINTS_EXPIRING)
    enabled, lead_days = setting.enabled, setting.lead_days
    session.rollback()
    if not enabled:
        return 0
    now = clock.now()
    # Expiring on a local day at most `lead_days` from today (points go at its 0:00).
    horizon = clock.start_of_local_day(clock.today() + timedelta(days=lead_days + 1))
    rows = session.execute(
        select(ledger.Account.owner_id, ledger.Entry.expires_at,
               func.sum(ledger.Entry.open_amount))
        .join(ledger.Account, ledger.Account.id == ledger.Entry.account_id)
        .where(ledger.Account.kind == ledger.AccountKind.POINTS,
               ledger.Account.owner_type == "member", ledger.Entry.open_amount > 0,
               ledger.Entry.expires_at > now, ledger.Entry.expires_at < horizon)
        .group_by(ledger.Account.owner_id, ledger.Entry.expires_at)).all()
    session.rollback()
    by_date: dict[str, dict[int, int]] = {}
    for member_id, expires_at, points in rows:
        on = clock.local(expires_at).date().isoformat()
        by_date.setdefault(on, {}).setdefault(member_id, 0)
        by_date[on][member_id] += int(points)
    sent = 0
    for on, points in sorted(by_date.items()):
        with transaction(session):
            sent += send_each(session, MessageKind.POINTS_EXPIRING,
                              {m: {"points": n, "on": on} for m, n in points.items()},
                              dedupe_key=f"points_expiring:{on}")
    return sent


# --- the member's inbox ----------------------------------------------------------------

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
