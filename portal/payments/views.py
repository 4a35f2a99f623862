"""The payment pages members see (status, the demo checkout) and the provider webhook."""
from __future__ import annotations

import logging

from flask import Blueprint, abort, jsonify, redirect, request, url_for

from portal.db import db
from portal.extensions import csrf
from portal.payments import services as payments
from portal.payments.models import PaymentStatus
from portal.payments.providers import BadSignature, DemoProvider, provider
from portal.web.auth import _current_member, is_previewing
from portal.web.forms import EmptyForm
from portal.web.render import render

log = logging.getLogger(__name__)
bp = Blueprint("payments", __name__, url_prefix="/payments")


@bp.post("/webhooks/stripe")
@csrf.exempt
def stripe_webhook():
    """Stripe (or, in development, the demo checkout) tells us what happened. The body is
    verified as received, byte for byte; a bad or stale signature changes nothing."""
    try:
        outcome = payments.receive(db.session, request.get_data(cache=False),
                                   request.headers.get("Stripe-Signature"))
    except BadSignature as e:
        log.warning("webhook refused: %s", e)
        return jsonify(error="bad_signature"), 400
    return jsonify(received=True, outcome=outcome)


class _SignIn(Exception):
    """The payment is a member's and nobody is signed in: send them to sign in."""


def _own(token: str):
    """The payment behind a token: a guest's to whoever holds the token (it is long and
    random, sent only to the payer); a member's to that member only."""
    payment = payments.by_token(db.session, token)
    if payment is None:
        abort(404)
    if payment.member_id is None:
        return payment
    member = _current_member()
    if member is None:
        raise _SignIn
    if payment.member_id != member.id:
        abort(404)
    return payment


@bp.errorhandler(_SignIn)
def _sign_in(_e):
    from portal.extensions import login_manager

    return login_manager.unauthorized()


def _result_url(payment) -> str | None:
    purpose = payments.PURPOSES.get(payment.purpose)
    if payment.status != PaymentStatus.PAID or purpose is None:
        return None
    if purpose.result_url:
        return purpose.result_url(db.session, payment)
    return url_for(purpose.result_endpoint) if purpose.result_endpoint else None


@bp.get("/<token>")
def status(token: str):
    """Where the member lands back: shows the status only (the webhook fulfils); an
    open payment is polled with HTMX until it settles."""
    payment = _own(token)
    purpose = payments.PURPOSES.get(payment.purpose)
    note = purpose.note(db.session, payment) if purpose and purpose.note and \
        payment.status == PaymentStatus.PAID else None
    return render("payments/status.html", block="status", payment=payment,
                  result_url=_result_url(payment), labels=payments.STATUS_LABELS,
                  demo=payments.is_demo(), note=note)


@bp.get("/<token>/cancelled")
def cancelled(token: str):
    """The provider's "back" link: the payer gave up, so what was held is released."""
    payment = _own(token)
    if not is_previewing():
        payments.cancel(db.session, token, payment.member_id)
    return redirect(url_for("payments.status", token=token), 303)


@bp.route("/demo/<token>", methods=["GET", "POST"])
def demo_checkout(token: str):
    """The demo provider's checkout: pay or cancel, no money moves. Either way it sends
    the signed event Stripe would send through the webhook handler."""
    gateway = provider()
    if not isinstance(gateway, DemoProvider):
        abort(404)
    payment = _own(token)
    form = EmptyForm()
    if request.method == "POST" and not is_previewing():
        if not form.validate_on_submit():
            abort(400)
        if payment.status == PaymentStatus.OPEN:
            kind = "paid" if request.form.get("action") == "pay" else "expired"
            body, signature = gateway.event(payment, kind)
            payments.receive(db.session, body, signature)
        return redirect(url_for("payments.status", token=token), 303)
    return render("payments/demo.html", payment=payment, form=form,
                  labels=payments.STATUS_LABELS)
