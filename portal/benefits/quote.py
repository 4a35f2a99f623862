"""The basket quote: what a member would pay for a basket, and earn, with their benefits.

Nothing is written. The rules, in the order they are applied:

1. Which benefits count: active ones of the card plan's currency whose plans and tiers
   include the card (`rules.in_scope`), and those a paid package period running at the
   quote's moment gives the member (`purchases.active_package_benefit_ids`). The others
   are not the member's and are not listed.
2. A benefit on another channel (`wrong_channel`) or outside its time window
   (`outside_time_window`: a member day's schedule, the member's birthday window) does
   nothing on this order.
3. Line offers. On each line the member gets one offer, the best: a member price (the
   product's price in the benefit's list, × quantity), or a percentage off — a member
   discount, a member day or a birthday, each with the tier's perk added. Member prices
   and percentages never stack on a line; the larger discount wins (on a tie, the older
   benefit). A percentage is rounded once per line, half up to the minor unit
   (10% of 1,005 is 101). A line excluded by the benefit's products or categories is
   `excluded_product` / `excluded_category`; an offer beaten on a line is `not_better`.
   A member price only concerns the products it lists.
4. Restriction rules, with the prepaid balance given or else the card's real one
   (principal + bonus): `balance_below_amount` refuses when balance < amount;
   `balance_below_due` when balance < the basket before any discount;
   `balance_below_discounted_due` when balance < the basket less this benefit's own
   discount. A refused benefit is `restriction_rule` for the whole order.
5. Order promotions ("20 off 100"), after line offers: a promotion counts the lines it does
   not exclude, at their price after line offers; below its threshold it is
   `below_threshold`. The best qualifying promotion applies once (the others:
   `not_better`), shared over its lines in proportion (largest remainder, so the shares
   add up exactly).
6. Points: the card plan's earning rule on what each line costs after all discounts
   (`loyalty.line_bases` and `earned`, no payments known), then × the best multiplier
   active now among multiplier benefits, member days and birthdays (tier perks added).
   Multipliers do not stack: the best one applies, the others are `not_better`. Points
   are floored after multiplying. Experience is not multiplied. Restriction rules and
   exclusions do not touch multipliers: the points of a recorded order are worked out
   after it is paid, when the prepaid balance has moved, and the quote must agree with
   what the order earns (`points_multiplier`, used by `loyalty.record_order`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import clock
from portal.benefits import rules
from portal.benefits.models import Benefit, BenefitKind, BenefitStatus

FULL = rules.FULL
MAX_LINES = 200
LINE_OFFER_KINDS = (BenefitKind.MEMBER_PRICE, BenefitKind.DISCOUNT, BenefitKind.MEMBER_DAY,
                    BenefitKind.BIRTHDAY)
MULTIPLIER_KINDS = (BenefitKind.MULTIPLIER, BenefitKind.MEMBER_DAY, BenefitKind.BIRTHDAY)
QUOTED_KINDS = (*LINE_OFFER_KINDS, BenefitKind.PROMOTION, BenefitKind.MULTIPLIER)


class Reason(StrEnum):
    RESTRICTION_RULE = "restriction_rule"
    EXCLUDED_PRODUCT = "excluded_product"
    EXCLUDED_CATEGORY = "excluded_category"
    WRONG_CHANNEL = "wrong_channel"
    OUTSIDE_TIME_WINDOW = "outside_time_window"
    NOT_BETTER = "not_better"
    BELOW_THRESHOLD = "below_threshold"


@dataclass(frozen=True)
class QuoteLine:
    product_id: str
    category: str
    quantity: int
    unit_price: int          # minor units

    @property
    def amount(self) -> int:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class Skipped:
    """A benefit that did not apply, and why."""

    benefit: Benefit
    reason: Reason


@dataclass(frozen=True)
class Offer:
    benefit: Benefit
    discount: int                    # minor units
    discount_bp: int | None = None   # a percentage off
    unit_price: int | None = None    # a member price


@dataclass
class LineQuote:
    line: QuoteLine
    offer: Offer | None = None
    promotion_discount: int = 0
    not_applied: list[Skipped] = field(default_factory=list)

    @property
    def amount(self) -> int:
        return self.line.amount

    @property
    def discount(self) -> int:
        return self.offer.discount if self.offer else 0

    @property
    def after_offer(self) -> int:
        return self.amount - self.discount

    @property
    def final(self) -> int:
        return self.after_offer - self.promotion_discount


@dataclass
class Quote:
    card: object
    store_id: int | None
    channel: str
    at: datetime
    currency: str
    prepaid_balance: int | None          # None: no benefit needed it
    prepaid_balance_given: bool
    lines: list[LineQuote]
    promotion: Offer | None
    multiplier_bp: int
    multiplier: Benefit | None
    points_base: int
    points_before_multiplier: int
    points: int
    experience: int
    not_applied: list[Skipped]

    @property
    def subtotal(self) -> int:
        return sum(q.amount for q in self.lines)

    @property
    def total(self) -> int:
        return sum(q.final for q in self.lines)

    @property
    def discount(self) -> int:
        return self.subtotal - self.total


# --- shared with earning ----------------------------------------------------------------------

def benefits_for(session: Session, card, at: datetime | None = None) -> list[Benefit]:
    """The card's active benefits that can change a bill or points: those its plan and tier
    have, and those a paid package period running at `at` gives the member whatever their
    tier (two queries)."""
    from portal.benefits import purchases

    bought = purchases.active_package_benefit_ids(session, card.member_id, at)
    found = session.scalars(select(Benefit).where(
        Benefit.status == BenefitStatus.ACTIVE, Benefit.kind.in_(QUOTED_KINDS),
        Benefit.currency == card.plan.currency).order_by(Benefit.id)).all()
    return [b for b in found if b.id in bought or rules.in_scope(b, card)]


def _gate(benefit: Benefit, card, channel: str, at: datetime) -> Reason | None:
    if not rules.channel_ok(benefit, channel):
        return Reason.WRONG_CHANNEL
    if not rules.is_open(benefit, card, at):
        return Reason.OUTSIDE_TIME_WINDOW
    return None


def _multipliers(benefits: list[Benefit], card) -> list[tuple[int, Benefit]]:
    """Multipliers above × 1, best first (on a tie, the older benefit)."""
    found = [(rules.multiplier_bp(b, card.tier_id), b) for b in benefits
             if b.kind in MULTIPLIER_KINDS]
    return sorted(((bp, b) for bp, b in found if bp > FULL), key=lambda x: (-x[0], x[1].id))


def best_multiplier(benefits: list[Benefit], card, channel: str,
                    at: datetime) -> tuple[int, Benefit | None]:
    """The one multiplier that applies (basis points) and its benefit; × 1 and None when
    none does."""
    live = [b for b in benefits if _gate(b, card, channel, at) is None]
    ranked = _multipliers(live, card)
    return ranked[0] if ranked else (FULL, None)


def points_multiplier(session: Session, card, channel: str,
                      at: datetime) -> tuple[int, Benefit | None]:
    """What the card's points are multiplied by for an order on `channel` at `at`."""
    return best_multiplier(benefits_for(session, card, at), card, channel, at)


def multiply(points: int, multiplier_bp: int) -> int:
    return points * multiplier_bp // FULL


# --- the quote ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Terms:
    """A benefit's line terms, read once per quote rather than once per line."""

    benefit: Benefit
    prices: dict[str, int]
    discount_bp: int
    products: frozenset[str]
    categories: frozenset[str]

    @classmethod
    def of(cls, benefit: Benefit, tier_id: int) -> _Terms:
        exclusions = benefit.exclusions or {}
        mode, values = exclusions.get("mode") or "none", exclusions.get("values") or []
        prices = {str(p.get("product_id")): int(p.get("price_minor") or 0)
                  for p in benefit.prices or []} \
            if benefit.kind == BenefitKind.MEMBER_PRICE else {}
        return cls(benefit, prices, rules.discount_bp(benefit, tier_id),
                   frozenset(str(v) for v in values) if mode == "products" else frozenset(),
                   frozenset(str(v).casefold() for v in values)
                   if mode == "categories" else frozenset())

    def excluded(self, line: QuoteLine) -> Reason | None:
        if line.product_id in self.products:
            return Reason.EXCLUDED_PRODUCT
        if self.categories and line.category.casefold() in self.categories:
            return Reason.EXCLUDED_CATEGORY
        return None

    def offer(self, line: QuoteLine) -> Offer | None:
        """What the benefit would take off the line on its own (None: not its concern)."""
        if self.benefit.kind == BenefitKind.MEMBER_PRICE:
            price = self.prices.get(line.product_id)
            if price is None:
                return None
            return Offer(self.benefit, max(line.amount - price * line.quantity, 0),
                         unit_price=price)
        if self.discount_bp <= 0:
            return None
        return Offer(self.benefit, _percent_of(line.amount, self.discount_bp),
                     discount_bp=self.discount_bp)


def _percent_of(amount: int, bp: int) -> int:
    """bp/10,000 of amount, rounded half up to the minor unit."""
    return (amount * bp + FULL // 2) // FULL


class _Balance:
    """The prepaid balance, read from the wallet only if a restriction rule needs it."""

    def __init__(self, session: Session, card, given: int | None):
        self.session, self.card, self.value, self.given = session, card, given, given is not None

    def get(self) -> int:
        if self.value is None:
            from portal.wallet import balance as wallet

            self.value = wallet.balance(self.session, self.card.id).total
        return self.value


def _restricted(benefit: Benefit, balance: _Balance, due: int, own_discount: int) -> bool:
    restriction = benefit.restriction or {}
    rule = restriction.get("rule") or "none"
    if rule == "balance_below_amount":
        return balance.get() < int(restriction.get("amount_minor") or 0)
    if rule == "balance_below_due":
        return balance.get() < due
    if rule == "balance_below_discounted_due":
        return balance.get() < due - own_discount
    return False


def _share(total: int, weights: list[int]) -> list[int]:
    """`total` split in proportion to `weights`, largest remainder first (ties: the first
    line), so the parts add up to `total` exactly."""
    whole = sum(weights)
    if not whole:
        return [0] * len(weights)
    parts = [total * w // whole for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[:total - sum(parts)]:
        parts[i] += 1
    return parts


def quote(session: Session, *, card_no: str, channel: str, lines: list[QuoteLine],
          at: datetime | None = None, store_id: int | None = None,
          prepaid_balance: int | None = None) -> Quote:
    """Price a basket for a member; see the module's rules. Raises LoyaltyError for an
    unknown or inactive card."""
    from portal.loyalty import services as loyalty
    from portal.loyalty.models import EarningRule

    at = at or clock.now()
    channel = channel.upper()
    card = loyalty.card_for(session, card_no)
    benefits = benefits_for(session, card, at)
    balance = _Balance(session, card, prepaid_balance)
    quoted = [LineQuote(line) for line in lines]
    due = sum(q.amount for q in quoted)
    skipped: list[Skipped] = []

    live = []
    for b in benefits:
        reason = _gate(b, card, channel, at)
        if reason is None:
            live.append(b)
        else:
            skipped.append(Skipped(b, reason))

    _apply_line_offers(quoted, [b for b in live if b.kind in LINE_OFFER_KINDS], card,
                       balance, due, skipped)
    promotion = _apply_promotion(quoted, [b for b in live if b.kind == BenefitKind.PROMOTION],
                                 balance, due, skipped)

    rule = session.scalar(select(EarningRule).where(EarningRule.plan_id == card.plan_id))
    bases = loyalty.line_bases(rule, [
        loyalty.OrderLine(str(i), q.final, product_id=q.line.product_id,
                          category=q.line.category, quantity=q.line.quantity)
        for i, q in enumerate(quoted)], [])
    base = sum(bases.values())
    points, experience = loyalty.earned(rule, base)
    ranked = _multipliers(live, card)
    multiplier_bp, multiplier = ranked[0] if ranked else (FULL, None)
    skipped += [Skipped(b, Reason.NOT_BETTER) for _bp, b in ranked[1:]
                if b.kind == BenefitKind.MULTIPLIER]

    return Quote(card=card, store_id=store_id, channel=channel, at=at,
                 currency=card.plan.currency, prepaid_balance=balance.value,
                 prepaid_balance_given=balance.given, lines=quoted, promotion=promotion,
                 multiplier_bp=multiplier_bp, multiplier=multiplier, points_base=base,
                 points_before_multiplier=points, points=multiply(points, multiplier_bp),
                 experience=experience, not_applied=skipped)


def _apply_line_offers(quoted: list[LineQuote], benefits: list[Benefit], card,
                       balance: _Balance, due: int, skipped: list[Skipped]) -> None:
    offers: dict[int, list[Offer | Skipped]] = {}
    for b in benefits:
        terms = _Terms.of(b, card.tier_id)
        per_line: list[Offer | Skipped | None] = []
        for q in quoted:
            offer = terms.offer(q.line)
            reason = terms.excluded(q.line) if offer is not None else None
            per_line.append(Skipped(b, reason) if reason else offer)
        if all(x is None for x in per_line):
            continue  # a member price for none of these products, a member day with no % off
        own = sum(x.discount for x in per_line if isinstance(x, Offer))
        if _restricted(b, balance, due, own):
            skipped.append(Skipped(b, Reason.RESTRICTION_RULE))
            continue
        for i, x in enumerate(per_line):
            if x is not None:
                offers.setdefault(i, []).append(x)
    for i, q in enumerate(quoted):
        found = offers.get(i, [])
        candidates = sorted((x for x in found if isinstance(x, Offer)),
                            key=lambda o: (-o.discount, o.benefit.id))
        q.offer = candidates[0] if candidates and candidates[0].discount > 0 else None
        q.not_applied = [x for x in found if isinstance(x, Skipped)] + \
            [Skipped(o.benefit, Reason.NOT_BETTER) for o in candidates if o is not q.offer]


def _apply_promotion(quoted: list[LineQuote], benefits: list[Benefit], balance: _Balance,
                     due: int, skipped: list[Skipped]) -> Offer | None:
    qualifying: list[tuple[Offer, list[int]]] = []
    for b in benefits:
        terms = _Terms.of(b, 0)
        eligible = []
        for i, q in enumerate(quoted):
            reason = terms.excluded(q.line)
            if reason:
                q.not_applied.append(Skipped(b, reason))
            else:
                eligible.append(i)
        counted = sum(quoted[i].after_offer for i in eligible)
        off = min(b.off_minor or 0, counted) if counted >= (b.threshold_minor or 0) else 0
        if _restricted(b, balance, due, off):
            skipped.append(Skipped(b, Reason.RESTRICTION_RULE))
        elif counted < (b.threshold_minor or 0) or not eligible:
            skipped.append(Skipped(b, Reason.BELOW_THRESHOLD))
        else:
            qualifying.append((Offer(b, off), eligible))
    if not qualifying:
        return None
    qualifying.sort(key=lambda x: (-x[0].discount, x[0].benefit.id))
    (best, eligible), rest = qualifying[0], qualifying[1:]
    skipped += [Skipped(o.benefit, Reason.NOT_BETTER) for o, _e in rest]
    for i, part in zip(eligible, _share(best.discount,
                                         [quoted[i].after_offer for i in eligible]),
                       strict=True):
        quoted[i].promotion_discount = part
    return best
