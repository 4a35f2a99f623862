"""Payments in the merchant area: the list, one payment with its events, refunds."""
from __future__ import annotations

from decimal import InvalidOperation

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _

from portal.admin.views import MANAGERS, bp
from portal.db import db
from portal.money import Money
from portal.payments import services as payments
from portal.payments.errors import PaymentError
from portal.payments.models import Payment
from portal.web.auth import current_staff, staff_required
from portal.web.forms import EmptyForm
from portal.web.render import render


@bp.get("/payments")
@staff_required(*MANAGERS)
def payment_list():
    status = request.args.get("status", "")
    purpose = request.args.get("purpose", "")
    rows = payments.payment_list(db.session, status=status or None, purpose=purpose or None,
                                 before_id=request.args.get("before", type=int))
    return render("admin/payments/list.html", block="results", rows=rows, chosen=status,
                  purpose=purpose, statuses=payments.STATUSES, labels=payments.STATUS_LABELS,
                  purposes=sorted(payments.PURPOSES), purpose_label=payments.purpose_label,
                  demo=payments.is_demo())


def _detail(payment_id: int, *, error: str | None = None, amount: str = "", reason: str = "",
            status: int = 200):
    payment, events = payments.payment_detail(db.session, payment_id)
    if payment is None:
        abort(404)
    refundable = payments.PURPOSES.get(payment.purpose) is not None and \
        payments.PURPOSES[payment.purpose].refund is not None
    return render("admin/payments/detail.html", payment=payment, events=events,
                  labels=payments.STATUS_LABELS, purpose_label=payments.purpose_label,
                  refundable=refundable and payment.refundable_minor > 0, form=EmptyForm(),
                  error=error, amount=amount, reason=reason, demo=payments.is_demo(),
                  status=status)


@bp.get("/payments/<int:payment_id>")
@staff_required(*MANAGERS)
def payment_detail(payment_id: int):
    return _detail(payment_id)


@bp.post("/payments/<int:payment_id>/refund")
@staff_required(*MANAGERS)
def payment_refund(payment_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    payment = db.session.get(Payment, payment_id)
    if payment is None:
        abort(404)
    raw = (request.form.get("amount") or "").strip().replace(",", "")
    reason = request.form.get("reason", "")
    try:
        amount = Money.parse(raw, payment.currency).minor if raw else payment.refundable_minor
    except (ValueError, InvalidOperation):
        return _detail(payment_id, error=_("Enter an amount such as 12.50."), amount=raw,
                       reason=reason, status=422)
    try:
        payments.refund(db.session, payment_id, amount, reason=reason,
                        operator_id=current_staff().id)
    except PaymentError as e:
        return _detail(payment_id, error=str(e), amount=raw, reason=reason, status=422)
    flash(_("Refunded."), "success")
    return redirect(url_for("admin.payment_detail", payment_id=payment_id), 303)
