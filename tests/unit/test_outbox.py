"""The outbox: messages are rows first; the queue delivers them; the tick sweeps up."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from portal import clock, jobs
from portal.db import transaction
from portal.notifications import services as outbox
from portal.notifications.models import Channel, OutboxMessage, OutboxStatus


class FailingSender:
    calls = 0

    def __init__(self, app):
        pass

    def send(self, message):
        FailingSender.calls += 1
        raise ConnectionError("provider down")


def _queue(session, body="hello"):
    with transaction(session):
        message = outbox.queue(session, channel=Channel.SMS, recipient="+8613900000000",
                               template="otp", body=body)
    return message.id


def test_message_is_delivered_once_the_transaction_commits(session):
    mid = _queue(session)
    session.expire_all()
    assert session.get(OutboxMessage, mid).status == OutboxStatus.SENT


def test_message_of_a_failed_transaction_is_never_sent(session):
    try:
        with transaction(session):
            outbox.queue(session, channel=Channel.SMS, recipient="+8613900000000",
                         template="otp", body="x")
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    assert session.query(OutboxMessage).count() == 0


def test_delivering_twice_sends_once(session):
    mid = _queue(session)
    assert outbox.deliver(session, mid) == "skipped"


def test_failed_sends_are_retried_by_the_tick_then_given_up(app, session):
    clock.freeze(datetime(2026, 1, 1, tzinfo=UTC))
    app.config["SMS_SENDER"] = "tests.unit.test_outbox:FailingSender"
    try:
        mid = _queue(session)
        for _ in range(outbox.MAX_ATTEMPTS + 2):
            clock.advance(timedelta(hours=3))
            jobs.run_tick()
    finally:
        app.config["SMS_SENDER"] = "log"
    session.expire_all()
    message = session.get(OutboxMessage, mid)
    assert message.status == OutboxStatus.FAILED
    assert message.attempts == outbox.MAX_ATTEMPTS
    assert "provider down" in message.last_error


def test_tick_delivers_what_a_lost_task_left_pending(app, session):
    with transaction(session):
        session.add(OutboxMessage(channel=Channel.EMAIL, recipient="a@example.com",
                                  template="welcome", body="hi"))
    assert jobs.run_tick()["deliver_outbox"] == 1


def test_codes_are_redacted_after_delivery_in_production(app, session):
    app.config["SHOW_DEV_CODES"] = False
    try:
        mid = _queue(session, body="your code is 123456")
    finally:
        app.config["SHOW_DEV_CODES"] = True
    session.expire_all()
    assert "123456" not in session.get(OutboxMessage, mid).body
