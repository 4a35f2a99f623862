"""Payment providers: Stripe (Checkout Sessions) and Demo (a local page, development and
test only). Both sign their webhook events with Stripe's scheme, so one verified path
handles them: `t=<unix time>,v1=HMAC-SHA256(secret, "<t>.<raw body>")`."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Protocol

import stripe
from flask import current_app, url_for

from portal.payments.models import Payment


class BadSignature(Exception):
    """The webhook's signature is missing, wrong or too old: nothing is done."""


class ProviderError(Exception):
    """The provider refused or could not be reached."""


@dataclass
class Checkout:
    session_id: str
    url: str


@dataclass
class Remote:
    """What the provider says of a checkout now (for the sweep that catches lost events)."""

    status: str                  # open, complete, expired
    paid: bool
    payment_id: str | None
    amount_minor: int | None
    currency: str | None


class PaymentProvider(Protocol):
    name: str

    def create_checkout(self, payment: Payment, *, success_url: str,
                        cancel_url: str) -> Checkout: ...

    def refund(self, payment: Payment, amount_minor: int, *, key: str) -> str: ...

    def lookup(self, payment: Payment) -> Remote: ...

    def cancel(self, payment: Payment) -> None: ...

    def verify(self, raw_body: bytes, signature: str | None) -> dict: ...


def sign(secret: str, raw_body: bytes, at: int | None = None) -> str:
    """A Stripe-Signature header for `raw_body` (the demo provider and the tests)."""
    at = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{at}.".encode() + raw_body, hashlib.sha256)
    return f"t={at},v1={digest.hexdigest()}"


def _verify(secret: str, raw_body: bytes, signature: str | None) -> dict:
    try:
        stripe.WebhookSignature.verify_header(raw_body.decode("utf-8"), signature or "",
                                              secret, tolerance=300)
        return json.loads(raw_body)
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError) as e:
        raise BadSignature(str(e)) from None


class StripeProvider:
    name = "stripe"

    def __init__(self, secret_key: str, webhook_secret: str, api_base: str | None = None):
        self.webhook_secret = webhook_secret
        self.client = stripe.StripeClient(
            secret_key, base_addresses={"api": api_base} if api_base else None,
            max_network_retries=2)

    def create_checkout(self, payment: Payment, *, success_url: str,
                        cancel_url: str) -> Checkout:
        metadata = {"payment_id": str(payment.id), "purpose": payment.purpose}
        try:
            session = self.client.v1.checkout.sessions.create(params={
                "mode": "payment",
                "line_items": [{"quantity": 1, "price_data": {
                    "currency": payment.currency.lower(), "unit_amount": payment.amount_minor,
                    "product_data": {"name": payment.description}}}],
                "success_url": success_url, "cancel_url": cancel_url,
                "client_reference_id": str(payment.id), "metadata": metadata,
                "payment_intent_data": {"metadata": metadata},
                "expires_at": int(payment.expires_at.timestamp()),
            }, options={"idempotency_key": f"payment:{payment.id}:checkout"})
        except stripe.StripeError as e:
            raise ProviderError(str(e)) from e
        return Checkout(session.id, session.url)

    def refund(self, payment: Payment, amount_minor: int, *, key: str) -> str:
        try:
            refund = self.client.v1.refunds.create(params={
                "payment_intent": payment.provider_payment_id, "amount": amount_minor,
                "metadata": {"payment_id": str(payment.id)}}, options={"idempotency_key": key})
        except stripe.StripeError as e:
            raise ProviderError(str(e)) from e
        return refund.id

    def lookup(self, payment: Payment) -> Remote:
        try:
            s = self.client.v1.checkout.sessions.retrieve(
                payment.provider_session_id).to_dict()
        except stripe.StripeError as e:
            raise ProviderError(str(e)) from e
        return Remote(s.get("status"), s.get("payment_status") in ("paid", "no_payment_required"),
                      s.get("payment_intent"), s.get("amount_total"),
                      (s.get("currency") or "").upper() or None)

    def cancel(self, payment: Payment) -> None:
        try:
            self.client.v1.checkout.sessions.expire(
                payment.provider_session_id,
                options={"idempotency_key": f"payment:{payment.id}:expire"})
        except stripe.StripeError as e:
            raise ProviderError(str(e)) from e

    def verify(self, raw_body: bytes, signature: str | None) -> dict:
        return _verify(self.webhook_secret, raw_body, signature)


class DemoProvider:
    """No money moves: the member confirms or cancels on a local page, which sends the
    event Stripe would send, signed, through the same webhook handler."""

    name = "demo"

    def __init__(self, secret_key: str):
        self.webhook_secret = "demo:" + hashlib.sha256(
            b"tessera-demo-webhook:" + secret_key.encode()).hexdigest()

    def create_checkout(self, payment: Payment, *, success_url: str,
                        cancel_url: str) -> Checkout:
        return Checkout(f"demo_cs_{payment.token}",
                        url_for("payments.demo_checkout", token=payment.token))

    def refund(self, payment: Payment, amount_minor: int, *, key: str) -> str:
        return "demo_re_" + hashlib.sha256(key.encode()).hexdigest()[:16]

    def lookup(self, payment: Payment) -> Remote:
        # Nothing happens at a demo provider that we did not see: still open.
        return Remote("open", False, None, None, None)

    def cancel(self, payment: Payment) -> None:
        return None

    def verify(self, raw_body: bytes, signature: str | None) -> dict:
        return _verify(self.webhook_secret, raw_body, signature)

    def event(self, payment: Payment, kind: str) -> tuple[bytes, str]:
        """The signed body of a `checkout.session.completed` (paid) or `expired` event."""
        body = json.dumps({
            "id": f"evt_demo_{payment.token}_{kind}", "object": "event",
            "type": "checkout.session.completed" if kind == "paid"
            else "checkout.session.expired",
            "data": {"object": {
                "id": payment.provider_session_id, "object": "checkout.session",
                "payment_status": "paid" if kind == "paid" else "unpaid",
                "status": "complete" if kind == "paid" else "expired",
                "amount_total": payment.amount_minor, "currency": payment.currency.lower(),
                "payment_intent": f"demo_pi_{payment.token}" if kind == "paid" else None,
                "metadata": {"payment_id": str(payment.id), "purpose": payment.purpose}}},
        }).encode()
        return body, sign(self.webhook_secret, body)


def provider() -> PaymentProvider:
    cfg = current_app.config
    if cfg["PAYMENT_PROVIDER"] == "stripe":
        return StripeProvider(cfg["STRIPE_SECRET_KEY"], cfg["STRIPE_WEBHOOK_SECRET"] or "",
                              cfg["STRIPE_API_BASE"])
    return DemoProvider(cfg["SECRET_KEY"])
