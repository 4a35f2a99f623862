"""Smart top-up (spec 2.4): when a bill is larger than what a card can spend, offer the
tiers of the smart plans that apply, each worked out for that bill.

Formulas (bp: basis points, 1% = 100, 1.2× = 12000); one rounding at the end of each:
- discount: top-up = bill × multiplier, bonus = bill × bonus %.
- gift: the same, plus points = top-up × points % and the tier's gift.
- fixed: the tier's own top-up, bonus, points and gift (no link to the bill).
The top-up is rounded UP to the plan's precision (0.1 / 1 / 10 / 100 units) and raised to
the plan's minimum top-up (the precision is for the top-up amount only); the bonus is
rounded down to the cent; points are whole, rounded down. First top-up extras: a gift
(discount and fixed tiers) or extra bonus and points percentages of the top-up (gift
tiers).
Doc examples: 1.2× and 8% on 100 → top up 120, bonus 8, 128 usable; 1.3×, 5% and 10%
points on 90 → top up 117, bonus 4.50, 11 points (11.7 rounded down)."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from portal import clock
from portal.members.models import MemberCard
from portal.money import precision
from portal.wallet.models import PlanStatus, SmartPlan, SmartTier

BP = Decimal(10_000)


@dataclass
class Offer:
    plan_id: int
    tier_id: int
    kind: str
    topup: int
    bonus: int
    points: int
    gift_template_ids: list[int]

    @property
    def usable(self) -> int:
        return self.topup + self.bonus

    def as_dict(self) -> dict:
        return {"offer_id": f"{self.plan_id}:{self.tier_id}", "plan_id": self.plan_id,
                "tier_id": self.tier_id, "kind": self.kind, "topup": self.topup,
                "bonus": self.bonus, "points": self.points,
                "gift_template_ids": self.gift_template_ids}


def _round(value: Decimal, step: int, mode) -> int:
    return int((value / step).to_integral_value(rounding=mode)) * step


def _points(topup_minor: int, currency: str, bp: int | None) -> int:
    units = Decimal(topup_minor).scaleb(-precision(currency))
    return int((units * (bp or 0) / BP).to_integral_value(rounding=ROUND_FLOOR))


def tier_offer(plan: SmartPlan, tier: SmartTier, bill_minor: int, *, first: bool) -> Offer:
    """One tier worked out for a bill of `bill_minor` (minor units of the plan's currency)."""
    bill = Decimal(bill_minor)
    gifts = [tier.gift_template_id] if tier.gift_template_id else []
    if tier.kind == "fixed":
        topup, bonus = tier.amount_minor, tier.bonus_minor or 0
        points = tier.bonus_points or 0
    else:
        topup = max(_round(bill * tier.multiplier_bp / BP, plan.rounding_minor, ROUND_CEILING),
                    plan.min_topup_minor)
        bonus = _round(bill * (tier.bonus_bp or 0) / BP, 1, ROUND_FLOOR)
        points = 0
        if tier.kind == "gift":
            # Points are per currency unit: 117.00 top-up × 10% = 11.7 → 11.
            points = _points(topup, plan.currency, tier.points_bp)
    if first and plan.first_bonus:
        if tier.kind == "gift":
            bonus += _round(Decimal(topup) * tier.first_bonus_bp / BP, 1, ROUND_FLOOR)
            points += _points(topup, plan.currency, tier.first_points_bp)
        if tier.first_gift_template_id:
            gifts.append(tier.first_gift_template_id)
    return Offer(plan.id, tier.id, tier.kind, topup, bonus, points, gifts)


def _in_store_scope(scope: dict, store) -> bool:
    mode = (scope or {}).get("mode", "all")
    if mode == "all" or store is None:
        return True  # no store (online): store scope does not apply, as for top-up plans
    hit = store.id in scope.get("store_ids", []) or \
        store.organisation in scope.get("organisations", []) or \
        store.store_group in scope.get("groups", [])
    return hit if mode == "include" else not hit


def offers_for_bill(session: Session, *, card: MemberCard, amount_minor: int,
                    store_id: int | None, channel: str) -> list[dict]:
    """The tiers that would let this card pay this bill, for the plans that apply now
    (active, in their dates, for the card's plan and tier, the store and the channel,
    with stock, first-top-up-only ones only before a first top-up). Two queries."""
    from portal.members.models import Store
    from portal.wallet import balance as wallet
    from portal.wallet.topups import is_first

    spendable = wallet.balance(session, card.id).spendable_now
    if amount_minor <= spendable:
        return []
    now = clock.now()
    currency = card.plan.currency
    store = session.get(Store, store_id) if store_id else None
    first = is_first(session, card.id)
    offers = []
    for plan in session.scalars(select(SmartPlan).options(selectinload(SmartPlan.tiers)).where(
            SmartPlan.status == PlanStatus.ACTIVE, SmartPlan.currency == currency,
            or_(SmartPlan.starts_at.is_(None), SmartPlan.starts_at <= now),
            or_(SmartPlan.ends_at.is_(None), SmartPlan.ends_at > now),
            or_(SmartPlan.stock_left.is_(None), SmartPlan.stock_left > 0))
            .order_by(SmartPlan.id)):
        if (plan.plan_ids and card.plan_id not in plan.plan_ids) or \
                (plan.tier_ids and card.tier_id not in plan.tier_ids) or \
                channel not in (plan.channels or []) or \
                not _in_store_scope(plan.store_scope, store) or \
                (plan.first_topup_only and not first):
            continue
        for tier in plan.tiers:
            offer = tier_offer(plan, tier, amount_minor, first=first)
            if spendable + offer.usable >= amount_minor:
                offers.append(offer.as_dict())
    return offers


# --- paying a bill with a smart top-up ----------------------------------------------------

def start(session: Session, *, member_id: int, card_id: int, plan_id: int, tier_id: int,
          bill_minor: int, store_id: int | None, channel: str = "ONLINE",
          order_external_id: str | None = None):
    """A pending top-up for the chosen tier, holding one unit of the plan's stock, and its
    payment. Once paid, the top-up is credited and the bill paid from the balance in the
    same transaction."""
    from flask_babel import gettext as _

    from portal.db import transaction
    from portal.payments import services as payments
    from portal.wallet.errors import WalletError, WalletErrorCode
    from portal.wallet.models import Topup
    from portal.wallet.topups import _member_card, is_first, take_stock

    with transaction(session):
        card = _member_card(session, member_id, card_id)
        offer = next((o for o in offers_for_bill(session, card=card, amount_minor=bill_minor,
                                                 store_id=store_id, channel=channel)
                      if o["plan_id"] == plan_id and o["tier_id"] == tier_id), None)
        if offer is None:
            raise WalletError(WalletErrorCode.INVALID,
                              _("This offer is no longer available for this bill."))
        held = take_stock(session, SmartPlan, plan_id)
        if held is False:
            raise WalletError(WalletErrorCode.INVALID, _("This offer is sold out."))
        plan = session.get(SmartPlan, plan_id)
        topup = Topup(smart_tier_id=tier_id, member_id=member_id, card_id=card.id,
                      currency=plan.currency, amount_minor=offer["topup"],
                      bonus_minor=offer["bonus"], points=offer["points"],
                      gifts=[{"template_id": t, "quantity": 1}
                             for t in offer["gift_template_ids"]],
                      first=is_first(session, card.id), holds_stock=bool(held),
                      channel=channel, store_id=store_id,
                      bill_minor=bill_minor, bill_order_id=order_external_id)
        session.add(topup)
        session.flush()
        payment = payments.create(session, purpose="smart_topup", purpose_id=topup.id,
                                  member_id=member_id, amount_minor=topup.amount_minor,
                                  currency=plan.currency,
                                  description=_("Top-up and pay: %(plan)s", plan=plan.name))
        topup.payment_id = payment.id
        return topup


def _smart_plan_id(session: Session, topup) -> int:
    return session.scalar(select(SmartTier.plan_id).where(SmartTier.id == topup.smart_tier_id))


def _fulfil(session: Session, payment) -> None:
    import logging

    from portal.payments.errors import FulfilmentRefused
    from portal.wallet import balance as wallet
    from portal.wallet.errors import WalletError
    from portal.wallet.models import TopupStatus
    from portal.wallet.topups import _locked_topup, credit, still_first, take_stock

    topup = _locked_topup(session, payment)
    if topup.status == TopupStatus.CREDITED:
        return
    plan = session.get(SmartPlan, _smart_plan_id(session, topup))
    if topup.status == TopupStatus.CANCELLED:
        held = take_stock(session, SmartPlan, plan.id)
        if held is False:
            raise FulfilmentRefused("sold out")
        topup.holds_stock = bool(held)
    if topup.first and not still_first(session, topup):
        if plan.first_topup_only:
            raise FulfilmentRefused("not the first top-up any more")
        offer = tier_offer(plan, session.get(SmartTier, topup.smart_tier_id),
                           topup.bill_minor, first=False)
        topup.bonus_minor, topup.points, topup.first = offer.bonus, offer.points, False
        topup.gifts = [{"template_id": t, "quantity": 1} for t in offer.gift_template_ids]
    credit(session, topup)
    try:
        with session.begin_nested():
            paid = wallet.charge(session, card_id=topup.card_id, amount_minor=topup.bill_minor,
                                 currency=topup.currency, idempotency_key=f"smart:{topup.id}",
                                 order_external_id=topup.bill_order_id,
                                 store_id=topup.store_id, channel=topup.channel)
            paid.topup_id = topup.id
    except WalletError as e:
        # The top-up stands (it was paid for); the bill can be paid again from the balance.
        logging.getLogger(__name__).warning("smart top-up %s: bill not paid: %s", topup.id, e)


def _release(session: Session, payment) -> None:

    from portal.wallet.models import TopupStatus
    from portal.wallet.topups import _locked_topup, give_back_stock

    topup = _locked_topup(session, payment)
    if topup.status == TopupStatus.PENDING:
        topup.status = TopupStatus.CANCELLED
        give_back_stock(session, SmartPlan, topup)


def _register() -> None:
    from flask_babel import lazy_gettext as _l

    from portal.payments import services as payments
    from portal.wallet.topups import _refund

    payments.register("smart_topup", label=_l("Smart top-up"), fulfil=_fulfil,
                      release=_release, refund=_refund, result_endpoint="wallet.balance_page",
                      note=_bill_note)


def _bill_note(session: Session, payment) -> str | None:
    """A smart top-up whose bill could not be paid from the balance (spent meanwhile, the
    card frozen): the top-up stands, and the member is told to pay the bill again."""
    from flask_babel import gettext as _

    from portal.wallet.models import Charge

    if session.scalar(select(Charge.id).where(Charge.topup_id == payment.purpose_id)):
        return None
    return _("Your balance was topped up, but the bill could not be paid from it. Pay it "
             "again under Pay a bill.")


_register()
