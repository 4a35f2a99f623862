"""The member's prepaid balance: per card, its split, what is locked until midnight, and
its history."""
from __future__ import annotations

from flask import Blueprint, abort, request
from flask_babel import lazy_gettext as _l

from portal.db import db
from portal.wallet import balance as wallet
from portal.web.auth import current_member, member_required
from portal.web.filters import ledger_reason_label
from portal.web.render import render

bp = Blueprint("wallet", __name__)
PAGE = 20

_REASONS = {"charge": _l("Paid a bill"), "charge_refund": _l("Bill refunded"),
            "topup": _l("Top-up"), "topup_refund": _l("Top-up refunded"),
            "recharge_code": _l("Recharge code"), "smart_topup": _l("Smart top-up")}
_KINDS = {"prepaid_principal": _l("Principal"), "prepaid_bonus": _l("Bonus")}


def balance_reason_label(reason: str) -> str:
    return str(_REASONS[reason]) if reason in _REASONS else ledger_reason_label(reason)


def balance_kind_label(kind: str) -> str:
    return str(_KINDS.get(kind, kind))


@bp.get("/balance")
@member_required
def balance_page():
    card_id = request.args.get("card", type=int)
    before = request.args.get("before", type=int)
    cards = wallet.member_balances(db.session, current_member.id, card_id=card_id,
                                   before_id=before, limit=PAGE)
    if card_id is not None and not cards:
        abort(404)  # not the member's card, or no balance on it
    context = {"cards": cards, "page_size": PAGE, "reason_label": balance_reason_label,
               "kind_label": balance_kind_label}
    if card_id is not None and before:
        # "Load more" for one card: its history block alone (or the page without JS).
        return render("wallet/balance.html", block="history", view=cards[0], **context)
    return render("wallet/balance.html", **context)


# The top-up and pay-a-bill pages add their routes to this blueprint.
from portal.wallet import pay_views, topup_views  # noqa: E402,F401
