"""The member's top-up pages: choose a plan (and an amount), pay, or redeem a code."""
from __future__ import annotations

from decimal import InvalidOperation

from flask import abort, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _

from portal.db import db
from portal.money import Money
from portal.payments import services as payments
from portal.payments.errors import PaymentError
from portal.payments.models import Payment
from portal.wallet import plans, topups
from portal.wallet.errors import WalletError
from portal.wallet.models import PlanKind, TopupPlan
from portal.wallet.views import bp
from portal.web.auth import current_member, is_previewing, member_required
from portal.web.filters import money
from portal.web.forms import EmptyForm
from portal.web.render import render


def _absolute(path: str) -> str:
    base = current_app.config["PUBLIC_URL"]
    return (base.rstrip("/") + path) if base else request.host_url.rstrip("/") + path


def _cards():
    return [c for c in current_member.cards if c.current_status() == "active"]


@bp.get("/topup")
@member_required
def topup_list():
    cards = _cards()
    offers = {c.id: plans.available_plans(db.session, current_member._get_current_object(), c,
                                          channel="ONLINE") for c in cards}
    return render("wallet/topup_list.html", cards=cards, offers=offers, form=EmptyForm(),
                  demo=payments.is_demo(), code_error=None, code_card=None)


def _plan_and_card(plan_id: int):
    card_id = request.values.get("card", type=int)
    card = next((c for c in _cards() if c.id == card_id), None)
    plan = db.session.get(TopupPlan, plan_id)
    if card is None or plan is None:
        abort(404)
    return plan, card


def _amount(plan, currency: str) -> tuple[int | None, str | None]:
    if plan.kind == PlanKind.FIXED:
        return plan.amount_minor, None
    raw = (request.values.get("amount") or "").strip().replace(",", "")
    if not raw:
        return None, None
    try:
        return Money.parse(raw, currency).minor, None
    except (ValueError, InvalidOperation):
        return None, _("Enter an amount such as 200 or 150.50.")


@bp.route("/topup/<int:plan_id>", methods=["GET", "POST"])
@member_required
def topup_plan(plan_id: int):
    plan, card = _plan_and_card(plan_id)
    amount, error = _amount(plan, plan.currency)
    quote = None
    if amount is not None and error is None:
        try:
            quote = plans.quote(plan, amount, first=topups.is_first(db.session, card.id))
        except plans.PlanError as e:
            error = str(e)
    form = EmptyForm()
    if request.method == "POST" and not is_previewing():
        if not form.validate_on_submit():
            abort(400)
        if error is None and amount is None:
            error = _("Enter an amount.")
        if error is None:
            try:
                topup = topups.start(db.session, member_id=current_member.id, card_id=card.id,
                                     plan_id=plan.id, amount_minor=amount)
                payment = db.session.get(Payment, topup.payment_id)
                url = payments.open_checkout(
                    db.session, payment.id,
                    success_url=_absolute(url_for("payments.status", token=payment.token)),
                    cancel_url=_absolute(url_for("payments.cancelled", token=payment.token)))
            except (WalletError, PaymentError) as e:
                error = str(e)
            else:
                return redirect(url, 303)
    return render("wallet/topup_plan.html", block="quote", plan=plan, card=card,
                  amount=request.values.get("amount", ""), quote=quote, error=error,
                  form=form, demo=payments.is_demo(),
                  status=422 if request.method == "POST" and error else 200)


@bp.post("/topup/code")
@member_required
def redeem_code():
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    cards = _cards()
    card = next((c for c in cards if c.id == request.form.get("card", type=int)), None)
    if card is None:
        abort(404)
    if is_previewing():
        return redirect(url_for("wallet.topup_list"), 303)
    try:
        topup = topups.redeem_code(db.session, member_id=current_member.id, card_id=card.id,
                                   code=request.form.get("code", ""))
    except WalletError as e:
        offers = {c.id: plans.available_plans(db.session, current_member._get_current_object(),
                                              c, channel="ONLINE") for c in cards}
        return render("wallet/topup_list.html", cards=cards, offers=offers, form=form,
                      demo=payments.is_demo(), code_error=str(e), code_card=card.id,
                      code=request.form.get("code", ""), status=422)
    flash(_("%(amount)s added to your balance.",
            amount=money(topup.amount_minor + topup.bonus_minor, topup.currency)), "success")
    return redirect(url_for("wallet.balance_page"), 303)
