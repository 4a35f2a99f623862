"""Topping up a card: start (reserve the plan's stock, work out what it gives, open a
payment), credit exactly once when paid, release when abandoned, take back on refund;
and free top-ups from recharge codes.

A top-up gives, on crediting and all in one transaction: the amount to the principal,
the bonus to the bonus account, points, the gift coupons, and the plan's tier upgrade."""
from __future__ import annotations

import logging

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from portal import clock, ledger
from portal.coupons.errors import CouponError
from portal.db import transaction
from portal.ledger import AccountKind
from portal.members.models import MemberCard, Tier
from portal.payments import services as payments
from portal.payments.errors import FulfilmentRefused, PaymentError, PaymentErrorCode
from portal.wallet import balance as wallet
from portal.wallet import plans
from portal.wallet.errors import WalletError, WalletErrorCode
from portal.wallet.models import (
    PlanKind,
    RechargeCode,
    Topup,
    TopupPlan,
    TopupStatus,
)

log = logging.getLogger(__name__)


def _refused(message: str, **details) -> WalletError:
    return WalletError(WalletErrorCode.INVALID, message, **details)


def _member_card(session: Session, member_id: int, card_id: int) -> MemberCard:
    card = session.scalar(select(MemberCard).where(MemberCard.id == card_id,
                                                   MemberCard.member_id == member_id))
    if card is None:
        raise WalletError(WalletErrorCode.UNKNOWN_CARD, _("There is no such card."))
    if card.current_status() != "active":
        raise WalletError(WalletErrorCode.CARD_INACTIVE, _("This card cannot be topped up."))
    return card


def is_first(session: Session, card_id: int) -> bool:
    """No top-up of this card was ever credited (first top-up bonuses and plans)."""
    return not session.scalar(select(Topup.id).where(
        Topup.card_id == card_id, Topup.status.in_([TopupStatus.CREDITED,
                                                    TopupStatus.REFUNDED])).limit(1))


def take_stock(session: Session, model, plan_id: int) -> bool | None:
    """One unit of a plan's stock: True if taken, None if the stock is unlimited (nothing
    held), False if none is left. `model` is TopupPlan or SmartPlan."""
    taken = session.execute(update(model).where(
        model.id == plan_id, model.stock_left.is_not(None), model.stock_left > 0)
        .values(stock_left=model.stock_left - 1)).rowcount
    if taken:
        return True
    unlimited = session.scalar(select(model.stock_left.is_(None)).where(model.id == plan_id))
    return None if unlimited else False


def give_back_stock(session: Session, model, topup: Topup) -> None:
    """The unit a top-up held, if it held one (a plan made limited meanwhile gets back
    only what was taken from it)."""
    if topup.holds_stock:
        session.execute(update(model).where(model.id == _stock_plan_id(session, topup),
                                            model.stock_left.is_not(None))
                        .values(stock_left=model.stock_left + 1))
        topup.holds_stock = False


def _stock_plan_id(session: Session, topup: Topup) -> int:
    if topup.plan_id:
        return topup.plan_id
    from portal.wallet.models import SmartTier

    return session.scalar(select(SmartTier.plan_id).where(SmartTier.id == topup.smart_tier_id))


def still_first(session: Session, topup: Topup) -> bool:
    """Whether the top-up is still the card's first, checked under a lock on the card when
    it is credited: of two checkouts started before either was paid, one is first."""
    session.scalar(select(MemberCard.id).where(MemberCard.id == topup.card_id)
                   .with_for_update())
    return not session.scalar(select(Topup.id).where(
        Topup.card_id == topup.card_id, Topup.id != topup.id,
        Topup.status.in_([TopupStatus.CREDITED, TopupStatus.REFUNDED])).limit(1))


def start(session: Session, *, member_id: int, card_id: int, plan_id: int,
          amount_minor: int | None = None, channel: str = "ONLINE",
          store_id: int | None = None) -> Topup:
    """A pending top-up and its payment, with the plan's stock held until the payment
    settles (the last unit goes to one buyer). What it will give is fixed now."""
    with transaction(session):
        card = _member_card(session, member_id, card_id)
        plan = session.scalar(select(TopupPlan).where(TopupPlan.id == plan_id)
                              .with_for_update().execution_options(populate_existing=True))
        member = card.member
        offered = {p.id for p in plans.available_plans(session, member, card, channel=channel,
                                                       store_id=store_id)}
        if plan is None or plan.id not in offered:
            raise _refused(_("This top-up is not available to you now."))
        if plan.kind == PlanKind.FIXED:
            amount_minor = plan.amount_minor
        if not isinstance(amount_minor, int):
            raise WalletError(WalletErrorCode.INVALID_AMOUNT, _("Enter an amount."),
                              field="amount")
        first = is_first(session, card.id)
        try:
            quote = plans.quote(plan, amount_minor, first=first)
        except plans.PlanError as e:
            raise WalletError(WalletErrorCode.INVALID_AMOUNT, str(e), field="amount") from e
        held = take_stock(session, TopupPlan, plan.id)
        if held is False:
            raise _refused(_("This top-up is sold out."))
        topup = Topup(plan_id=plan.id, member_id=member_id, card_id=card.id,
                      currency=plan.currency, amount_minor=quote.amount,
                      bonus_minor=quote.bonus, points=quote.points, gifts=quote.gifts,
                      first=first, holds_stock=bool(held), channel=channel,
                      store_id=store_id)
        session.add(topup)
        session.flush()
        payment = payments.create(session, purpose="topup", purpose_id=topup.id,
                                  member_id=member_id, amount_minor=quote.amount,
                                  currency=plan.currency,
                                  description=_("Top-up: %(plan)s", plan=plan.name))
        topup.payment_id = payment.id
        return topup


def credit(session: Session, topup: Topup) -> None:
    """Give everything the top-up promised, in the caller's transaction, once: the
    status moves from pending (or cancelled, for a payment that came in late) to
    credited under a row lock."""
    card = session.get(MemberCard, topup.card_id)
    key = f"topup:{topup.id}"
    wallet.credit(session, card, principal=topup.amount_minor, bonus=topup.bonus_minor,
                  key=key, reason="topup", source=("topup", topup.id))
    if topup.points:
        from portal.loyalty.services import points_expiry, rule_for_member

        account = ledger.account(session, AccountKind.POINTS, "member", topup.member_id)
        ledger.post(session, account, topup.points, reason="topup", key=key,
                    source=("topup", topup.id),
                    expires_at=points_expiry(rule_for_member(session, topup.member_id),
                                             clock.now()))
    _give_gifts(session, topup)
    plan = session.get(TopupPlan, topup.plan_id) if topup.plan_id else None
    if plan is not None and plan.upgrade_tier_id:
        _upgrade(session, card, plan.upgrade_tier_id)
    topup.status, topup.credited_at = TopupStatus.CREDITED, clock.now()


def _give_gifts(session: Session, topup: Topup) -> None:
    """The gift coupons. A paid top-up is never undone for a gift that ran out: the
    member keeps the balance and the gift is noted as not given, for staff to see."""
    from portal.coupons import services as coupons

    given = []
    for i, gift in enumerate(topup.gifts or []):
        try:
            with session.begin_nested():
                coupons.issue(session, member_id=topup.member_id,
                              template_id=gift.get("template_id"),
                              package_id=gift.get("package_id"),
                              quantity=gift.get("quantity", 1),
                              source=coupons.Source("topup", ref=str(topup.id)),
                              key=f"topup:{topup.id}:gift:{i}")
            given.append({**gift, "given": True})
        except CouponError as e:
            log.warning("top-up %s: gift %s not given: %s", topup.id, gift, e)
            given.append({**gift, "given": False, "why": str(e)[:200]})
    topup.gifts = given


def _upgrade(session: Session, card: MemberCard, tier_id: int) -> None:
    """Move the card up to the plan's tier (never down, never to another plan's)."""
    target = session.get(Tier, tier_id)
    if target is None or target.plan_id != card.plan_id or target.rank <= card.tier.rank:
        return
    card.tier_id, card.tier_since_at = target.id, clock.now()
    from portal.loyalty.models import TierSettings
    from portal.loyalty.tiers import tier_until

    settings = session.scalar(select(TierSettings).where(TierSettings.plan_id == card.plan_id))
    card.tier_until_at = tier_until(settings, target, clock.now()) if settings else None


# --- the payment's purpose ---------------------------------------------------------------

def _locked_topup(session: Session, payment) -> Topup:
    return session.scalar(select(Topup).where(Topup.id == payment.purpose_id)
                          .with_for_update().execution_options(populate_existing=True))


def _fulfil(session: Session, payment) -> None:
    topup = _locked_topup(session, payment)
    if topup.status == TopupStatus.CREDITED:
        return
    plan = session.get(TopupPlan, topup.plan_id)
    if topup.status == TopupStatus.CANCELLED:
        # Paid after the checkout was given up and its stock released: take it again.
        held = take_stock(session, TopupPlan, plan.id)
        if held is False:
            raise FulfilmentRefused("sold out")
        topup.holds_stock = bool(held)
    if topup.first and not still_first(session, topup):
        # Another top-up of the card was credited first: no first-top-up extras, and a
        # plan only for first top-ups cannot be had at all (the payment is refunded).
        if plan.first_topup_only:
            raise FulfilmentRefused("not the first top-up any more")
        quote = plans.quote(plan, topup.amount_minor, first=False)
        topup.bonus_minor, topup.points, topup.gifts = quote.bonus, quote.points, quote.gifts
        topup.first = False
    credit(session, topup)


def _release(session: Session, payment) -> None:
    topup = _locked_topup(session, payment)
    if topup.status == TopupStatus.PENDING:
        topup.status = TopupStatus.CANCELLED
        give_back_stock(session, TopupPlan, topup)


def _refund(session: Session, payment, amount_minor: int) -> dict:
    """Take back what a refund of `amount_minor` pays for: that much principal (it must
    still be unspent), and bonus and points in the same proportion (as much as is left)."""
    topup = _locked_topup(session, payment)
    card = session.get(MemberCard, topup.card_id)
    now = wallet.balance(session, card.id)
    if now.principal < amount_minor:
        raise PaymentError(
            PaymentErrorCode.NOT_REFUNDABLE,
            _("Only %(left)s of this top-up is unspent: refund at most that.",
              left=_money(now.principal, topup.currency)), field="amount")
    # Shares of the running total, so refunds in parts take back all of it in the end.
    before, after = topup.refunded_minor, topup.refunded_minor + amount_minor
    bonus = (topup.bonus_minor * after // topup.amount_minor
             - topup.bonus_minor * before // topup.amount_minor)
    points = (topup.points * after // topup.amount_minor
              - topup.points * before // topup.amount_minor)
    key = f"topup:{topup.id}:refund:{topup.refunded_minor}:{amount_minor}"
    principal_back, bonus_back = wallet.debit_for_refund(
        session, card, principal=amount_minor, bonus=bonus, key=key, reason="topup_refund",
        source=("topup", topup.id))
    points_back = 0
    if points:
        account = ledger.account(session, AccountKind.POINTS, "member", topup.member_id)
        points_back = min(points, account.balance)
        if points_back:
            ledger.post(session, account, -points_back, reason="topup_refund", key=key,
                        source=("topup", topup.id))
    topup.refunded_minor += amount_minor
    if topup.refunded_minor == topup.amount_minor:
        topup.status = TopupStatus.REFUNDED
    return {"principal": principal_back, "bonus": bonus_back, "points": points_back}


def _money(minor: int, currency: str) -> str:
    from portal.web.filters import money

    return money(minor, currency)


payments.register("topup", label=_l("Top-up"), fulfil=_fulfil, release=_release,
                  refund=_refund, result_endpoint="wallet.balance_page")


# --- recharge codes ------------------------------------------------------------------------

def redeem_code(session: Session, *, member_id: int, card_id: int, code: str,
                channel: str = "ONLINE", store_id: int | None = None) -> Topup:
    """A recharge code is a free top-up of its plan, once: the code is claimed with a
    conditional UPDATE, so two redemptions at once give one top-up."""
    with transaction(session):
        card = _member_card(session, member_id, card_id)
        row = plans.find_code(session, (code or "").strip().upper())
        if row is None:
            raise _refused(_("This code is not right. Check it and try again."), field="code")
        try:
            plans.check_code(row, channel=channel, store_id=store_id, at=clock.now())
        except plans.PlanError as e:
            raise _refused(str(e), field="code") from e
        plan = session.get(TopupPlan, row.batch.plan_id)
        if plan.currency != card.plan.currency:
            raise _refused(_("This code is for another currency than your card's."),
                           field="code")
        claimed = session.execute(update(RechargeCode).where(
            RechargeCode.id == row.id, RechargeCode.redeemed_at.is_(None)).values(
            redeemed_by=member_id, redeemed_at=clock.now())).rowcount
        if not claimed:
            raise _refused(_("This code has been used already."), field="code")
        first = is_first(session, card.id)
        try:
            quote = plans.quote(plan, row.batch.amount_minor, first=first)
        except plans.PlanError:
            raise _refused(_("This code no longer matches its top-up plan. Please ask the "
                             "shop."), field="code") from None
        topup = Topup(plan_id=plan.id, member_id=member_id, card_id=card.id,
                      currency=plan.currency, amount_minor=quote.amount,
                      bonus_minor=quote.bonus, points=quote.points, gifts=quote.gifts,
                      first=first, channel=channel, store_id=store_id, code_id=row.id)
        session.add(topup)
        session.flush()
        credit(session, topup)
        return topup


def member_topups(session: Session, member_id: int, limit: int = 20) -> list[Topup]:
    return list(session.scalars(select(Topup).where(Topup.member_id == member_id)
                                .order_by(Topup.id.desc()).limit(limit)))


def credited_count(session: Session, plan_id: int) -> int:
    return session.scalar(select(func.count(Topup.id)).where(
        Topup.plan_id == plan_id, Topup.status == TopupStatus.CREDITED)) or 0
