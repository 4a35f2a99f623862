"""Payments: start a checkout for a purpose, take provider events (verified, once each),
fulfil or release in the same transaction as the payment's state change, refund.

A purpose (top-up, gift card, package) registers what to do with `register()`:
- fulfil(session, payment): deliver what was paid for, once; may raise FulfilmentRefused
- release(session, payment): give back what the checkout reserved (it expired or failed)
- refund(session, payment, amount_minor) -> dict: take back what the refund pays back,
  or raise PaymentError(NOT_REFUNDABLE); None if the purpose allows no refunds.
Each runs inside the payment's transaction, so a replayed or late event finds the
payment's new status and does nothing twice."""
from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from portal import clock, jobs
from portal.db import transaction
from portal.payments.errors import FulfilmentRefused, PaymentError, PaymentErrorCode
from portal.payments.models import Payment, PaymentEvent, PaymentRefund, PaymentStatus
from portal.payments.providers import ProviderError, provider

log = logging.getLogger(__name__)

PAID_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")


@dataclass
class Purpose:
    name: str
    label: object                       # lazy text for staff lists
    fulfil: Callable
    release: Callable
    refund: Callable | None = None
    result_endpoint: str | None = None  # where the member goes once it is paid
    note: Callable | None = None        # (session, payment) -> what else the member must know
    result_url: Callable | None = None  # (session, payment) -> where it goes, if it depends


PURPOSES: dict[str, Purpose] = {}


def register(name: str, *, label, fulfil, release, refund=None, result_endpoint=None,
             note=None, result_url=None):
    PURPOSES[name] = Purpose(name, label, fulfil, release, refund, result_endpoint, note,
                             result_url)


def purpose_label(name: str) -> str:
    purpose = PURPOSES.get(name)
    return str(purpose.label) if purpose else name


# --- starting a payment -----------------------------------------------------------------

def create(session: Session, *, purpose: str, purpose_id: int, member_id: int | None,
           amount_minor: int, currency: str, description: str) -> Payment:
    """The payment row, in the caller's transaction (with whatever it reserves)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown payment purpose {purpose!r}")
    if amount_minor <= 0:
        raise PaymentError(PaymentErrorCode.BAD_AMOUNT, _("There is nothing to pay."))
    payment = Payment(token=secrets.token_urlsafe(18), purpose=purpose, purpose_id=purpose_id,
                      member_id=member_id, amount_minor=amount_minor, currency=currency,
                      description=description[:200], provider=provider().name,
                      expires_at=clock.now() + current_app.config["PAYMENT_TTL"])
    session.add(payment)
    session.flush()
    return payment


def open_checkout(session: Session, payment_id: int, *, success_url: str,
                  cancel_url: str) -> str:
    """Ask the provider for a checkout page (outside any transaction: it is a network
    call) and return its address. If the provider fails, the payment is closed and what
    it reserved is released."""
    payment = session.get(Payment, payment_id)
    try:
        checkout = provider().create_checkout(payment, success_url=success_url,
                                              cancel_url=cancel_url)
    except ProviderError as e:
        log.warning("checkout for payment %s failed: %s", payment_id, e)
        session.rollback()
        with transaction(session):
            payment = _locked(session, payment_id)
            _expire(session, payment)
        raise PaymentError(PaymentErrorCode.PROVIDER,
                           _("Payments are unavailable just now. Nothing was charged; "
                             "please try again in a moment.")) from e
    session.rollback()
    with transaction(session):
        payment = _locked(session, payment_id)
        payment.provider_session_id, payment.checkout_url = checkout.session_id, checkout.url
    return checkout.url


def _locked(session: Session, payment_id: int) -> Payment | None:
    return session.scalar(select(Payment).where(Payment.id == payment_id)
                          .with_for_update().execution_options(populate_existing=True))


def by_token(session: Session, token: str, member_id: int | None = None) -> Payment | None:
    query = select(Payment).where(Payment.token == token)
    if member_id is not None:
        query = query.where(Payment.member_id == member_id)
    return session.scalar(query)


# --- provider events --------------------------------------------------------------------

def receive(session: Session, raw_body: bytes, signature: str | None) -> str:
    """A webhook: verify its signature on the raw body (BadSignature: nothing happens),
    then act on it once."""
    event = provider().verify(raw_body, signature)
    return handle(session, event)


def handle(session: Session, event: dict) -> str:
    """Act on a verified event, once per event id, in one transaction with everything
    it changes. Returns what it did (for logs and tests)."""
    name = provider().name
    try:
        with transaction(session):
            if session.scalar(select(PaymentEvent.id).where(
                    PaymentEvent.provider == name, PaymentEvent.event_id == event["id"])):
                return "duplicate"
            obj = event.get("data", {}).get("object", {})
            payment = _payment_for(session, obj)
            outcome = _apply(session, payment, event["type"], obj) if payment else "unknown"
            session.add(PaymentEvent(provider=name, event_id=event["id"], type=event["type"],
                                     payment_id=payment.id if payment else None,
                                     outcome=outcome))
            return outcome
    except IntegrityError:
        session.rollback()
        if session.scalar(select(PaymentEvent.id).where(PaymentEvent.provider == name,
                                                        PaymentEvent.event_id == event["id"])):
            return "duplicate"  # handled by a parallel delivery that committed first
        raise  # anything else fails the webhook, so that the provider sends it again


def _payment_for(session: Session, obj: dict) -> Payment | None:
    payment_id = (obj.get("metadata") or {}).get("payment_id")
    query = select(Payment).with_for_update().execution_options(populate_existing=True)
    if payment_id and str(payment_id).isdecimal():
        return session.scalar(query.where(Payment.id == int(payment_id)))
    if obj.get("id"):
        return session.scalar(query.where(Payment.provider_session_id == obj["id"]))
    return None


def _apply(session: Session, payment: Payment, kind: str, obj: dict) -> str:
    if kind in PAID_EVENTS:
        if obj.get("payment_status") in ("paid", "no_payment_required"):
            return _paid(session, payment, obj.get("payment_intent"), obj.get("amount_total"),
                         (obj.get("currency") or "").upper() or None)
        if payment.status == PaymentStatus.OPEN:
            payment.status = PaymentStatus.PROCESSING
            return "processing"
        return "ignored"
    if kind == "checkout.session.async_payment_failed":
        if payment.status in (PaymentStatus.OPEN, PaymentStatus.PROCESSING):
            _close(session, payment, PaymentStatus.FAILED)
            return "failed"
        return "ignored"
    if kind == "checkout.session.expired":
        if payment.status in (PaymentStatus.OPEN, PaymentStatus.PROCESSING):
            _expire(session, payment)
            return "expired"
        return "ignored"
    return "ignored"


def _paid(session: Session, payment: Payment, provider_payment_id: str | None,
          amount: int | None, currency: str | None) -> str:
    if payment.status in (PaymentStatus.PAID, PaymentStatus.REFUNDED):
        return "already_paid"
    if amount is not None and (amount != payment.amount_minor
                               or (currency and currency != payment.currency)):
        log.error("payment %s: paid %s %s, expected %s %s", payment.id, amount, currency,
                  payment.amount_minor, payment.currency)
        _close(session, payment, PaymentStatus.REVIEW)
        return "amount_mismatch"
    late = payment.status in (PaymentStatus.EXPIRED, PaymentStatus.FAILED)
    payment.provider_payment_id = provider_payment_id or payment.provider_payment_id
    payment.status, payment.paid_at = PaymentStatus.PAID, clock.now()
    try:
        with session.begin_nested():
            PURPOSES[payment.purpose].fulfil(session, payment)
    except FulfilmentRefused as e:
        # Paid after it was given up (its reservation released and gone): pay it back.
        log.warning("payment %s paid late and cannot be fulfilled (%s): refunding",
                    payment.id, e)
        refund_id = provider().refund(payment, payment.amount_minor,
                                      key=f"payment:{payment.id}:refund:unfulfilled")
        session.add(PaymentRefund(payment_id=payment.id, amount_minor=payment.amount_minor,
                                  reason="could not be fulfilled", provider_refund_id=refund_id,
                                  reversal={}))
        payment.refunded_minor = payment.amount_minor
        payment.status, payment.closed_at = PaymentStatus.REFUNDED, clock.now()
        return "refunded_unfulfillable"
    return "fulfilled_late" if late else "fulfilled"


def _close(session: Session, payment: Payment, status: PaymentStatus) -> None:
    payment.status, payment.closed_at = status, clock.now()
    PURPOSES[payment.purpose].release(session, payment)


def _expire(session: Session, payment: Payment) -> None:
    _close(session, payment, PaymentStatus.EXPIRED)


def cancel(session: Session, token: str, member_id: int | None) -> Payment | None:
    """The member gave up at the checkout: close it and release what it held (a
    payment that went through meanwhile is left alone)."""
    payment = by_token(session, token, member_id)
    if payment is None:
        return None
    if payment.status == PaymentStatus.OPEN and payment.provider_session_id:
        try:
            provider().cancel(payment)
        except ProviderError:
            return payment  # it may have been paid: the sweep or the webhook decides
    session.rollback()
    with transaction(session):
        payment = _locked(session, payment.id)
        if payment.status == PaymentStatus.OPEN:
            _expire(session, payment)
        return payment


@jobs.on_tick("payments")
def sweep(session: Session, limit: int = 100) -> dict[str, int]:
    """Checkouts left open past their expiry (an event lost, a tab closed): ask the
    provider and settle them as its event would have. A delayed method still processing
    is left to its own event."""
    # Newest first: a few the provider cannot answer for must not hold up the rest.
    stale = session.scalars(select(Payment.id).where(
        Payment.status == PaymentStatus.OPEN,
        Payment.expires_at < clock.now() - timedelta(minutes=5))
        .order_by(Payment.id.desc()).limit(limit)).all()
    session.rollback()
    done = {"paid": 0, "expired": 0}
    for payment_id in stale:
        payment = session.get(Payment, payment_id)
        try:
            remote = provider().lookup(payment) if payment.provider_session_id else None
            if remote is not None and remote.status == "open" and not remote.paid:
                provider().cancel(payment)
        except ProviderError:
            continue  # the provider is away: next minute
        session.rollback()
        with transaction(session):
            payment = _locked(session, payment_id)
            if payment.status != PaymentStatus.OPEN:
                continue
            if remote is not None and remote.paid:
                if _paid(session, payment, remote.payment_id, remote.amount_minor,
                         remote.currency).startswith("fulfilled"):
                    done["paid"] += 1
            elif remote is not None and remote.status == "complete":
                payment.status = PaymentStatus.PROCESSING  # a delayed method: its event
            else:
                _expire(session, payment)
                done["expired"] += 1
    return done


# --- refunds ----------------------------------------------------------------------------

def refund(session: Session, payment_id: int, amount_minor: int, *, reason: str,
           operator_id: int) -> PaymentRefund:
    """Pay back `amount_minor` of a paid payment (whole or part), when its purpose allows:
    the purpose takes back what it gave, then the provider refunds, all or nothing."""
    from portal.staff.services import record

    reason = (reason or "").strip()
    if not reason:
        raise PaymentError(PaymentErrorCode.BAD_AMOUNT, _("Give a reason."), field="reason")
    with transaction(session):
        payment = _locked(session, payment_id)
        if payment is None:
            raise PaymentError(PaymentErrorCode.NOT_FOUND, _("There is no such payment."))
        purpose = PURPOSES[payment.purpose]
        if purpose.refund is None:
            raise PaymentError(PaymentErrorCode.NOT_REFUNDABLE,
                               _("This kind of payment cannot be refunded here."))
        if not 0 < amount_minor <= payment.refundable_minor:
            raise PaymentError(PaymentErrorCode.BAD_AMOUNT,
                               _("Refund more than zero and at most what is left to refund."),
                               field="amount")
        reversal = purpose.refund(session, payment, amount_minor)
        # The same key for the same refund of the same remainder: a retry after a crash
        # does not pay back twice at the provider.
        key = f"payment:{payment.id}:refund:{payment.refunded_minor}:{amount_minor}"
        try:
            provider_refund_id = provider().refund(payment, amount_minor, key=key)
        except ProviderError as e:
            raise PaymentError(PaymentErrorCode.PROVIDER,
                               _("The payment provider refused the refund: %(why)s",
                                 why=str(e)[:200])) from e
        refund_row = PaymentRefund(payment_id=payment.id, amount_minor=amount_minor,
                                   reason=reason[:200], reversal=reversal or {},
                                   provider_refund_id=provider_refund_id,
                                   operator_id=operator_id)
        session.add(refund_row)
        payment.refunded_minor += amount_minor
        if payment.refunded_minor == payment.amount_minor:
            payment.status, payment.closed_at = PaymentStatus.REFUNDED, clock.now()
        session.flush()
        record(session, operator_id, "payment.refund", payment,
               after={"amount_minor": amount_minor, "reason": reason, "reversal": reversal})
        return refund_row


# --- staff lists ------------------------------------------------------------------------

STATUSES = tuple(PaymentStatus)


def payment_list(session: Session, *, status: str | None = None, purpose: str | None = None,
                 before_id: int | None = None, limit: int = 50) -> list[Payment]:
    query = (select(Payment).options(selectinload(Payment.member))
             .order_by(Payment.id.desc()).limit(limit))
    if status in STATUSES:
        query = query.where(Payment.status == status)
    if purpose in PURPOSES:
        query = query.where(Payment.purpose == purpose)
    if before_id:
        query = query.where(Payment.id < before_id)
    return list(session.scalars(query))


def payment_detail(session: Session, payment_id: int) -> tuple[Payment, list[PaymentEvent]]:
    payment = session.scalar(select(Payment).options(selectinload(Payment.refunds))
                             .where(Payment.id == payment_id))
    if payment is None:
        return None, []
    events = session.scalars(select(PaymentEvent).where(PaymentEvent.payment_id == payment_id)
                             .order_by(PaymentEvent.id)).all()
    return payment, list(events)


def totals(session: Session) -> dict[str, int]:
    return dict(session.execute(select(Payment.status, func.count(Payment.id))
                                .group_by(Payment.status)).all())


STATUS_LABELS = {
    PaymentStatus.OPEN: _l("Waiting for payment"),
    PaymentStatus.PROCESSING: _l("Processing"),
    PaymentStatus.PAID: _l("Paid"),
    PaymentStatus.FAILED: _l("Failed"),
    PaymentStatus.EXPIRED: _l("Expired or cancelled"),
    PaymentStatus.REFUNDED: _l("Refunded"),
    PaymentStatus.REVIEW: _l("Needs attention"),
}


def is_demo() -> bool:
    return provider().name == "demo"

