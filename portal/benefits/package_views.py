"""The member's paid benefit packages: what I may buy (at my price now), a package with its
agreement and Pay, and "My packages" with each period, its validity and what it gave."""
from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, current_app, make_response, redirect, request, url_for

from portal.benefits import purchases
from portal.benefits.packages import ITEM_LABELS, PackageError
from portal.db import db
from portal.payments import services as payments
from portal.payments.errors import PaymentError
from portal.payments.models import Payment
from portal.web.auth import current_member, is_previewing, member_required
from portal.web.forms import EmptyForm
from portal.web.render import render

bp = Blueprint("packages", __name__, url_prefix="/packages")


def last_minute(ends_at):
    """Periods end exclusively at `ends_at`: members read "until" the minute before
    (a period ending at 00:00 on Dec 11 is valid until 23:59 on Dec 10)."""
    return ends_at - timedelta(minutes=1) if ends_at else None


@bp.app_context_processor
def _labels():
    return {"package_item_label": lambda kind: str(ITEM_LABELS.get(kind, kind)),
            "package_until": last_minute}


def _absolute(path: str) -> str:
    base = current_app.config["PUBLIC_URL"]
    return (base.rstrip("/") + path) if base else request.host_url.rstrip("/") + path


def _go(url: str):
    """See other `url`; the form is sent by htmx into itself, so move the whole page there
    instead of following the redirect inside the form."""
    if request.headers.get("HX-Request"):
        response = make_response("", 200)
        response.headers["HX-Redirect"] = url
        return response
    return redirect(url, 303)


@bp.get("")
@member_required
def shop():
    return render("benefits/packages/shop.html",
                  offers=purchases.offers(db.session, current_member.id),
                  demo=payments.is_demo())


def _offer(package_id: int):
    offer = next((o for o in purchases.offers(db.session, current_member.id)
                  if o[0].id == package_id), None)
    if offer is None:
        abort(404)
    return offer


@bp.route("/<int:package_id>", methods=["GET", "POST"])
@member_required
def package(package_id: int):
    package, standing, prices = _offer(package_id)
    form, errors = EmptyForm(), {}
    chosen = request.values.get("rule", type=int) or prices[0].rule.id
    if request.method == "POST" and not is_previewing():
        if not form.validate_on_submit():
            abort(400)
        try:
            purchase = purchases.start(db.session, member_id=current_member.id,
                                       package_id=package.id, rule_id=chosen,
                                       agreed=request.form.get("agree") == "y")
            if purchase.payment_id is None:       # free: nothing to pay
                return _go(url_for("packages.mine"))
            payment = db.session.get(Payment, purchase.payment_id)
            url = payments.open_checkout(
                db.session, payment.id,
                success_url=_absolute(url_for("payments.status", token=payment.token)),
                cancel_url=_absolute(url_for("payments.cancelled", token=payment.token)))
        except PackageError as e:
            errors = e.errors or {"form": e.message}
        except PaymentError as e:
            errors = {"form": str(e)}
        else:
            return _go(url)
    return render("benefits/packages/package.html", block="buy", package=package,
                  standing=standing, prices=prices, chosen=chosen, form=form, errors=errors,
                  demo=payments.is_demo(), status=422 if errors else 200)


@bp.get("/mine")
@member_required
def mine():
    held = purchases.mine(db.session, current_member.id)
    running = {h.purchase.package_id for h in held if h.state == "running"}
    on_sale = {p.id for p in purchases.available(db.session, current_member.id)}
    groups: dict[int, list] = {}
    for h in held:
        groups.setdefault(h.purchase.package_id, []).append(h)
    return render("benefits/packages/mine.html", groups=list(groups.values()),
                  renewable=running & on_sale)
