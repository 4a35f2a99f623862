"""Payments over HTTP: the webhook, the member's status page and demo checkout, and the
merchant's list, detail and refund."""
from __future__ import annotations

import pytest

from portal import ledger
from portal.db import db, transaction
from portal.ledger import AccountKind
from portal.payments import services as payments
from portal.payments.models import Payment
from tests.fixtures import sign_in_as
from tests.stripe_stub import RELEASED, event, signed

pytestmark = pytest.mark.usefixtures("test_purposes")


def _payment(member, amount=8800) -> Payment:
    with transaction(db.session):
        payment = payments.create(db.session, purpose="test", purpose_id=1,
                                  member_id=member.id, amount_minor=amount, currency="CNY",
                                  description="Top-up: Spring")
    return payment


def _open(app, payment) -> Payment:
    with app.test_request_context():
        payments.open_checkout(db.session, payment.id, success_url="https://x/ok",
                               cancel_url="https://x/no")
    return db.session.get(Payment, payment.id)


def test_the_webhook_fulfils_a_signed_event_and_refuses_a_bad_one(app, client, member,
                                                                  stripe_stub):
    payment = _open(app, _payment(member))
    stripe_stub.pay(payment.provider_session_id)
    body, signature = signed(event("checkout.session.completed",
                                   stripe_stub.sessions[payment.provider_session_id]))
    bad = client.post("/payments/webhooks/stripe", data=body,
                      headers={"Stripe-Signature": signature.replace("v1=", "v1=00"),
                               "Content-Type": "application/json"})
    assert bad.status_code == 400
    ok = client.post("/payments/webhooks/stripe", data=body,
                     headers={"Stripe-Signature": signature,
                              "Content-Type": "application/json"})
    assert ok.status_code == 200 and ok.json["outcome"] == "fulfilled"
    assert ledger.balance(db.session, AccountKind.POINTS, "member", member.id) == 8800


def test_the_demo_checkout_pays_through_the_same_webhook_path(app, member_client, member):
    payment = _open(app, _payment(member))
    page = member_client.get(f"/payments/demo/{payment.token}").get_data(as_text=True)
    assert "Demo payments" in page and "¥88.00" in page
    r = member_client.post(f"/payments/demo/{payment.token}", data={"action": "pay"})
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/payments/{payment.token}")
    status = member_client.get(f"/payments/{payment.token}").get_data(as_text=True)
    assert "Paid. Thank you!" in status and "Demo payments" in status
    assert ledger.balance(db.session, AccountKind.POINTS, "member", member.id) == 8800


def test_cancelling_the_demo_checkout_releases(app, member_client, member):
    payment = _open(app, _payment(member))
    member_client.post(f"/payments/demo/{payment.token}", data={"action": "cancel"})
    db.session.expire_all()
    assert db.session.get(Payment, payment.id).status == "expired"
    assert RELEASED == [payment.id]


def test_an_open_payment_polls_until_it_settles(app, member_client, member):
    payment = _open(app, _payment(member))
    r = member_client.get(f"/payments/{payment.token}", headers={"HX-Request": "true",
                                                               "HX-Target": "status"})
    fragment = r.get_data(as_text=True)
    assert "<html" not in fragment and 'hx-trigger="every 2s"' in fragment
    member_client.post(f"/payments/demo/{payment.token}", data={"action": "pay"})
    r = member_client.get(f"/payments/{payment.token}", headers={"HX-Request": "true",
                                                               "HX-Target": "status"})
    assert "every 2s" not in r.get_data(as_text=True)


def test_members_see_only_their_own_payments(app, client, member, other_member):
    payment = _open(app, _payment(member))
    sign_in_as(client, other_member)
    assert client.get(f"/payments/{payment.token}").status_code == 404
    assert client.get(f"/payments/demo/{payment.token}").status_code == 404
    assert client.post(f"/payments/demo/{payment.token}", data={"action": "pay"}) \
        .status_code == 404


def _paid(app, member) -> Payment:
    payment = _open(app, _payment(member))
    from portal.payments.providers import DemoProvider

    body, signature = DemoProvider(app.config["SECRET_KEY"]).event(payment, "paid")
    payments.receive(db.session, body, signature)
    return payment


def test_staff_list_and_refund_a_payment_in_part(app, owner_client, owner, member):
    from portal.staff.models import AuditEntry

    payment = _paid(app, member)
    page = owner_client.get("/admin/payments").get_data(as_text=True)
    assert "Top-up: Spring" in page and "¥88.00" in page
    assert owner_client.get("/admin/payments?status=expired").get_data(as_text=True) \
        .count("Top-up: Spring") == 0
    r = owner_client.post(f"/admin/payments/{payment.id}/refund",
                          data={"amount": "8.80", "reason": "Wrong amount"})
    assert r.status_code == 303
    db.session.expire_all()
    assert db.session.get(Payment, payment.id).refunded_minor == 880
    assert db.session.query(AuditEntry).filter_by(action="payment.refund",
                                                  staff_id=owner.id).count() == 1


@pytest.mark.parametrize("data,message", [
    ({"amount": "100", "reason": "x"}, "at most what is left"),
    ({"amount": "abc", "reason": "x"}, "Enter an amount"),
    ({"amount": "1", "reason": ""}, "Give a reason"),
])
def test_a_bad_refund_is_refused_and_changes_nothing(app, owner_client, member, data, message):
    payment = _paid(app, member)
    r = owner_client.post(f"/admin/payments/{payment.id}/refund", data=data)
    assert r.status_code == 422 and message in r.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Payment, payment.id).refunded_minor == 0


def test_clerks_cannot_see_payments(client, clerk):
    sign_in_as(client, clerk)
    assert client.get("/admin/payments").status_code == 403
