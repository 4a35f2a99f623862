"""The invariants, one set-based query each: a cached number against the rows it sums.

Each query reads its invariant in one statement, so it sees one snapshot of both sides
and a sale committing meanwhile cannot show up as a mismatch. Each returns only the rows
that disagree; how many rows were looked at is one COUNT beside it. The number of queries
is fixed, whatever the size of the data.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import BigInteger, and_, cast, func, literal, or_, select
from sqlalchemy.orm import Session, aliased

from portal.coupons.models import Coupon, CouponTemplate, MemberTemplateCount
from portal.giftcards.cards import OWNER as GIFT_CARD_OWNER
from portal.giftcards.models import GiftCard, GiftCardCharge, GiftCardTransaction, TransactionKind
from portal.ledger import Account, AccountKind, Entry
from portal.payments.models import Payment, PaymentRefund
from portal.wallet.models import Charge, ChargeRefund, SmartPlan, SmartTier, Topup, TopupPlan


@dataclass(frozen=True)
class Mismatch:
    """A cached value that disagrees with its rows: `expected` is what the rows say."""

    check: str
    table: str
    row_id: str
    field: str
    expected: int | None
    actual: int | None
    # Whose it is, for people reading the report ("member 12", "points").
    owner: str = ""

    def as_dict(self) -> dict:
        return {"check": self.check, "table": self.table, "row_id": self.row_id,
                "field": self.field, "expected": self.expected, "actual": self.actual,
                "owner": self.owner}


@dataclass(frozen=True)
class Check:
    # The names its mismatches carry (the ledger query checks three things at once).
    names: tuple[str, ...]
    # The table whose rows it looks at.
    table: str
    # Rows looked at, and the mismatches found.
    run: Callable[[Session], tuple[int, Iterator[Mismatch]]]


def _sum(column):
    # PostgreSQL sums a bigint as numeric (a Decimal here): back to an integer.
    return cast(func.sum(column), BigInteger)


def _count(session: Session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def ledger_accounts(session: Session) -> tuple[int, Iterator[Mismatch]]:
    """An account's cached balance equals the sum of its entries, the balance the newest
    entry recorded, and what its credits have left unspent (the lots points expire from)."""
    sums = (select(Entry.account_id, _sum(Entry.delta).label("total"),
                   _sum(Entry.open_amount).label("open"), func.max(Entry.id).label("last"))
            .group_by(Entry.account_id).subquery())
    last = aliased(Entry)
    total = func.coalesce(sums.c.total, 0)
    open_ = func.coalesce(sums.c.open, 0)
    after = func.coalesce(last.balance_after, 0)
    rows = session.execute(
        select(Account.id, Account.kind, Account.owner_type, Account.owner_id,
               Account.balance, total, open_, after)
        .outerjoin(sums, sums.c.account_id == Account.id)
        .outerjoin(last, last.id == sums.c.last)
        .where(or_(Account.balance != total, Account.balance != open_,
                   Account.balance != after))
        .order_by(Account.id)).all()

    def found():
        for id_, kind, owner_type, owner_id, cached, total_, open_left, last_after in rows:
            owner = f"{kind} · {owner_type} {owner_id}"
            if cached != total_:
                yield Mismatch("ledger_balance", "ledger_accounts", str(id_), "balance",
                               total_, cached, owner)
            if cached != last_after:
                yield Mismatch("ledger_last_entry", "ledger_accounts", str(id_), "balance",
                               last_after, cached, owner)
            if cached != open_left:
                yield Mismatch("ledger_lots", "ledger_accounts", str(id_), "balance",
                               open_left, cached, owner)
    return _count(session, Account), found()


def coupon_inventory(session: Session) -> tuple[int, Iterator[Mismatch]]:
    """A limited template has left its inventory less every coupon ever issued from it
    (coupons are never deleted; used and expired ones still took a unit)."""
    issued = (select(Coupon.template_id, func.count().label("n"))
              .group_by(Coupon.template_id).subquery())
    expected = CouponTemplate.inventory_total - func.coalesce(issued.c.n, 0)
    rows = session.execute(
        select(CouponTemplate.id, expected, CouponTemplate.inventory_left)
        .outerjoin(issued, issued.c.template_id == CouponTemplate.id)
        .where(or_(and_(CouponTemplate.inventory_total.is_(None),
                        CouponTemplate.inventory_left.is_not(None)),
                   and_(CouponTemplate.inventory_total.is_not(None),
                        or_(CouponTemplate.inventory_left.is_(None),
                            CouponTemplate.inventory_left != expected))))
        .order_by(CouponTemplate.id)).all()
    return _count(session, CouponTemplate), (
        Mismatch("coupon_inventory", "coupon_templates", str(id_), "inventory_left",
                 want, have) for id_, want, have in rows)


def coupon_member_counts(session: Session) -> tuple[int, Iterator[Mismatch]]:
    """The per-member counter of a template equals the member's coupons of it; coupons
    without a counter row are counted as a counter of 0."""
    issued = (select(Coupon.member_id, Coupon.template_id, func.count().label("n"))
              .group_by(Coupon.member_id, Coupon.template_id).subquery())
    counted = func.coalesce(issued.c.n, 0)
    wrong = session.execute(
        select(MemberTemplateCount.member_id, MemberTemplateCount.template_id, counted,
               MemberTemplateCount.issued)
        .outerjoin(issued, and_(issued.c.member_id == MemberTemplateCount.member_id,
                                issued.c.template_id == MemberTemplateCount.template_id))
        .where(MemberTemplateCount.issued != counted)).all()
    missing = session.execute(
        select(issued.c.member_id, issued.c.template_id, issued.c.n, literal(0))
        .where(~select(MemberTemplateCount.member_id).where(
            MemberTemplateCount.member_id == issued.c.member_id,
            MemberTemplateCount.template_id == issued.c.template_id).exists())).all()
    rows = sorted(wrong + missing, key=lambda r: (r[1], r[0]))
    return _count(session, MemberTemplateCount), (
        Mismatch("coupon_member_count", "coupon_member_counts",
                 f"{member_id}:{template_id}", "issued", want, have, f"member {member_id}")
        for member_id, template_id, want, have in rows)


def _plan_stock(session: Session, name: str, model, holding) -> tuple[int, Iterator[Mismatch]]:
    """A limited plan has left its stock less the top-ups holding a unit of it: pending
    ones until their payment settles, paid ones for good (a cancelled one gives it back)."""
    held = func.coalesce(holding.c.n, 0)
    expected = model.stock_total - held
    rows = session.execute(
        select(model.id, expected, model.stock_left)
        .outerjoin(holding, holding.c.plan_id == model.id)
        .where(or_(and_(model.stock_total.is_(None), model.stock_left.is_not(None)),
                   and_(model.stock_total.is_not(None),
                        or_(model.stock_left.is_(None), model.stock_left != expected))))
        .order_by(model.id)).all()
    return _count(session, model), (
        Mismatch(name, model.__tablename__, str(id_), "stock_left", want, have)
        for id_, want, have in rows)


def topup_plan_stock(session: Session) -> tuple[int, Iterator[Mismatch]]:
    holding = (select(Topup.plan_id, func.count().label("n"))
               .where(Topup.holds_stock.is_(True), Topup.plan_id.is_not(None))
               .group_by(Topup.plan_id).subquery())
    return _plan_stock(session, "topup_plan_stock", TopupPlan, holding)


def smart_plan_stock(session: Session) -> tuple[int, Iterator[Mismatch]]:
    holding = (select(SmartTier.plan_id, func.count().label("n"))
               .join(Topup, Topup.smart_tier_id == SmartTier.id)
               .where(Topup.holds_stock.is_(True), Topup.plan_id.is_(None))
               .group_by(SmartTier.plan_id).subquery())
    return _plan_stock(session, "smart_plan_stock", SmartPlan, holding)


def gift_card_balances(session: Session) -> tuple[int, Iterator[Mismatch]]:
    """A card's history (what staff and the holder see) adds up to its ledger balance."""
    history = (select(GiftCardTransaction.card_id,
                      _sum(GiftCardTransaction.amount_minor).label("total"))
               .group_by(GiftCardTransaction.card_id).subquery())
    shown = func.coalesce(history.c.total, 0)
    held = func.coalesce(Account.balance, 0)
    rows = session.execute(
        select(GiftCard.id, shown, held)
        .outerjoin(history, history.c.card_id == GiftCard.id)
        .outerjoin(Account, and_(Account.kind == AccountKind.GIFT_CARD,
                                 Account.owner_type == GIFT_CARD_OWNER,
                                 Account.owner_id == GiftCard.id))
        .where(shown != held).order_by(GiftCard.id)).all()
    return _count(session, GiftCard), (
        Mismatch("gift_card_history", "giftcards", str(id_), "balance", want, have)
        for id_, want, have in rows)


def gift_card_charge_refunds(session: Session) -> tuple[int, Iterator[Mismatch]]:
    refunds = (select(GiftCardTransaction.charge_id,
                      _sum(GiftCardTransaction.amount_minor).label("total"))
               .where(GiftCardTransaction.kind == TransactionKind.REFUND,
                      GiftCardTransaction.charge_id.is_not(None))
               .group_by(GiftCardTransaction.charge_id).subquery())
    total = func.coalesce(refunds.c.total, 0)
    rows = session.execute(
        select(GiftCardCharge.id, total, GiftCardCharge.refunded_minor)
        .outerjoin(refunds, refunds.c.charge_id == GiftCardCharge.id)
        .where(GiftCardCharge.refunded_minor != total).order_by(GiftCardCharge.id)).all()
    return _count(session, GiftCardCharge), (
        Mismatch("gift_card_charge_refunded", "giftcard_charges", str(id_), "refunded_minor",
                 want, have) for id_, want, have in rows)


def prepaid_charge_refunds(session: Session) -> tuple[int, Iterator[Mismatch]]:
    """A prepaid charge's refunded amounts (in all, of principal, of bonus) add up its
    refunds."""
    refunds = (select(ChargeRefund.charge_id,
                      _sum(ChargeRefund.amount_minor).label("amount"),
                      _sum(ChargeRefund.principal_minor).label("principal"),
                      _sum(ChargeRefund.bonus_minor).label("bonus"))
               .group_by(ChargeRefund.charge_id).subquery())
    pairs = (("refunded_minor", Charge.refunded_minor, refunds.c.amount),
             ("refunded_principal_minor", Charge.refunded_principal_minor,
              refunds.c.principal),
             ("refunded_bonus_minor", Charge.refunded_bonus_minor, refunds.c.bonus))
    rows = session.execute(
        select(Charge.id, *(c for _n, c, _s in pairs),
               *(func.coalesce(s, 0) for _n, _c, s in pairs))
        .outerjoin(refunds, refunds.c.charge_id == Charge.id)
        .where(or_(*(c != func.coalesce(s, 0) for _n, c, s in pairs)))
        .order_by(Charge.id)).all()

    def found():
        for row in rows:
            for i, (name, _c, _s) in enumerate(pairs):
                have, want = row[1 + i], row[1 + len(pairs) + i]
                if have != want:
                    yield Mismatch("prepaid_charge_refunded", "charges", str(row[0]), name,
                                   want, have)
    return _count(session, Charge), found()


def payment_refunds(session: Session) -> tuple[int, Iterator[Mismatch]]:
    refunds = (select(PaymentRefund.payment_id,
                      _sum(PaymentRefund.amount_minor).label("total"))
               .group_by(PaymentRefund.payment_id).subquery())
    total = func.coalesce(refunds.c.total, 0)
    rows = session.execute(
        select(Payment.id, total, Payment.refunded_minor)
        .outerjoin(refunds, refunds.c.payment_id == Payment.id)
        .where(Payment.refunded_minor != total).order_by(Payment.id)).all()
    return _count(session, Payment), (
        Mismatch("payment_refunded", "payments", str(id_), "refunded_minor", want, have)
        for id_, want, have in rows)


CHECKS = (
    Check(("ledger_balance", "ledger_last_entry", "ledger_lots"), "ledger_accounts",
          ledger_accounts),
    Check(("coupon_inventory",), "coupon_templates", coupon_inventory),
    Check(("coupon_member_count",), "coupon_member_counts", coupon_member_counts),
    Check(("topup_plan_stock",), "topup_plans", topup_plan_stock),
    Check(("smart_plan_stock",), "smart_plans", smart_plan_stock),
    Check(("gift_card_history",), "giftcards", gift_card_balances),
    Check(("gift_card_charge_refunded",), "giftcard_charges", gift_card_charge_refunds),
    Check(("prepaid_charge_refunded",), "charges", prepaid_charge_refunds),
    Check(("payment_refunded",), "payments", payment_refunds),
)
