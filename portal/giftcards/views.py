"""Gift cards for members and guests: the shop, buying (for oneself or a friend), the claim
link a friend opens, the member's cards, the buyer's page of a gift they sent, and a
public balance check by number and PIN."""
from __future__ import annotations

from datetime import datetime
from decimal import InvalidOperation

from flask import Blueprint, abort, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from portal import clock
from portal.db import db
from portal.extensions import limiter
from portal.giftcards import cards, gifts, purchase
from portal.giftcards import products as products_service
from portal.giftcards.models import GiftCard, GiftCardProduct, GiftCardTransaction, ProductStatus
from portal.money import Money
from portal.payments import services as payments
from portal.payments.errors import PaymentError
from portal.payments.models import Payment
from portal.web.auth import _current_member, current_member, is_previewing, member_required
from portal.web.forms import EmptyForm
from portal.web.render import render

bp = Blueprint("giftcards", __name__, url_prefix="/giftcards")
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"


def _on_sale() -> list[GiftCardProduct]:
    return [p for p in db.session.scalars(
        select(GiftCardProduct).where(GiftCardProduct.status == ProductStatus.ACTIVE)
        .order_by(GiftCardProduct.id)) if "ONLINE" in (p.channels or [])]


@bp.get("")
def shop():
    member = _current_member()
    held, sent = purchase.member_cards(db.session, member.id) if member else ([], [])
    balances = {c.id: cards.balance(db.session, c) for c in held}
    return render("giftcards/shop.html", products=_on_sale(), held=held, sent=sent,
                  balances=balances, demo=payments.is_demo())


def _absolute(path: str) -> str:
    base = current_app.config["PUBLIC_URL"]
    return (base.rstrip("/") + path) if base else request.host_url.rstrip("/") + path


def _order(product: GiftCardProduct) -> purchase.Order:
    form = request.form
    order = purchase.Order(product_id=product.id, amount_minor=None,
                           for_friend=form.get("for") == "friend",
                           recipient_name=form.get("recipient_name", ""),
                           recipient_email=form.get("recipient_email", ""),
                           recipient_phone=form.get("recipient_phone", ""),
                           message=form.get("message", ""),
                           buyer_name=form.get("buyer_name", ""),
                           buyer_phone=form.get("buyer_phone", ""),
                           buyer_email=form.get("buyer_email", ""))
    choice = form.get("amount", "")
    raw = (form.get("custom_amount") or "").strip().replace(",", "")
    if choice == "custom" or (raw and not choice):
        try:
            order.amount_minor = Money.parse(raw, product.currency).minor
        except (ValueError, InvalidOperation):
            order.errors["amount"] = _("Enter an amount such as 300 or 150.50.")
    elif choice.isdecimal():
        order.amount_minor = int(choice)
    when = (form.get("send_at") or "").strip()
    if order.for_friend and form.get("send") == "later":
        try:
            order.send_at = datetime.strptime(when, LOCAL_FORMAT).replace(
                tzinfo=clock.timezone())
        except ValueError:
            order.errors["send_at"] = _("Choose a date and time.")
    return order


@bp.route("/buy/<int:product_id>", methods=["GET", "POST"])
def buy(product_id: int):
    product = db.session.get(GiftCardProduct, product_id)
    if product is None or product not in _on_sale():
        abort(404)
    member = _current_member()
    errors, status = {}, 200
    if request.method == "POST":
        if not EmptyForm().validate_on_submit() or is_previewing():
            abort(400)
        order = _order(product)
        try:
            card = purchase.buy(db.session, order, member_id=member.id if member else None)
            payment = db.session.get(Payment, card.payment_id)
            url = payments.open_checkout(
                db.session, payment.id,
                success_url=_absolute(url_for("payments.status", token=payment.token)),
                cancel_url=_absolute(url_for("payments.cancelled", token=payment.token)))
        except purchase.PurchaseError as e:
            errors, status = e.details["errors"] or {"form": str(e)}, 422
        except PaymentError as e:
            errors, status = {"form": str(e)}, 422
        else:
            return redirect(url, 303)
    return render("giftcards/buy.html", product=product, member=member, errors=errors,
                  form=EmptyForm(), values=request.form,
                  price_of=products_service.price_minor,
                  demo=payments.is_demo(), status=status)


@bp.route("/claim/<token>", methods=["GET", "POST"])
def claim(token: str):
    card = purchase.by_token(db.session, token)
    if card is None or card.recipient_name is None and card.buyer_member_id is not None:
        abort(404)
    member = _current_member()
    error = None
    if request.method == "POST":
        if not EmptyForm().validate_on_submit():
            abort(400)
        if member is None:
            return _sign_up_then_claim(card, token)
        if not is_previewing():
            try:
                purchase.claim(db.session, token, member.id)
            except purchase.PurchaseError as e:
                error = str(e)
            else:
                flash(_("The gift card is in your wallet."), "success")
                return redirect(url_for("giftcards.mine", card_id=card.id), 303)
    return render("giftcards/claim.html", card=card, member=member, form=EmptyForm(),
                  error=error, status=409 if error else 200)


def _sign_up_then_claim(card: GiftCard, token: str):
    """Not a member yet: sign up (or in), then straight back here. A new member's
    enrollment says the gift card brought them (first touch wins, as for links)."""
    from flask import session as web_session

    from portal.members import services as members
    from portal.members.models import PageStatus, RegistrationPage

    web_session["giftcard_after"] = token
    page = db.session.scalar(select(RegistrationPage).where(
        RegistrationPage.status == PageStatus.PUBLISHED).order_by(RegistrationPage.id))
    if page is None:
        return redirect(url_for("members.sign_in"), 303)
    if "attribution" not in web_session:
        web_session["attribution"] = members.Attribution(
            page.id, None, "giftcard", "giftcard", str(card.product_id)).as_dict()
    return redirect(url_for("members.register", slug=page.slug), 303)


@bp.get("/mine/<int:card_id>")
@member_required
def mine(card_id: int):
    card = db.session.get(GiftCard, card_id)
    if card is None or card.holder_member_id != current_member.id:
        abort(404)
    history = list(db.session.scalars(select(GiftCardTransaction).where(
        GiftCardTransaction.card_id == card.id).order_by(GiftCardTransaction.id.desc())
        .limit(50)))
    return render("giftcards/card.html", card=card, balance=cards.balance(db.session, card),
                  state=cards.state(card), history=history,
                  pin=cards.pin_for(card.number) if not card.physical else None)


@bp.route("/balance", methods=["GET", "POST"])
@limiter.limit("10 per minute;60 per hour", methods=["POST"])
def balance_check():
    """Anyone holding a card may check its balance with its number and PIN. A wrong pair
    says only that: it never tells whether the number exists."""
    found, error = None, None
    if request.method == "POST":
        if not EmptyForm().validate_on_submit():
            abort(400)
        card = cards.by_number(db.session, request.form.get("number", ""))
        if card is None or not cards.pin_matches(card, request.form.get("pin", "").strip()) \
                or card.status not in ("active", "frozen", "refunded"):
            error = _("No card matches this number and PIN.")
        else:
            found = {"balance": cards.balance(db.session, card), "currency": card.currency,
                     "expires_at": card.expires_at, "state": cards.state(card)}
    return render("giftcards/balance.html", block="result", found=found, error=error,
                  form=EmptyForm(), status=422 if error else 200)


@bp.post("/<int:card_id>/resend")
@member_required
def resend(card_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        purchase.resend(db.session, card_id, member_id=current_member.id)
    except purchase.PurchaseError as e:
        flash(str(e), "error")
    else:
        flash(_("Sent again."), "success")
    return redirect(url_for("giftcards.shop"), 303)


class _SignIn(Exception):
    """A member's gift and nobody is signed in: send them to sign in."""


@bp.errorhandler(_SignIn)
def _sign_in(_e):
    from portal.extensions import login_manager

    return login_manager.unauthorized()


def _gift_or_404(token: str):
    """The gift behind a payment token: a guest's to whoever holds the token (it went only
    to the payer, like the payment's status page); a member's to that member only."""
    found = gifts.by_token(db.session, token)
    if found is None:
        abort(404)
    card, payment = found
    if payment.member_id is not None:
        member = _current_member()
        if member is None:
            raise _SignIn
        if member.id != payment.member_id:
            abort(404)
    return card, payment


@bp.get("/sent/<token>")
def sent(token: str):
    """The buyer's page of a gift they sent: the card, to whom, and what became of it."""
    card, payment = _gift_or_404(token)
    return render("giftcards/sent.html", gift=gifts.gift(db.session, card, payment.token),
                  can_resend=gifts.can_resend(card))


@bp.post("/sent/<token>/resend")
@limiter.limit("5 per hour")
def sent_resend(token: str):
    if not EmptyForm().validate_on_submit() or is_previewing():
        abort(400)
    card, payment = _gift_or_404(token)
    try:
        purchase.resend(db.session, card.id, member_id=payment.member_id)
    except purchase.PurchaseError as e:
        flash(str(e), "error")
    else:
        flash(_("Sent again."), "success")
    return redirect(url_for("giftcards.sent", token=payment.token), 303)
