"""Quote preview: staff price any basket for any member with their benefits, as a till would
(the same engine as POST /api/v1/quotes). A read: the form is a GET and changes nothing."""
from __future__ import annotations

from flask import request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from portal import clock
from portal.admin.reading import LOCAL_FORMAT, FormReader
from portal.admin.views import MANAGERS, bp
from portal.benefits import quote as quotes
from portal.db import db
from portal.loyalty.errors import LoyaltyError
from portal.members import services as members
from portal.members.errors import MemberError
from portal.members.models import CardPlan, MemberCard, Store
from portal.web.auth import staff_required
from portal.web.render import render

MAX_ROWS = 30
CHANNELS = ("POS", "ONLINE")
REASONS = {
    quotes.Reason.RESTRICTION_RULE: _l("The prepaid balance is below what its restriction "
                                       "rule asks."),
    quotes.Reason.EXCLUDED_PRODUCT: _l("It excludes this product."),
    quotes.Reason.EXCLUDED_CATEGORY: _l("It excludes this category."),
    quotes.Reason.WRONG_CHANNEL: _l("Not for this channel."),
    quotes.Reason.OUTSIDE_TIME_WINDOW: _l("Not now: outside its member day or the member's "
                                          "birthday."),
    quotes.Reason.NOT_BETTER: _l("Another offer gave more."),
    quotes.Reason.BELOW_THRESHOLD: _l("The eligible lines do not reach its threshold."),
}


def reason_label(reason: str) -> str:
    return str(REASONS.get(reason, reason))


def _card(raw: str, errors: dict[str, str]) -> MemberCard | None:
    """A card by its number, or the first card of the member with this mobile number."""
    raw = raw.strip()
    digits = "".join(ch for ch in raw if ch not in " -")
    card = db.session.scalar(select(MemberCard).where(MemberCard.number == digits)) \
        if digits.isdecimal() else None
    if card is None and raw:
        try:
            member = members.member_by_mobile(db.session, raw)
        except MemberError:
            member = None
        card = member.cards[0] if member is not None and member.cards else None
    if card is None:
        errors["member"] = _("No member has this card or mobile number.")
    return card


def _rows(args, count: int, reader: FormReader) -> tuple[list[dict], list[quotes.QuoteLine]]:
    rows, lines = [], []
    for i in range(count):
        row = {k: (args.get(f"{k}_{i}") or "").strip()
               for k in ("product_id", "category", "quantity", "unit_price")}
        rows.append(row)
        if not any(row.values()):
            continue
        if not row["product_id"] or len(row["product_id"]) > 64:
            reader.errors[f"product_id_{i}"] = _("Enter the product id (64 characters at "
                                                 "most).")
        quantity = reader.whole(row["quantity"] or "1", f"quantity_{i}")
        if quantity is not None and quantity < 1:
            reader.errors[f"quantity_{i}"] = _("Enter a whole number.")
        price = reader.money(row["unit_price"], f"unit_price_{i}")
        if price is None and f"unit_price_{i}" not in reader.errors:
            reader.errors[f"unit_price_{i}"] = _("Enter an amount such as 12.50.")
        elif price is not None and price < 0:
            reader.errors[f"unit_price_{i}"] = _("Enter an amount such as 12.50.")
        if not any(k.endswith(f"_{i}") for k in reader.errors):
            lines.append(quotes.QuoteLine(row["product_id"], row["category"][:64], quantity,
                                          price))
    return rows, lines


@bp.get("/benefits/quote")
@staff_required(*MANAGERS)
def benefit_quote():
    args = request.args
    stores = db.session.scalars(select(Store).order_by(Store.name)).all()
    currency = db.session.scalar(select(CardPlan.currency).order_by(CardPlan.is_default.desc(),
                                                                   CardPlan.id).limit(1)) or "CNY"
    count = min(max(args.get("rows", 3, type=int) or 3, 1), MAX_ROWS)
    adding = "add" in args and count < MAX_ROWS
    if adding:
        count += 1
    reader = FormReader(currency)
    rows, lines = _rows(args, count, reader)
    form = {"member": args.get("member", ""), "store_id": args.get("store_id", type=int),
            "channel": args.get("channel", "POS").upper(),
            "at": args.get("at") or clock.local().strftime(LOCAL_FORMAT),
            "balance": args.get("balance", "")}
    result, status = None, 200
    if "quote" in args and not adding:
        errors = reader.errors
        card = _card(form["member"], errors) if form["member"].strip() else None
        if not form["member"].strip():
            errors["member"] = _("Enter a card or mobile number.")
        if form["channel"] not in CHANNELS:
            errors["channel"] = _("Choose a channel.")
        store = next((s for s in stores if s.id == form["store_id"]), None)
        if store is None:
            errors["store_id"] = _("Choose a store.")
        at = reader.moment(form["at"], "at")
        balance = reader.money(form["balance"], "balance")
        if balance is not None and balance < 0:
            errors["balance"] = _("Enter an amount such as 12.50.")
        if not lines and not any(k.startswith(("product_id_", "quantity_", "unit_price_"))
                                 for k in errors):
            errors["lines"] = _("Add at least one line.")
        if not errors:
            try:
                result = quotes.quote(db.session, card_no=card.number, channel=form["channel"],
                                      lines=lines, at=at, store_id=store.id,
                                      prepaid_balance=balance)
            except LoyaltyError as e:
                errors["member"] = str(e)
        if errors:
            status = 422
    return render("admin/benefits/quote.html", block="preview", status=status, form=form,
                  rows=rows, stores=stores, channels=CHANNELS, errors=reader.errors,
                  result=result, max_rows=MAX_ROWS, currency=currency,
                  reason_label=reason_label)
