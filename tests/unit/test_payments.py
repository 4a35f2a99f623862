"""Payments with the real Stripe SDK against a local stub and hand-signed webhooks: the
checkout, fulfilment once (replays, duplicates, out of order), release, refunds, the
sweep for lost events, and the demo provider."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest

from portal import clock, ledger
from portal.db import transaction
from portal.ledger import AccountKind
from portal.payments import services as payments
from portal.payments.errors import PaymentError
from portal.payments.models import Payment, PaymentEvent, PaymentRefund
from portal.payments.providers import BadSignature
from tests.stripe_stub import REFUSE, RELEASED, event, signed

pytestmark = pytest.mark.usefixtures("test_purposes")

def _points(session, member) -> int:
    session.expire_all()
    return ledger.balance(session, AccountKind.POINTS, "member", member.id)


def _start(session, member, amount=12000, purpose="test") -> Payment:
    with transaction(session):
        payment = payments.create(session, purpose=purpose, purpose_id=1, member_id=member.id,
                                  amount_minor=amount, currency="CNY", description="Top-up")
    payments.open_checkout(session, payment.id, success_url="https://x/ok",
                           cancel_url="https://x/no")
    return session.get(Payment, payment.id)


def _deliver(session, payload, **kw) -> str:
    body, signature = signed(payload, **kw)
    return payments.receive(session, body, signature)


def test_checkout_is_a_stripe_session_with_our_id_and_an_idempotency_key(session, member,
                                                                          stripe_stub):
    payment = _start(session, member)
    call = stripe_stub.calls[0]
    assert (call.path, call.params["mode"], call.params["metadata[payment_id]"]) == \
        ("/v1/checkout/sessions", "payment", str(payment.id))
    assert call.params["line_items[0][price_data][unit_amount]"] == "12000"
    assert call.params["line_items[0][price_data][currency]"] == "cny"
    assert call.idempotency_key == f"payment:{payment.id}:checkout"
    assert payment.checkout_url == f"https://checkout.test/{payment.provider_session_id}"
    assert payment.status == "open"


def test_a_paid_session_fulfils_once_however_often_it_arrives(session, member, stripe_stub):
    payment = _start(session, member)
    stripe_stub.pay(payment.provider_session_id)
    paid = event("checkout.session.completed",
                 stripe_stub.sessions[payment.provider_session_id])
    assert [_deliver(session, paid) for _ in range(5)] == ["fulfilled"] + ["duplicate"] * 4
    also = event("checkout.session.async_payment_succeeded",
                 stripe_stub.sessions[payment.provider_session_id])
    assert _deliver(session, also) == "already_paid"
    assert _points(session, member) == 12000
    payment = session.get(Payment, payment.id)
    assert (payment.status, payment.provider_payment_id) == \
        ("paid", f"pi_{payment.provider_session_id}")
    assert session.query(PaymentEvent).count() == 2


def test_expired_after_paid_changes_nothing(session, member, stripe_stub):
    payment = _start(session, member)
    stripe_stub.pay(payment.provider_session_id)
    s = stripe_stub.sessions[payment.provider_session_id]
    _deliver(session, event("checkout.session.completed", s))
    assert _deliver(session, event("checkout.session.expired", s)) == "ignored"
    assert session.get(Payment, payment.id).status == "paid" and RELEASED == []


def test_expiry_releases_and_a_late_payment_is_still_fulfilled(session, member, stripe_stub):
    payment = _start(session, member)
    s = stripe_stub.sessions[payment.provider_session_id]
    assert _deliver(session, event("checkout.session.expired", s)) == "expired"
    assert RELEASED == [payment.id]
    stripe_stub.pay(s["id"])
    assert _deliver(session, event("checkout.session.completed", s)) == "fulfilled_late"
    assert _points(session, member) == 12000


def test_a_late_payment_that_cannot_be_fulfilled_is_refunded(session, member, stripe_stub):
    payment = _start(session, member)
    s = stripe_stub.sessions[payment.provider_session_id]
    _deliver(session, event("checkout.session.expired", s))
    REFUSE.add(payment.id)
    stripe_stub.pay(s["id"])
    assert _deliver(session, event("checkout.session.completed", s)) == \
        "refunded_unfulfillable"
    payment = session.get(Payment, payment.id)
    assert (payment.status, payment.refunded_minor) == ("refunded", 12000)
    refund_call = stripe_stub.calls[-1]
    assert refund_call.path == "/v1/refunds" and refund_call.params["amount"] == "12000"
    assert _points(session, member) == 0


def test_a_delayed_method_waits_then_fails(session, member, stripe_stub):
    payment = _start(session, member)
    s = stripe_stub.sessions[payment.provider_session_id]
    s["status"] = "complete"
    assert _deliver(session, event("checkout.session.completed", s)) == "processing"
    assert _deliver(session, event("checkout.session.async_payment_failed", s)) == "failed"
    assert session.get(Payment, payment.id).status == "failed" and RELEASED == [payment.id]


def test_a_paid_amount_that_does_not_match_is_not_fulfilled(session, member, stripe_stub):
    payment = _start(session, member)
    stripe_stub.pay(payment.provider_session_id)
    s = stripe_stub.sessions[payment.provider_session_id]
    assert _deliver(session, event("checkout.session.completed", s, amount_total=100)) == \
        "amount_mismatch"
    assert _points(session, member) == 0


@pytest.mark.parametrize("how", ["wrong secret", "stale", "tampered", "missing"])
def test_a_bad_signature_changes_nothing(session, member, stripe_stub, how):
    payment = _start(session, member)
    stripe_stub.pay(payment.provider_session_id)
    payload = event("checkout.session.completed",
                    stripe_stub.sessions[payment.provider_session_id])
    body, signature = signed(payload, secret="whsec_other" if how == "wrong secret" else
                             "whsec_test_secret",
                             at=int(time.time()) - 3600 if how == "stale" else None)
    if how == "tampered":
        body = body.replace(b'"amount_total": 12000', b'"amount_total": 12001')
    with pytest.raises(BadSignature):
        payments.receive(session, body, None if how == "missing" else signature)
    assert _points(session, member) == 0 and session.query(PaymentEvent).count() == 0


def test_refund_in_parts_with_idempotency_keys(session, member, owner, stripe_stub):
    payment = _start(session, member)
    stripe_stub.pay(payment.provider_session_id)
    _deliver(session, event("checkout.session.completed",
                            stripe_stub.sessions[payment.provider_session_id]))
    payments.refund(session, payment.id, 2000, reason="half a coffee", operator_id=owner.id)
    with pytest.raises(PaymentError) as e:
        payments.refund(session, payment.id, 10001, reason="too much", operator_id=owner.id)
    assert e.value.code == "bad_amount"
    payments.refund(session, payment.id, 10000, reason="the rest", operator_id=owner.id)
    payment = session.get(Payment, payment.id)
    assert (payment.status, payment.refunded_minor) == ("refunded", 12000)
    keys = [c.idempotency_key for c in stripe_stub.calls if c.path == "/v1/refunds"]
    assert keys == [f"payment:{payment.id}:refund:0:2000",
                    f"payment:{payment.id}:refund:2000:10000"]
    assert [r.reversal for r in session.query(PaymentRefund).order_by(PaymentRefund.id)] == \
        [{"taken_back": 2000}, {"taken_back": 10000}]


def test_refunds_are_refused_where_the_purpose_allows_none(session, member, owner,
                                                          stripe_stub):
    payment = _start(session, member, purpose="norefund")
    stripe_stub.pay(payment.provider_session_id)
    _deliver(session, event("checkout.session.completed",
                            stripe_stub.sessions[payment.provider_session_id]))
    with pytest.raises(PaymentError) as e:
        payments.refund(session, payment.id, 100, reason="x", operator_id=owner.id)
    assert e.value.code == "not_refundable"


def test_a_provider_failure_on_refund_changes_nothing(session, member, owner, stripe_stub):
    payment = _start(session, member)
    stripe_stub.pay(payment.provider_session_id)
    _deliver(session, event("checkout.session.completed",
                            stripe_stub.sessions[payment.provider_session_id]))
    stripe_stub.fail_next = "/v1/refunds"
    with pytest.raises(PaymentError) as e:
        payments.refund(session, payment.id, 500, reason="x", operator_id=owner.id)
    assert e.value.code == "provider_unavailable"
    session.expire_all()
    assert session.get(Payment, payment.id).refunded_minor == 0
    assert session.query(PaymentRefund).count() == 0


def test_a_provider_failure_at_checkout_releases_what_was_held(session, member, stripe_stub):
    stripe_stub.fail_next = "/v1/checkout/sessions"
    with transaction(session):
        payment = payments.create(session, purpose="test", purpose_id=1, member_id=member.id,
                                  amount_minor=500, currency="CNY", description="x")
    with pytest.raises(PaymentError):
        payments.open_checkout(session, payment.id, success_url="https://x/ok",
                               cancel_url="https://x/no")
    assert session.get(Payment, payment.id).status == "expired"
    assert RELEASED == [payment.id]


def test_the_sweep_settles_payments_whose_events_were_lost(session, member, stripe_stub):
    paid = _start(session, member)
    abandoned = _start(session, member, amount=300)
    stripe_stub.pay(paid.provider_session_id)
    clock.freeze(clock.now() + timedelta(minutes=40))
    assert payments.sweep(session) == {"paid": 1, "expired": 1}
    assert session.get(Payment, paid.id).status == "paid"
    assert session.get(Payment, abandoned.id).status == "expired"
    assert stripe_stub.sessions[abandoned.provider_session_id]["status"] == "expired"
    assert payments.sweep(session) == {"paid": 0, "expired": 0}
    assert _points(session, member) == 12000


def test_the_demo_provider_signs_what_stripe_would_send(app, session, member):
    from portal.payments.providers import DemoProvider

    with app.test_request_context():  # the demo's checkout address is one of our pages
        payment = _start(session, member)
    assert payment.checkout_url == f"/payments/demo/{payment.token}"
    demo = DemoProvider(app.config["SECRET_KEY"])
    body, signature = demo.event(payment, "paid")
    assert payments.receive(session, body, signature) == "fulfilled"
    assert payments.receive(session, body, signature) == "duplicate"
    with pytest.raises(BadSignature):
        payments.receive(session, body, signature.replace("v1=", "v1=0"))


def test_a_refund_sees_a_refund_made_meanwhile_by_another_request(app, session, member,
                                                                 owner, stripe_stub):
    """The view loaded the payment before another request refunded part of it: the lock
    reads the row afresh, so nothing is refunded twice or lost."""
    from sqlalchemy.orm import Session

    from portal.db import db

    payment = _start(session, member, amount=10000)
    stripe_stub.pay(payment.provider_session_id)
    _deliver(session, event("checkout.session.completed",
                            stripe_stub.sessions[payment.provider_session_id]))
    stale = session.get(Payment, payment.id)            # what this request loaded first
    assert stale.refunded_minor == 0
    session.commit()
    with Session(db.engine) as other:
        payments.refund(other, payment.id, 6000, reason="first", operator_id=owner.id)
    with pytest.raises(PaymentError):                   # only 40.00 is left
        payments.refund(session, payment.id, 5000, reason="second", operator_id=owner.id)
    payments.refund(session, payment.id, 3000, reason="second", operator_id=owner.id)
    session.expire_all()
    assert session.get(Payment, payment.id).refunded_minor == 9000
