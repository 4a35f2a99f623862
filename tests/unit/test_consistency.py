"""The nightly consistency check: each cached balance or counter, corrupted behind the
services' back, is found, recorded and mailed to the owners, and left as it was."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select, text

from portal import clock, jobs, ledger
from portal.consistency import services as consistency
from portal.consistency.models import CheckRun
from portal.coupons import services as coupons
from portal.db import db, transaction
from portal.giftcards import spending
from portal.ledger import AccountKind
from portal.notifications.models import OutboxMessage
from portal.payments.models import Payment, PaymentRefund
from portal.staff.models import Role
from portal.wallet import plans, topups
from portal.wallet.models import (
    Charge,
    ChargeRefund,
    SmartPlan,
    SmartTier,
    Topup,
    TopupPlan,
)
from tests.factories import CouponTemplateFactory, StaffFactory
from tests.fixtures import member_with_card
from tests.unit.test_giftcard_spending import make_card, pay
from tests.unit.test_topup_plans import fixed, make


@pytest.fixture
def books(session, plan, owner):
    """A little of everything the check reads, made the way the services make it."""
    clock.freeze(datetime(2026, 3, 1, 12, tzinfo=UTC))
    member = member_with_card(plan)
    card = db.session.merge(member).cards[0]
    with transaction(session):
        acc = ledger.account(session, AccountKind.POINTS, "member", member.id)
        ledger.post(session, acc, 300, reason="order", key="earn:1",
                    expires_at=clock.now() + timedelta(days=10))
        ledger.post(session, acc, 200, reason="order", key="earn:2")
        ledger.post(session, acc, -120, reason="redeem", key="spend:1")
    template = CouponTemplateFactory(inventory_total=10, inventory_left=10)
    coupons.issue(session, member_id=member.id, source=coupons.Source("admin"), key="give:1",
                  template_id=template.id, quantity=3, notify=False)
    gift = make_card(session)
    charge = pay(gift, 4000)
    spending.refund_charge(session, charge.id, amount_minor=1500, refund_key="R1",
                           store_id=None)
    with transaction(session):
        topup_plan = TopupPlan(kind="fixed", name="100", currency="CNY", status="active",
                               amount_minor=10_000, stock_total=5, stock_left=3)
        smart = SmartPlan(name="Short?", currency="CNY", status="active", stock_total=4,
                          stock_left=3, tiers=[SmartTier(position=1, kind="discount",
                                                         multiplier_bp=12000, bonus_bp=0)])
        session.add_all([topup_plan, smart])
        session.flush()
        # Two top-ups hold a unit of the plan (one paid, one pending); a cancelled one gave
        # its unit back; one holds a unit of the smart plan.
        for held, status in ((True, "credited"), (True, "pending"), (False, "cancelled")):
            session.add(Topup(plan_id=topup_plan.id, member_id=member.id, card_id=card.id,
                              currency="CNY", amount_minor=10_000, holds_stock=held,
                              status=status))
        session.add(Topup(smart_tier_id=smart.tiers[0].id, member_id=member.id,
                          card_id=card.id, currency="CNY", amount_minor=5000,
                          holds_stock=True, status="credited"))
        prepaid = Charge(card_id=card.id, member_id=member.id, currency="CNY",
                         amount_minor=3000, principal_minor=2000, bonus_minor=1000,
                         refunded_minor=700, refunded_principal_minor=500,
                         refunded_bonus_minor=200, channel="POS", idempotency_key="c1")
        session.add(prepaid)
        session.flush()
        session.add_all([
            ChargeRefund(charge_id=prepaid.id, refund_key="a", amount_minor=400,
                         principal_minor=300, bonus_minor=100),
            ChargeRefund(charge_id=prepaid.id, refund_key="b", amount_minor=300,
                         principal_minor=200, bonus_minor=100)])
        payment = Payment(token="t1", purpose="topup", purpose_id=1, amount_minor=10_000,
                          currency="CNY", description="Top-up", status="paid",
                          provider="demo", refunded_minor=2500,
                          expires_at=clock.now() + timedelta(hours=1))
        session.add(payment)
        session.flush()
        session.add(PaymentRefund(payment_id=payment.id, amount_minor=2500, reason="asked"))
    return {"member": member, "points": acc.id, "template": template.id, "gift": gift,
            "gift_charge": charge.id, "topup_plan": topup_plan.id, "smart": smart.id,
            "prepaid": prepaid.id, "payment": payment.id}


def corrupt(sql: str, **params) -> None:
    """A change behind the services' back, as a bad migration or a hand edit would make."""
    with db.engine.begin() as conn:
        conn.execute(text(sql), params)


def owner_mail() -> list[OutboxMessage]:
    db.session.commit()
    return list(db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.template == "consistency").order_by(OutboxMessage.id)))


def test_books_kept_by_the_services_are_consistent(session, books):
    result = consistency.run_check(session)
    assert result.ok, result.mismatches
    assert result.by_check["ledger_balance"]["rows"] >= 2        # points and the gift card
    assert result.by_check["coupon_member_count"]["rows"] == 1
    run = session.get(CheckRun, result.run_id)
    assert run.mismatch_count == 0 and run.mismatches == [] and run.reported_to == 0
    assert owner_mail() == []


@pytest.mark.parametrize("sql,check,table,row,expected,actual", [
    ("UPDATE ledger_accounts SET balance = balance + 5 WHERE id = :points",
     "ledger_balance", "ledger_accounts", "points", 380, 385),
    ("UPDATE ledger_entries SET delta = delta - 5 WHERE idempotency_key = 'earn:2'",
     "ledger_balance", "ledger_accounts", "points", 375, 380),
    ("UPDATE ledger_entries SET balance_after = 1 WHERE idempotency_key = 'spend:1'",
     "ledger_last_entry", "ledger_accounts", "points", 1, 380),
    ("UPDATE ledger_entries SET open_amount = 0 WHERE idempotency_key = 'earn:2'",
     "ledger_lots", "ledger_accounts", "points", 180, 380),
    ("UPDATE coupon_templates SET inventory_left = 9 WHERE id = :template",
     "coupon_inventory", "coupon_templates", "template", 7, 9),
    ("DELETE FROM coupons WHERE id = (SELECT MIN(id) FROM coupons)",
     "coupon_inventory", "coupon_templates", "template", 8, 7),
    ("UPDATE coupon_member_counts SET issued = 1",
     "coupon_member_count", "coupon_member_counts", None, 3, 1),
    ("UPDATE topup_plans SET stock_left = 4 WHERE id = :topup_plan",
     "topup_plan_stock", "topup_plans", "topup_plan", 3, 4),
    ("UPDATE topups SET holds_stock = false WHERE status = 'pending'",
     "topup_plan_stock", "topup_plans", "topup_plan", 4, 3),
    ("UPDATE smart_plans SET stock_left = NULL WHERE id = :smart",
     "smart_plan_stock", "smart_plans", "smart", 3, None),
    ("UPDATE giftcard_transactions SET amount_minor = amount_minor - 100"
     " WHERE kind = 'refund'",
     "gift_card_history", "giftcards", "gift", 7400, 7500),
    ("UPDATE giftcard_charges SET refunded_minor = 0 WHERE id = :gift_charge",
     "gift_card_charge_refunded", "giftcard_charges", "gift_charge", 1500, 0),
    ("UPDATE charges SET refunded_bonus_minor = 100 WHERE id = :prepaid",
     "prepaid_charge_refunded", "charges", "prepaid", 200, 100),
    ("UPDATE payments SET refunded_minor = 10000 WHERE id = :payment",
     "payment_refunded", "payments", "payment", 2500, 10000),
])
def test_a_corrupted_value_is_found_reported_and_left_alone(
        session, books, owner, sql, check, table, row, expected, actual):
    StaffFactory(role=Role.MANAGER, email="manager@example.com")
    ids = {k: (v.id if hasattr(v, "id") else v) for k, v in books.items()}
    corrupt(sql, **ids)
    with db.engine.connect() as conn:
        before = conn.execute(text(f"SELECT * FROM {table} ORDER BY 1")).all()

    result = consistency.run_check(session)

    assert not result.ok
    found = [m for m in result.mismatches if m.check == check]
    assert len(found) == 1, result.mismatches
    m = found[0]
    assert (m.table, m.expected, m.actual) == (table, expected, actual)
    if row is not None:
        assert m.row_id == str(ids[row])
    assert result.by_check[check]["mismatches"] == 1
    run = session.get(CheckRun, result.run_id)
    assert run.mismatch_count == result.mismatch_count
    assert m.as_dict() in run.mismatches
    mail = owner_mail()
    assert [msg.recipient for msg in mail] == [owner.email]      # owners, not the manager
    assert consistency.label(check) in mail[0].body and str(expected) in mail[0].body
    with db.engine.connect() as conn:
        assert conn.execute(text(f"SELECT * FROM {table} ORDER BY 1")).all() == before


def test_coupons_without_a_counter_row_are_reported(session, books):
    corrupt("DELETE FROM coupon_member_counts")
    result = consistency.check(session)
    [m] = result.mismatches
    assert (m.check, m.row_id, m.expected, m.actual) == (
        "coupon_member_count", f"{books['member'].id}:{books['template']}", 3, 0)


def test_an_unlimited_template_with_a_count_left_is_reported(session, books):
    corrupt("UPDATE coupon_templates SET inventory_total = NULL")
    [m] = consistency.check(session).mismatches
    assert (m.check, m.expected, m.actual) == ("coupon_inventory", None, 7)


def test_the_owner_reads_the_mail_in_their_language(session, books, owner):
    owner.locale = "zh_Hans"
    session.commit()
    corrupt("UPDATE ledger_accounts SET balance = balance + 5")
    consistency.run_check(session)
    [mail] = owner_mail()
    assert "一致性检查" in mail.subject


def test_the_night_runs_once_per_day(session, books, owner):
    corrupt("UPDATE coupon_templates SET inventory_left = 9")
    assert jobs.run_daily()["consistency_check"] == 1
    assert jobs.run_daily()["consistency_check"] is None
    clock.advance(timedelta(days=1))
    assert jobs.run_daily()["consistency_check"] == 1
    runs = session.scalars(select(CheckRun).order_by(CheckRun.id)).all()
    assert [(r.trigger, r.daily_on) for r in runs] == [
        ("daily", clock.today() - timedelta(days=1)), ("daily", clock.today())]
    assert len(owner_mail()) == 2       # still wrong the next night: told again


def test_a_lost_race_for_the_night_records_nothing(session, books, owner, monkeypatch):
    """Two consumers start the night together: both find no run for the day, the other
    records first, and this one's record hits the unique day and is rolled back."""
    corrupt("UPDATE coupon_templates SET inventory_left = 9")
    real_check = consistency.check

    def other_consumer_records_meanwhile(s, **kw):
        result, theirs = real_check(s, **kw), real_check(s)
        with transaction(s):
            consistency._record(s, theirs, trigger="daily", daily_on=clock.today())
        return result

    monkeypatch.setattr(consistency, "check", other_consumer_records_meanwhile)
    assert consistency.nightly(session) is None
    assert session.scalar(select(func.count(CheckRun.id))) == 1
    assert len(owner_mail()) == 1


def test_the_check_runs_a_fixed_number_of_queries(session, books, plan):
    def queries() -> int:
        count = 0

        def on_execute(*_args):
            nonlocal count
            count += 1

        event.listen(db.engine, "before_cursor_execute", on_execute)
        try:
            consistency.check(session)
        finally:
            event.remove(db.engine, "before_cursor_execute", on_execute)
        return count

    few = queries()
    for n in range(5):
        other = member_with_card(plan)
        coupons.issue(session, member_id=other.id, source=coupons.Source("admin"),
                      key=f"more:{n}", template_id=books["template"], notify=False)
        with transaction(session):
            acc = ledger.account(session, AccountKind.POINTS, "member", other.id)
            ledger.post(session, acc, 10, reason="order", key=f"earn:{n}")
    assert queries() == few


def test_a_stock_set_again_counts_the_units_still_held(session, member):
    """Limited, unlimited, limited again: top-ups still holding a unit from the first
    period count against the new stock, so the plan and the check agree."""
    card = db.session.merge(member).cards[0]
    plan = make("fixed", fixed(stock_total=5))
    for _ in range(2):
        topups.start(session, member_id=member.id, card_id=card.id, plan_id=plan.id)
    plans.update(session, plan.id, fixed(stock_total=None), operator_id=None)
    plans.update(session, plan.id, fixed(stock_total=5), operator_id=None)
    assert session.get(TopupPlan, plan.id).stock_left == 3
    assert consistency.check(session).ok
