"""A webhook arriving while its payment is being fulfilled: the minute sweep found the
checkout paid at Stripe (its event was late) and is crediting the top-up when Stripe's
webhook comes in. The webhook waits for the payment's row, then finds it paid: the
member gets one top-up, one bonus, and the plan's stock is taken once.

The sweep is held inside its fulfilment (after the payment is locked, before commit)
until the webhook is seen waiting, so the two really overlap, every run."""
from __future__ import annotations

import dataclasses
import threading
import time
from datetime import timedelta

from sqlalchemy import func, select, text

from portal import clock, ledger
from portal.db import db
from portal.payments import services as payments
from portal.payments.models import Payment
from portal.wallet import balance as wallet
from portal.wallet import topups
from portal.wallet.models import TopupPlan
from tests.conftest import is_postgres
from tests.stripe_stub import event, signed


def _paid_checkout(session, member, stripe_stub) -> tuple[Payment, TopupPlan]:
    card = session.merge(member).cards[0]
    plan = TopupPlan(kind="fixed", name="Top up 100", currency="CNY", status="active",
                     amount_minor=10000, bonus_minor=1000, bonus_points=0,
                     stock_total=5, stock_left=5)
    session.add(plan)
    session.commit()
    topup = topups.start(session, member_id=member.id, card_id=card.id, plan_id=plan.id)
    payments.open_checkout(session, topup.payment_id, success_url="https://x/ok",
                           cancel_url="https://x/no")
    payment = session.get(Payment, topup.payment_id)
    stripe_stub.pay(payment.provider_session_id)
    return payment, plan


def _in_thread(app, fn) -> dict:
    """Run fn(session) in a thread with its own app context; its result or exception."""
    out = {}

    def run():
        with app.app_context():
            try:
                out["result"] = fn(db.session)
            except Exception as e:  # noqa: BLE001 - the outcome is the result
                out["result"] = e
            finally:
                db.session.remove()

    out["thread"] = threading.Thread(target=run, daemon=True)
    out["thread"].start()
    return out


def _waits_for_a_lock(session) -> bool:
    found = session.scalar(text("SELECT count(*) FROM pg_stat_activity "
                                "WHERE wait_event_type = 'Lock' AND datname = current_database()"))
    session.rollback()
    return bool(found)


def test_a_webhook_during_the_sweeps_fulfilment_waits_and_credits_nothing_more(
        app, session, member, stripe_stub, monkeypatch):
    payment, plan = _paid_checkout(session, member, stripe_stub)
    fulfilling, release = threading.Event(), threading.Event()
    purpose = payments.PURPOSES["topup"]

    def held_fulfil(s, p):
        purpose.fulfil(s, p)
        fulfilling.set()
        release.wait(10)

    monkeypatch.setitem(payments.PURPOSES, "topup",
                        dataclasses.replace(purpose, fulfil=held_fulfil))
    # Expired 5 minutes ago without its event: the sweep asks Stripe and settles it.
    clock.freeze(payment.expires_at + timedelta(minutes=6))

    sweep = _in_thread(app, payments.sweep)
    assert fulfilling.wait(10), sweep.get("result")
    body, signature = signed(event("checkout.session.completed",
                                   stripe_stub.sessions[payment.provider_session_id]))
    webhook = _in_thread(app, lambda s: payments.receive(s, body, signature))
    deadline = time.monotonic() + 5
    if is_postgres():
        while not _waits_for_a_lock(session):
            assert time.monotonic() < deadline and webhook["thread"].is_alive()
            time.sleep(0.02)
    else:  # SQLite: the webhook's BEGIN IMMEDIATE waits for the sweep's write lock
        time.sleep(0.5)
    assert webhook["thread"].is_alive(), webhook.get("result")
    release.set()
    sweep["thread"].join(10)
    webhook["thread"].join(10)

    assert sweep["result"] == {"paid": 1, "expired": 0}
    assert webhook["result"] == "already_paid"
    session.commit()  # read now, not from the snapshot an earlier read pinned
    session.expire_all()
    card_id = session.merge(member).cards[0].id
    assert wallet.balance(session, card_id).total == 11000
    assert session.scalar(select(func.count(ledger.Entry.id))
                          .where(ledger.Entry.reason == "topup")) == 2  # principal, bonus
    assert session.get(TopupPlan, plan.id).stock_left == 4
    assert session.get(Payment, payment.id).status == "paid"
