"""Paying a bill at a store from the prepaid balance; when the balance is short, the smart
top-up offers for that bill come up in a dialog, and one pays for the top-up and the bill
in one step."""
from __future__ import annotations

import secrets
from decimal import InvalidOperation

from flask import abort, flash, make_response, redirect, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from portal.db import db
from portal.members.models import Store
from portal.money import Money
from portal.payments import services as payments
from portal.payments.errors import PaymentError
from portal.payments.models import Payment
from portal.wallet import balance as wallet
from portal.wallet import smart
from portal.wallet.errors import WalletError, WalletErrorCode
from portal.wallet.topup_views import _absolute, _cards
from portal.wallet.views import bp
from portal.web.auth import current_member, is_previewing, member_required
from portal.web.filters import money
from portal.web.forms import EmptyForm
from portal.web.render import render


def _stores() -> list[Store]:
    return list(db.session.scalars(select(Store).order_by(Store.name)))


def _read(stores, cards) -> tuple[dict, dict]:
    """The bill as the form (or a till's QR link) gives it: card, store, amount."""
    values = request.values
    errors = {}
    card = next((c for c in cards if c.id == values.get("card", type=int)), None) or \
        (cards[0] if len(cards) == 1 else None)
    if card is None:
        errors["card"] = _("Choose a card.")
    store_code = values.get("store", "")
    store = next((s for s in stores if s.code == store_code), None)
    if store is None:
        errors["store"] = _("Choose the store.")
    amount = None
    raw = (values.get("amount") or "").strip().replace(",", "")
    if values.get("amount_minor", "").isdecimal():
        amount = int(values["amount_minor"])
    elif raw:
        try:
            amount = Money.parse(raw, card.plan.currency if card else "CNY").minor
        except (ValueError, InvalidOperation):
            errors["amount"] = _("Enter an amount such as 128 or 35.50.")
    if amount is not None and amount <= 0:
        errors["amount"] = _("Enter an amount above zero.")
    elif amount is None and "amount" not in errors:
        errors["amount"] = _("Enter the amount of the bill.")
    return {"card": card, "store": store, "amount": amount, "raw": raw or (
        str(Money(amount, card.plan.currency).amount) if amount and card else ""),
        "order": (values.get("order") or "")[:64] or None,
        "nonce": values.get("nonce") or secrets.token_urlsafe(12)}, errors


@bp.route("/pay", methods=["GET", "POST"])
@member_required
def pay():
    cards, stores = _cards(), _stores()
    bill, errors = _read(stores, cards)
    offers, shown_errors, status = [], {}, 200
    if request.method == "POST" and not is_previewing():
        if not EmptyForm().validate_on_submit():
            abort(400)
        shown_errors = errors
        if not errors:
            card = bill["card"]
            try:
                paid = wallet.charge(db.session, card_id=card.id, amount_minor=bill["amount"],
                                     currency=card.plan.currency,
                                     idempotency_key=f"portal:{bill['nonce']}",
                                     order_external_id=bill["order"],
                                     store_id=bill["store"].id, channel="ONLINE")
            except WalletError as e:
                if e.code != WalletErrorCode.INSUFFICIENT_BALANCE:
                    shown_errors = {"amount": str(e)}
                    status = 422
                else:
                    offers = smart.offers_for_bill(db.session, card=card,
                                                   amount_minor=bill["amount"],
                                                   store_id=bill["store"].id, channel="ONLINE")
                    shown_errors = {"amount": str(e)} if not offers else {}
                    status = 409
            else:
                flash(_("Paid %(amount)s from your balance.",
                        amount=money(paid.amount_minor, paid.currency)), "success")
                if request.htmx:
                    # The form was sent by htmx into #bill: move the whole page instead.
                    response = make_response("", 200)
                    response.headers["HX-Redirect"] = url_for("wallet.balance_page")
                    return response
                return redirect(url_for("wallet.balance_page"), 303)
        else:
            status = 422
    balance = wallet.balance(db.session, bill["card"].id) if bill["card"] else None
    return render("wallet/pay.html", block="bill", cards=cards, stores=stores, bill=bill,
                  errors=shown_errors, offers=offers, balance=balance,
                  titles=_gift_titles(offers), form=EmptyForm(), demo=payments.is_demo(),
                  status=status)


def _gift_titles(offers: list[dict]) -> dict[int, str]:
    from portal.coupons.models import CouponTemplate

    ids = {t for o in offers for t in o["gift_template_ids"]}
    if not ids:
        return {}
    return dict(db.session.execute(select(CouponTemplate.id, CouponTemplate.title)
                                   .where(CouponTemplate.id.in_(ids))).all())


@bp.post("/pay/smart")
@member_required
def pay_smart():
    if not EmptyForm().validate_on_submit():
        abort(400)
    cards, stores = _cards(), _stores()
    bill, errors = _read(stores, cards)
    if errors or is_previewing():
        return redirect(url_for("wallet.pay"), 303)
    try:
        topup = smart.start(db.session, member_id=current_member.id, card_id=bill["card"].id,
                            plan_id=request.form.get("plan_id", type=int) or 0,
                            tier_id=request.form.get("tier_id", type=int) or 0,
                            bill_minor=bill["amount"], store_id=bill["store"].id,
                            order_external_id=bill["order"])
        payment = db.session.get(Payment, topup.payment_id)
        url = payments.open_checkout(
            db.session, payment.id,
            success_url=_absolute(url_for("payments.status", token=payment.token)),
            cancel_url=_absolute(url_for("payments.cancelled", token=payment.token)))
    except (WalletError, PaymentError) as e:
        flash(str(e), "error")
        return redirect(url_for("wallet.pay", card=bill["card"].id, store=bill["store"].code,
                                amount=bill["raw"]), 303)
    return redirect(url, 303)
