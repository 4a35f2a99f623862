"""Card management (spec 2.2): the list of membership cards with their balances, and
staff edits of a card's status, expiry and tier, audited with before and after.

The list reads cards with their member, plan and tier, then every balance of the page in
two queries (prepaid accounts of the cards, points accounts of their members), so a page
costs the same number of queries whatever its length."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, selectinload

from portal import clock, ledger
from portal.db import transaction
from portal.ledger import AccountKind
from portal.members.errors import MemberError, MemberErrorCode
from portal.members.models import CardStatus, Member, MemberCard
from portal.staff.services import record

STATUSES = tuple(s.value for s in CardStatus)
PREPAID = (AccountKind.PREPAID_PRINCIPAL, AccountKind.PREPAID_BONUS)
REASON_MAX = 200


@dataclass
class CardFilters:
    number: str = ""        # the whole number, its start, or its last 4 digits
    q: str = ""             # name or mobile
    plan_id: int | None = None
    tier_id: int | None = None
    status: str = ""        # active, frozen, expired


@dataclass
class CardRow:
    card: MemberCard
    principal: int
    bonus: int
    points: int

    @property
    def prepaid(self) -> int:
        return self.principal + self.bonus


def _status_condition(status: str, now: datetime):
    expired_by_date = and_(MemberCard.expires_at.is_not(None), MemberCard.expires_at <= now)
    if status == CardStatus.ACTIVE:
        return and_(MemberCard.status == CardStatus.ACTIVE, ~expired_by_date)
    if status == CardStatus.EXPIRED:
        return or_(MemberCard.status == CardStatus.EXPIRED,
                   and_(MemberCard.status == CardStatus.ACTIVE, expired_by_date))
    return MemberCard.status == status


def _filtered(query: Select, f: CardFilters) -> Select:
    digits = re.sub(r"[\s-]", "", f.number or "")
    if digits:
        if not digits.isdecimal():
            return query.where(False)
        # Four digits are what a masked card shows ("•••• 1234"): match the end.
        query = query.where(MemberCard.number.like(f"%{digits}") if len(digits) == 4
                            else MemberCard.number.like(f"{digits}%"))
    if term := " ".join((f.q or "").split()):
        conditions = [Member.full_name.ilike(f"%{term}%")]
        if len(phone := re.sub(r"\D", "", term)) >= 3:
            conditions.append(Member.mobile.like(f"%{phone}%"))
        query = query.where(or_(*conditions))
    if f.plan_id:
        query = query.where(MemberCard.plan_id == f.plan_id)
    if f.tier_id:
        query = query.where(MemberCard.tier_id == f.tier_id)
    if f.status in STATUSES:
        query = query.where(_status_condition(f.status, clock.now()))
    return query


def search_cards(session: Session, filters: CardFilters, *, before_id: int | None = None,
                 limit: int = 25) -> list[CardRow]:
    """Newest cards first, `limit` at a time ("load more" passes the last id seen)."""
    query = _filtered(select(MemberCard).join(Member, Member.id == MemberCard.member_id),
                      filters).options(selectinload(MemberCard.member),
                                       selectinload(MemberCard.plan),
                                       selectinload(MemberCard.tier))
    if before_id:
        query = query.where(MemberCard.id < before_id)
    cards = list(session.scalars(query.order_by(MemberCard.id.desc()).limit(limit)))
    return rows_for(session, cards)


def rows_for(session: Session, cards: list[MemberCard]) -> list[CardRow]:
    """The cards with their prepaid and points balances, in two queries for all of them."""
    if not cards:
        return []
    prepaid: dict[int, dict[str, int]] = {}
    currency = {c.id: c.plan.currency for c in cards}
    for owner_id, kind, acc_currency, amount in session.execute(
            select(ledger.Account.owner_id, ledger.Account.kind, ledger.Account.currency,
                   ledger.Account.balance)
            .where(ledger.Account.owner_type == "card", ledger.Account.kind.in_(PREPAID),
                   ledger.Account.owner_id.in_(currency))):
        if acc_currency == currency[owner_id]:
            prepaid.setdefault(owner_id, {})[kind] = amount
    points = dict(session.execute(
        select(ledger.Account.owner_id, ledger.Account.balance)
        .where(ledger.Account.owner_type == "member", ledger.Account.currency == "",
               ledger.Account.kind == AccountKind.POINTS,
               ledger.Account.owner_id.in_({c.member_id for c in cards}))).all())
    return [CardRow(c, prepaid.get(c.id, {}).get(AccountKind.PREPAID_PRINCIPAL, 0),
                    prepaid.get(c.id, {}).get(AccountKind.PREPAID_BONUS, 0),
                    points.get(c.member_id, 0)) for c in cards]


def count_cards(session: Session, filters: CardFilters) -> int:
    return session.scalar(_filtered(
        select(func.count(MemberCard.id)).join(Member, Member.id == MemberCard.member_id),
        filters))


def card_for_edit(session: Session, card_id: int) -> MemberCard | None:
    return session.scalar(select(MemberCard).options(
        selectinload(MemberCard.member), selectinload(MemberCard.plan),
        selectinload(MemberCard.tier)).where(MemberCard.id == card_id))


def _snapshot(card: MemberCard) -> dict:
    return {"status": card.status, "expires_at": card.expires_at, "tier_id": card.tier_id}


def check(session: Session, card: MemberCard, *, status: str, tier_id: int | None,
          reason: str, expires_on: date | None = None, check_expiry: bool = True
          ) -> tuple[dict[str, str], datetime | None]:
    """What is wrong with an edit of the card, by field, and the expiry it would set."""
    from portal.loyalty import tiers

    errors: dict[str, str] = {}
    if status not in (CardStatus.ACTIVE, CardStatus.FROZEN):
        errors["status"] = _("Choose active or frozen.")
    if len(reason) > REASON_MAX:
        errors["reason"] = _("At most %(n)d characters.", n=REASON_MAX)
    elif status != card.status and "status" not in errors and not reason:
        errors["reason"] = _("Say why the card is frozen or unfrozen (it goes in the "
                             "audit log).")
    expires_at = card.expires_at
    if check_expiry:
        if card.plan.validity_days is None:
            if expires_on is not None:
                errors["expires_on"] = _("Cards of this plan never expire.")
        elif expires_on is None:
            errors["expires_on"] = _("Enter the last day the card is valid.")
        else:
            # The card is valid through the chosen local day.
            expires_at = clock.start_of_local_day(expires_on + timedelta(days=1))
    if tier_id is not None and tier_id != card.tier_id and \
            card.plan_id not in tiers.manual_tier_plans(session):
        errors["tier_id"] = _("This plan computes tiers from experience: they cannot be "
                              "set by hand.")
    return errors, expires_at


def update_card(session: Session, card_id: int, *, status: str, expires_on: date | None,
                tier_id: int | None, reason: str, operator_id: int) -> MemberCard:
    """Freeze or unfreeze the card (a reason is required), move its expiry (plans whose
    cards expire) and record its tier (plans whose tiers are not computed). Checks every
    field before changing any; one audit entry with before and after."""
    from portal.loyalty import tiers
    from portal.loyalty.errors import LoyaltyError

    reason = " ".join((reason or "").split())
    with transaction(session):
        card = session.get(MemberCard, card_id)
        if card is None:
            raise MemberError(MemberErrorCode.NOT_FOUND, _("No such card."))
        before = _snapshot(card)
        errors, expires_at = check(session, card, status=status, tier_id=tier_id,
                                   reason=reason, expires_on=expires_on)
        if errors:
            raise MemberError(MemberErrorCode.INVALID_VALUE,
                              _("Please correct the marked fields."), errors=errors)
        if tier_id is not None and tier_id != card.tier_id:
            try:
                tiers.record_tier(session, card.id, tier_id, operator_id=operator_id)
            except LoyaltyError as e:
                raise MemberError(MemberErrorCode.INVALID_VALUE,
                                  _("Please correct the marked fields."),
                                  errors={"tier_id": str(e)}) from None
        card.status, card.expires_at = status, expires_at
        after = _snapshot(card)
        if after != before:
            record(session, operator_id, "card.update", card, before=before,
                   after={**after, "reason": reason})
        return card
