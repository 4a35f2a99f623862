"""Card management (owners and managers): the card list with balances and filters, and a
card's edit form. Clerks look members up in the member centre (portal.admin.till)."""
from __future__ import annotations

from datetime import date, timedelta

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice

from portal import clock
from portal.admin.views import MANAGERS, bp
from portal.db import db
from portal.loyalty import tiers
from portal.members import cards
from portal.members import services as members
from portal.members.errors import MemberError, MemberErrorCode
from portal.members.models import CardStatus
from portal.web.auth import current_staff, staff_required
from portal.web.forms import apply_error, shown_status
from portal.web.render import render

PAGE = 25


class CardForm(FlaskForm):
    status = SelectField(_l("Status"), choices=[
        SelectChoice(CardStatus.ACTIVE.value, _l("Active")),
        SelectChoice(CardStatus.FROZEN.value, _l("Frozen"))], validate_choice=False)
    expires_on = StringField(_l("Valid through"), render_kw={"type": "date"})
    tier_id = SelectField(_l("Tier"), coerce=int, choices=[], validate_choice=False)
    reason = StringField(_l("Reason"), render_kw={"maxlength": cards.REASON_MAX,
                                                  "autocomplete": "off"})


def _filters() -> cards.CardFilters:
    args = request.args
    number = args.get("number", "").strip()[:32]
    return cards.CardFilters(
        number=number, q=args.get("q", "").strip()[:64],
        plan_id=args.get("plan_id", type=int), tier_id=args.get("tier_id", type=int),
        status=args.get("status", "") if args.get("status") in cards.STATUSES else "")


@bp.get("/cards")
@staff_required(*MANAGERS)
def card_list():
    filters = _filters()
    before = request.args.get("before", type=int)
    rows = cards.search_cards(db.session, filters, before_id=before, limit=PAGE)
    return render(
        "admin/cards/list.html", block="results", filters=filters, rows=rows, page=PAGE,
        total=cards.count_cards(db.session, filters) if not before else None,
        plans=members.plans(db.session) if not request.htmx else [],
        args={k: v for k, v in request.args.items() if k != "before" and v})


def _form(card) -> CardForm:
    form = CardForm()
    form.tier_id.choices = [SelectChoice(t.id, t.name) for t in card.plan.tiers]
    if request.method == "GET":
        form.status.data = CardStatus.FROZEN.value if card.status == CardStatus.FROZEN \
            else CardStatus.ACTIVE.value
        form.tier_id.data = card.tier_id
        if card.expires_at is not None:
            # Stored as the exclusive end; staff see the last valid day.
            form.expires_on.data = clock.local(
                card.expires_at - timedelta(microseconds=1)).date().isoformat()
    return form


@bp.route("/cards/<int:card_id>", methods=["GET", "POST"])
@staff_required(*MANAGERS)
def card_edit(card_id: int):
    card = cards.card_for_edit(db.session, card_id)
    if card is None:
        abort(404)
    form = _form(card)
    manual = card.plan_id in tiers.manual_tier_plans(db.session)
    if form.validate_on_submit():
        raw_day = (form.expires_on.data or "").strip()
        try:
            # The page asks for an expiry only on plans whose cards expire.
            expires_on = date.fromisoformat(raw_day) \
                if raw_day and card.plan.validity_days else None
        except ValueError:
            # Every field's error at once: the others are checked as well.
            errors, _at = cards.check(db.session, card, status=form.status.data,
                                      tier_id=form.tier_id.data if manual else None,
                                      reason=" ".join((form.reason.data or "").split()),
                                      check_expiry=False)
            apply_error(form, MemberError(MemberErrorCode.INVALID_VALUE, "", errors={
                **errors, "expires_on": _("Enter a date.")}))
        else:
            try:
                cards.update_card(db.session, card_id, status=form.status.data,
                                  expires_on=expires_on,
                                  tier_id=form.tier_id.data if manual else None,
                                  reason=form.reason.data, operator_id=current_staff().id)
            except MemberError as e:
                if e.code == MemberErrorCode.NOT_FOUND:
                    abort(404)
                apply_error(form, e)
            else:
                flash(_("The card is saved."), "success")
                return redirect(url_for("admin.card_edit", card_id=card_id), 303)
        db.session.rollback()
        return _edit_page(cards.card_for_edit(db.session, card_id), form, manual, 422)
    return _edit_page(card, form, manual, shown_status())


def _edit_page(card, form: CardForm, manual: bool, status: int):
    from portal.admin.coupons import quick_issue_form

    return render("admin/cards/edit.html", form=form, row=cards.rows_for(db.session, [card])[0],
                  manual_tiers=manual, issue_form=quick_issue_form(), status=status)
