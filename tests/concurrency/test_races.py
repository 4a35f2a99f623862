"""Races, with real threads started together, on PostgreSQL (SQLite serialises writers,
so a race that passes there proves little)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from portal import ledger
from portal.db import db, transaction
from portal.ledger import AccountKind, InsufficientBalance
from portal.members import services
from portal.members.errors import MemberError
from portal.members.models import Member, RegistrationPage
from tests.conftest import is_postgres
from tests.fixtures import last_code

pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(not is_postgres(), reason="race tests need PostgreSQL")]


def run_concurrently(app, fn, args_list):
    """Run fn(session, arg) in one thread per arg, all released at once; results in order."""
    barrier = threading.Barrier(len(args_list))

    def worker(arg):
        with app.app_context():
            barrier.wait()
            try:
                return fn(db.session, arg)
            except Exception as e:  # noqa: BLE001 - the outcome is the result
                return e
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=len(args_list)) as pool:
        return list(pool.map(worker, args_list))


def test_parallel_spends_never_take_the_balance_below_zero(app, session):
    with transaction(session):
        acc = ledger.account(session, AccountKind.POINTS, "member", 7)
        ledger.post(session, acc, 100, reason="grant", key="g")
    account_id = acc.id

    def spend(s, i):
        with transaction(s):
            a = s.get(ledger.Account, account_id)
            return ledger.post(s, a, -10, reason="spend", key=f"spend:{i}")

    results = run_concurrently(app, spend, list(range(15)))
    assert sum(isinstance(r, ledger.Entry) for r in results) == 10
    assert all(isinstance(r, ledger.Entry | InsufficientBalance) for r in results)
    session.expire_all()
    assert session.get(ledger.Account, account_id).balance == 0


def test_the_same_spend_retried_in_parallel_counts_once(app, session):
    with transaction(session):
        acc = ledger.account(session, AccountKind.POINTS, "member", 8)
        ledger.post(session, acc, 100, reason="grant", key="g")
    account_id = acc.id

    def spend(s, _i):
        with transaction(s):
            return ledger.post(s, s.get(ledger.Account, account_id), -30, reason="spend",
                               key="order:42")

    run_concurrently(app, spend, list(range(8)))
    session.expire_all()
    assert session.get(ledger.Account, account_id).balance == 70


def test_one_code_verified_in_parallel_creates_one_member(app, session, page):
    mobile = "+8613912347777"
    otp = services.start_registration(session, page.id, mobile, {"full_name": "Racer"}, None)
    code = last_code(mobile)

    results = run_concurrently(
        app, lambda s, _i: services.complete_registration(s, otp.id, code), list(range(6)))
    assert sum(isinstance(r, Member) for r in results) == 1
    assert all(isinstance(r, Member | MemberError) for r in results)
    assert session.query(Member).filter_by(mobile=mobile).count() == 1


def test_parallel_visits_are_all_counted(app, session, link):
    run_concurrently(app, lambda s, _i: services.record_visit(s, link.page_id, link.id),
                     list(range(20)))
    session.expire_all()
    assert session.get(RegistrationPage, link.page_id).visit_count == 20


def test_parallel_account_creation_makes_one_account(app, session):
    def open_account(s, _i):
        with transaction(s):
            return ledger.account(s, AccountKind.EXPERIENCE, "member", 99).id

    ids = run_concurrently(app, open_account, list(range(8)))
    assert len(set(ids)) == 1


def _member_ids(plan, n):
    from tests.fixtures import member_with_card

    return [member_with_card(plan).id for _ in range(n)]


def test_200_parallel_claims_on_100_coupons_issue_exactly_100(app, session, plan):
    from portal.coupons import services as coupons
    from portal.coupons.errors import CouponError, CouponErrorCode
    from portal.coupons.models import Coupon, CouponTemplate
    from tests.factories import CouponTemplateFactory

    template = CouponTemplateFactory(inventory_total=100, inventory_left=100)
    members = _member_ids(plan, 200)

    def claim(s, member_id):
        return coupons.issue(s, member_id=member_id, template_id=template.id,
                             source=coupons.Source("test"), key=f"race:{member_id}")

    results = run_concurrently(app, claim, members)
    won = [r for r in results if isinstance(r, list)]
    lost = [r for r in results if isinstance(r, CouponError)]
    assert len(won) == 100 and len(lost) == 100
    assert {e.code for e in lost} == {CouponErrorCode.OUT_OF_STOCK}
    session.expire_all()
    assert session.query(Coupon).count() == 100
    assert session.get(CouponTemplate, template.id).inventory_left == 0


def test_20_parallel_claims_by_one_member_with_limit_2_issue_2(app, session, member):
    from portal.coupons import services as coupons
    from portal.coupons.errors import CouponError
    from portal.coupons.models import Coupon
    from tests.factories import CouponTemplateFactory

    template = CouponTemplateFactory(per_member_limit=2)

    def claim(s, i):
        return coupons.issue(s, member_id=member.id, template_id=template.id,
                             source=coupons.Source("test"), key=f"one-member:{i}")

    results = run_concurrently(app, claim, list(range(20)))
    assert sum(isinstance(r, list) for r in results) == 2
    assert all(isinstance(r, list | CouponError) for r in results)
    assert session.query(Coupon).count() == 2


def test_the_same_key_in_parallel_issues_once(app, session, member):
    from portal.coupons import services as coupons
    from portal.coupons.models import Coupon
    from tests.factories import CouponTemplateFactory

    template = CouponTemplateFactory()
    results = run_concurrently(
        app, lambda s, _i: coupons.issue(s, member_id=member.id, template_id=template.id,
                                         source=coupons.Source("test"), key="same"),
        list(range(8)))
    assert all(isinstance(r, list) for r in results), results
    assert session.query(Coupon).count() == 1


def test_two_tills_redeeming_one_code_at_once_one_wins(app, session, member, store):
    from portal.api import services as api_clients
    from portal.coupons import services as coupons
    from portal.coupons.models import Redemption
    from tests.factories import CouponTemplateFactory

    client, _key = api_clients.create_client(session, name="Till", store_code=store.code,
                                             channel="POS")
    template = CouponTemplateFactory()
    (coupon,) = coupons.issue(session, member_id=member.id, template_id=template.id,
                              source=coupons.Source("test"), key="k")

    def redeem(s, i):
        redemption, result = coupons.redeem(
            s, code=coupon.code, member_id=None, channel="POS",
            lines=[coupons.Line(amount=5000)], order_external_id=f"order-{i}",
            client_id=client.id, store_id=store.id)
        return redemption

    results = run_concurrently(app, redeem, list(range(10)))
    assert sum(r is not None and not isinstance(r, Exception) for r in results) == 1
    assert session.query(Redemption).count() == 1


def test_a_till_retrying_the_same_order_in_parallel_gets_one_redemption(app, session, member,
                                                                          store):
    from portal.api import services as api_clients
    from portal.coupons import services as coupons
    from portal.coupons.models import Redemption
    from tests.factories import CouponTemplateFactory

    client, _key = api_clients.create_client(session, name="Till", store_code=store.code,
                                             channel="POS")
    template = CouponTemplateFactory()
    (coupon,) = coupons.issue(session, member_id=member.id, template_id=template.id,
                              source=coupons.Source("test"), key="k")
    results = run_concurrently(app, lambda s, _i: coupons.redeem(
        s, code=coupon.code, member_id=None, channel="POS", lines=[coupons.Line(amount=100)],
        order_external_id="same-order", client_id=client.id, store_id=store.id)[0],
        list(range(6)))
    assert len({r.id for r in results}) == 1
    assert session.query(Redemption).count() == 1


def test_parallel_orders_and_refunds_keep_balances_equal_to_their_entries(app, session,
                                                                          member, store, plan):
    from sqlalchemy import func

    from portal import ledger
    from portal.loyalty import services as loyalty
    from portal.loyalty.models import EarningRule

    session.add(EarningRule(plan_id=plan.id, points_amount=1, points_per_minor=100,
                            experience_amount=1, experience_per_minor=100))
    session.commit()
    card_no = session.merge(member).cards[0].number
    for i in range(5):
        loyalty.record_order(session, store_id=store.id, client_id=None, channel="POS",
                             external_id=f"pre-{i}", card_no=card_no, occurred_at=clock_now(),
                             currency="CNY", lines=[loyalty.OrderLine("1", 1000)], payments=[])

    def work(s, i):
        if i % 2:
            return loyalty.record_order(
                s, store_id=store.id, client_id=None, channel="POS", external_id=f"o-{i}",
                card_no=card_no, occurred_at=clock_now(), currency="CNY",
                lines=[loyalty.OrderLine("1", 500)], payments=[])
        # the same refund twice: reverses once
        return loyalty.refund_order(s, store_id=store.id, external_id=f"pre-{i // 4}",
                                    refund_id="r", lines=None)

    run_concurrently(app, work, list(range(16)))
    session.expire_all()
    for account in session.query(ledger.Account).all():
        total = session.query(func.sum(ledger.Entry.delta)).filter_by(
            account_id=account.id).scalar() or 0
        assert account.balance == total >= 0
    points = ledger.balance(session, ledger.AccountKind.POINTS, "member", member.id)
    assert points == 5 * 10 - 4 * 10 + 8 * 5   # 4 distinct orders refunded, 8 new orders


def clock_now():
    from portal import clock

    return clock.now()


def test_a_double_claim_of_a_profile_gift_gives_once(app, session, member, plan):
    from datetime import date, timedelta

    from portal import clock, ledger
    from portal.campaigns import services as campaigns
    from portal.campaigns.errors import CampaignError
    from portal.campaigns.models import Activity, Participation

    m = session.merge(member)
    m.full_name, m.born_on = "Ada", date(1990, 1, 1)
    activity = Activity(kind="profile_completion", name="Profile", code="P",
                        starts_at=clock.now() - timedelta(days=1),
                        ends_at=clock.now() + timedelta(days=1), status="active",
                        required_fields=["full_name", "born_on"], points=50)
    session.add(activity)
    session.commit()
    results = run_concurrently(app, lambda s, _i: campaigns.claim(s, activity.id, member.id),
                               list(range(8)))
    assert sum(isinstance(r, Participation) for r in results) == 1
    assert all(isinstance(r, Participation | CampaignError) for r in results)
    assert ledger.balance(session, ledger.AccountKind.POINTS, "member", member.id) == 50


# --- prepaid balance ---------------------------------------------------------------------

def _funded_card(session, member, principal, bonus):
    from portal.wallet import balance as wallet

    card = session.merge(member).cards[0]
    with transaction(session):
        wallet.credit(session, card, principal=principal, bonus=bonus, key="fund",
                      reason="topup", source=("test", 1))
    return card.id


def _ledger_sums_to_balances(session):
    from sqlalchemy import func

    session.expire_all()
    for account in session.query(ledger.Account).all():
        total = session.query(func.coalesce(func.sum(ledger.Entry.delta), 0)).filter_by(
            account_id=account.id).scalar()
        assert account.balance == total >= 0


def test_50_parallel_charges_never_take_the_balance_below_zero(app, session, member):
    from portal.wallet import balance as wallet
    from portal.wallet.errors import WalletError, WalletErrorCode
    from portal.wallet.models import Charge

    card_id = _funded_card(session, member, 1000, 300)   # room for 13 charges of 100

    def pay(s, i):
        return wallet.charge(s, card_id=card_id, amount_minor=100, currency="CNY",
                             idempotency_key=f"bill:{i}", channel="POS")

    results = run_concurrently(app, pay, list(range(50)))
    paid = [r for r in results if isinstance(r, Charge)]
    refused = [r for r in results if isinstance(r, WalletError)]
    assert len(paid) == 13 and len(refused) == 37, results
    assert {e.code for e in refused} == {WalletErrorCode.INSUFFICIENT_BALANCE}
    assert sum(c.principal_minor for c in paid) == 1000
    assert sum(c.bonus_minor for c in paid) == 300
    session.expire_all()
    assert wallet.balance(session, card_id).total == 0
    _ledger_sums_to_balances(session)


def test_the_same_charge_key_in_parallel_charges_once(app, session, member):
    from portal.wallet import balance as wallet
    from portal.wallet.models import Charge

    card_id = _funded_card(session, member, 1000, 0)
    results = run_concurrently(app, lambda s, _i: wallet.charge(
        s, card_id=card_id, amount_minor=300, currency="CNY", idempotency_key="same",
        channel="POS"), list(range(10)))
    assert all(isinstance(r, Charge) for r in results), results
    assert len({r.id for r in results}) == 1
    assert session.query(Charge).count() == 1
    session.expire_all()
    assert wallet.balance(session, card_id).total == 700
    _ledger_sums_to_balances(session)


def test_parallel_refunds_of_one_charge_never_exceed_it(app, session, member):
    from portal.wallet import balance as wallet
    from portal.wallet.errors import WalletError
    from portal.wallet.models import Charge, ChargeRefund

    card_id = _funded_card(session, member, 1000, 500)
    paid = wallet.charge(session, card_id=card_id, amount_minor=1200, currency="CNY",
                         idempotency_key="bill", channel="POS")   # 1000 + 200 bonus

    def refund(s, i):
        # 20 refunds of 100 under 10 keys, each key twice: ten refunds, each once.
        return wallet.refund_charge(s, paid.id, amount_minor=100, refund_key=f"r{i % 10}")

    results = run_concurrently(app, refund, list(range(20)))
    assert all(isinstance(r, ChargeRefund | WalletError) for r in results), results
    session.expire_all()
    refunds = session.query(ChargeRefund).all()
    assert len(refunds) == 10 and sum(r.amount_minor for r in refunds) == 1000
    charge = session.get(Charge, paid.id)
    assert charge.refunded_minor == 1000 and charge.refunded_bonus_minor == 200
    b = wallet.balance(session, card_id)
    assert (b.principal, b.bonus) == (800, 500)
    _ledger_sums_to_balances(session)

    more = run_concurrently(app, lambda s, i: wallet.refund_charge(
        s, paid.id, amount_minor=150, refund_key=f"more{i}"), list(range(6)))
    assert sum(isinstance(r, ChargeRefund) for r in more) == 1   # only 200 was left
    session.expire_all()
    assert session.get(Charge, paid.id).refunded_minor == 1150
    _ledger_sums_to_balances(session)


def _fixed_plan(session, stock=None):
    from portal.wallet.models import TopupPlan

    plan = TopupPlan(kind="fixed", name="Top up 100", currency="CNY", status="active",
                     amount_minor=10000, bonus_minor=1000, bonus_points=0,
                     stock_total=stock, stock_left=stock)
    session.add(plan)
    session.commit()
    return plan


def test_a_webhook_delivered_5_times_at_once_and_out_of_order_credits_once(app, session,
                                                                          member):
    import random

    from portal.payments import services as payments
    from portal.payments.models import Payment
    from portal.payments.providers import DemoProvider
    from portal.wallet import balance as wallet
    from portal.wallet import topups

    card = session.merge(member).cards[0]
    plan = _fixed_plan(session)
    topup = topups.start(session, member_id=member.id, card_id=card.id, plan_id=plan.id)
    payment = session.get(Payment, topup.payment_id)
    payment.provider_session_id = f"demo_cs_{payment.token}"
    session.commit()
    demo = DemoProvider(app.config["SECRET_KEY"])
    deliveries = [demo.event(payment, "paid")] * 5 + [demo.event(payment, "expired")] * 2
    random.shuffle(deliveries)
    outcomes = run_concurrently(app, lambda s, d: payments.receive(s, *d), deliveries)
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    session.expire_all()
    assert outcomes.count("fulfilled") + outcomes.count("fulfilled_late") == 1
    assert wallet.balance(session, card.id).total == 11000


def test_the_last_unit_of_a_plans_stock_goes_to_exactly_one_buyer(app, session, plan):
    from portal.wallet import topups
    from portal.wallet.errors import WalletError
    from tests.fixtures import member_with_card

    topup_plan = _fixed_plan(session, stock=1)
    buyers = [member_with_card(plan) for _ in range(8)]
    cards = {m.id: session.merge(m).cards[0].id for m in buyers}
    outcomes = run_concurrently(app, lambda s, m: topups.start(
        s, member_id=m.id, card_id=cards[m.id], plan_id=topup_plan.id), buyers)
    assert sum(not isinstance(o, Exception) for o in outcomes) == 1
    assert all(isinstance(o, WalletError) for o in outcomes if isinstance(o, Exception))


# --- gift cards ----------------------------------------------------------------------------

def _giftcard_ledger_matches(session, card):
    from sqlalchemy import func, select

    from portal.giftcards import cards
    from portal.giftcards.models import GiftCardTransaction

    session.expire_all()
    acc = cards.account(session, card)
    entries = session.scalar(select(func.coalesce(func.sum(ledger.Entry.delta), 0))
                             .where(ledger.Entry.account_id == acc.id))
    lines = session.scalar(select(func.coalesce(func.sum(GiftCardTransaction.amount_minor), 0))
                           .where(GiftCardTransaction.card_id == card.id))
    assert acc.balance == entries == lines >= 0
    return acc.balance


def test_50_parallel_gift_card_charges_never_take_it_below_zero(app, session):
    from portal.giftcards import spending
    from portal.giftcards.errors import GiftCardError, GiftCardErrorCode
    from portal.giftcards.models import GiftCardCharge
    from tests.unit.test_giftcard_spending import make_card

    card = make_card(session, face=1300)     # room for 13 charges of 100
    number = card.number

    def pay(s, i):
        return spending.charge(s, number=number, amount_minor=100, currency="CNY",
                               idempotency_key=f"bill:{i}", store_id=None)

    results = run_concurrently(app, pay, list(range(50)))
    paid = [r for r in results if isinstance(r, GiftCardCharge)]
    refused = [r for r in results if isinstance(r, GiftCardError)]
    assert len(paid) == 13 and len(refused) == 37, results
    assert {e.code for e in refused} == {GiftCardErrorCode.INSUFFICIENT}
    assert _giftcard_ledger_matches(session, card) == 0
    assert session.query(GiftCardCharge).count() == 13


def test_a_gift_card_charge_retried_8_times_in_parallel_charges_once(app, session):
    from portal.giftcards import spending
    from portal.giftcards.models import GiftCardCharge
    from tests.unit.test_giftcard_spending import make_card

    card = make_card(session, face=1000)
    number = card.number
    results = run_concurrently(app, lambda s, _i: spending.charge(
        s, number=number, amount_minor=300, currency="CNY", idempotency_key="same",
        store_id=None), list(range(8)))
    assert all(isinstance(r, GiftCardCharge) for r in results), results
    assert len({r.id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert session.query(GiftCardCharge).count() == 1
    assert _giftcard_ledger_matches(session, card) == 700


def test_parallel_refunds_of_a_gift_card_charge_never_exceed_it(app, session):
    from portal.giftcards import spending
    from portal.giftcards.errors import GiftCardError
    from portal.giftcards.models import GiftCardCharge, GiftCardTransaction
    from tests.unit.test_giftcard_spending import make_card

    card = make_card(session, face=2000)
    paid = spending.charge(session, number=card.number, amount_minor=1000, currency="CNY",
                           idempotency_key="bill", store_id=None)

    def refund(s, i):
        # 20 refunds of 150 under 10 keys, each key twice: 6 fit in the 1000 (900).
        return spending.refund_charge(s, paid.id, amount_minor=150, refund_key=f"r{i % 10}",
                                      store_id=None)

    results = run_concurrently(app, refund, list(range(20)))
    assert all(isinstance(r, GiftCardTransaction | GiftCardError) for r in results), results
    session.expire_all()
    assert session.get(GiftCardCharge, paid.id).refunded_minor == 900
    assert _giftcard_ledger_matches(session, card) == 1900


def test_one_physical_card_sold_by_6_tills_at_once_is_sold_once(app, session):
    from portal.giftcards import tills
    from portal.giftcards.errors import GiftCardError
    from tests.web.test_api_giftcard_sales import in_stock

    card = in_stock(session)
    number = card.number
    results = run_concurrently(app, lambda s, i: tills.sell(
        s, number=number, amount_minor=10000, currency="CNY", idempotency_key=f"till-{i}",
        store_id=None, buyer=tills.Buyer()), list(range(6)))
    assert sum(isinstance(r, tills.Sale) for r in results) == 1, results
    assert all(isinstance(r, tills.Sale | GiftCardError) for r in results), results
    assert _giftcard_ledger_matches(session, card) == 10000


def test_a_gift_card_refunded_twice_at_once_is_refunded_once(app, session, owner):
    from portal.giftcards import refunds
    from portal.giftcards.errors import GiftCardError
    from tests.unit.test_giftcard_spending import make_card

    card = make_card(session, face=5000)
    results = run_concurrently(app, lambda s, _i: refunds.refund_card(
        s, card.id, operator_id=owner.id, reason="twice"), list(range(4)))
    assert sum(isinstance(r, refunds.Quote) for r in results) == 1, results
    assert all(isinstance(r, refunds.Quote | GiftCardError) for r in results), results
    assert _giftcard_ledger_matches(session, card) == 0


def test_two_checkouts_of_a_package_at_once_get_one_first_purchase_price(app, session,
                                                                          member, owner):
    from portal.benefits import packages, purchases

    package = packages.create(session, {
        "name": "Premium", "currency": "CNY", "channels": ["ONLINE"],
        "rules": [{"duration_days": 30, "original_minor": 19900, "first_minor": 9900,
                   "repeat_minor": 17900}]}, operator_id=owner.id, activate=True)
    ids = (member.id, package.id, package.rules[0].id)

    def checkout(s, _i):
        return purchases.start(s, member_id=ids[0], package_id=ids[1], rule_id=ids[2],
                               agreed=True).price_kind

    results = run_concurrently(app, checkout, list(range(6)))
    assert sorted(results) == ["first"] + ["repeat"] * 5


def test_two_approvals_of_one_student_request_at_once_give_one_gift(app, session, member,
                                                                      owner, tmp_path,
                                                                      monkeypatch):
    import io
    from datetime import timedelta

    from PIL import Image
    from sqlalchemy import func, select

    from portal import clock
    from portal.coupons.models import Coupon
    from portal.students import services as students
    from portal.students.errors import StudentError
    from tests.factories import CouponTemplateFactory

    monkeypatch.setitem(app.config, "UPLOAD_DIR", str(tmp_path))
    coupon = CouponTemplateFactory()
    students.save_settings(session, {
        "validity_months": 12, "tag_name": "Student", "gift_kind": "coupon",
        "gift_template_id": coupon.id, "gift_rule": "each", "reminder_days": 14,
        "photo_retention_days": 30}, operator_id=owner.id)
    photo = io.BytesIO()
    Image.new("RGB", (40, 30)).save(photo, "JPEG")
    photo.seek(0)
    photo.filename = "card.jpg"
    v = students.submit(session, member.id, school="A", student_number="1",
                        graduation_on=clock.today() + timedelta(days=400), consent=True,
                        photo=photo)
    verification_id = v.id
    session.commit()

    results = run_concurrently(app, lambda s, _i: students.approve(
        s, verification_id, operator_id=owner.id), list(range(4)))
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, StudentError) for r in results if isinstance(r, Exception))
    session.expire_all()
    assert session.scalar(select(func.count(Coupon.id)).where(
        Coupon.member_id == member.id)) == 1


def test_the_consistency_check_sees_no_mismatch_while_coupons_and_points_move(app, session,
                                                                             plan):
    """Each invariant is one statement, one snapshot: a claim or a spend committing during
    the check is counted on both sides or on neither."""
    from portal.consistency import services as consistency
    from portal.coupons import services as coupons
    from tests.factories import CouponTemplateFactory

    template = CouponTemplateFactory(inventory_total=1000, inventory_left=1000)
    members = _member_ids(plan, 24)
    with transaction(session):
        for m in members:
            acc = ledger.account(session, AccountKind.POINTS, "member", m)
            ledger.post(session, acc, 100, reason="grant", key="g")

    def work(s, i):
        if i % 3 == 0:
            return [consistency.check(s) for _ in range(3)]
        m = members[i % len(members)]
        for n in range(5):
            coupons.issue(s, member_id=m, template_id=template.id, notify=False,
                          source=coupons.Source("test"), key=f"race:{i}:{n}")
            with transaction(s):
                acc = ledger.account(s, AccountKind.POINTS, "member", m)
                ledger.post(s, acc, -3, reason="spend", key=f"spend:{i}:{n}")
        return None

    results = run_concurrently(app, work, list(range(36)))
    assert not [r for r in results if isinstance(r, Exception)], results
    checks = [c for r in results if isinstance(r, list) for c in r]
    assert len(checks) == 36
    assert all(r.ok for r in checks), [r.mismatches for r in checks if not r.ok]
    assert consistency.check(session).ok


def test_a_closure_asked_twice_at_once_is_one_request(app, session, member):
    from portal.rights import services as rights
    from portal.rights.errors import RightsError
    from portal.rights.models import DataRequest

    digits = member.mobile[-4:]
    results = run_concurrently(app, lambda s, _i: rights.request_closure(
        s, member.id, confirmation=digits), list(range(6)))

    assert sum(isinstance(r, DataRequest) for r in results) == 1
    assert all(isinstance(r, DataRequest | RightsError) for r in results)


def test_two_staff_closing_at_once_forfeit_points_once(app, session, member, owner):
    from portal.loyalty import services as loyalty
    from portal.rights import services as rights
    from portal.rights.errors import RightsError
    from portal.rights.models import DataRequest

    loyalty.adjust(session, member_id=member.id, kind=AccountKind.POINTS, delta=90,
                   reason="welcome", key="race", operator_id=owner.id)
    req = rights.request_closure(session, member.id, confirmation=member.mobile[-4:])
    request_id = req.id

    results = run_concurrently(app, lambda s, _i: rights.close_account(
        s, request_id, operator_id=owner.id), list(range(4)))

    assert sum(isinstance(r, DataRequest) for r in results) == 1
    assert all(isinstance(r, DataRequest | RightsError) for r in results)
    session.expire_all()
    forfeits = session.scalars(select(ledger.Entry.delta).where(
        ledger.Entry.reason == rights.CLOSED_REASON)).all()
    assert forfeits == [-90]


def test_a_refund_and_a_closure_at_once_never_both_go_through(app, session, member, owner):
    from portal.rights import services as rights
    from portal.rights.errors import RightsError, RightsErrorCode
    from portal.rights.models import DataRequest
    from portal.wallet import balance as wallet
    from portal.wallet.errors import WalletError, WalletErrorCode
    from portal.wallet.models import ChargeRefund

    card_id = _funded_card(session, member, 1000, 500)
    paid = wallet.charge(session, card_id=card_id, amount_minor=1500, currency="CNY",
                         idempotency_key="bill", channel="POS")   # the card is empty now
    charge_id = paid.id
    request_id = rights.request_closure(session, member.id,
                                        confirmation=member.mobile[-4:]).id

    def act(s, i):
        if i == 0:
            return rights.close_account(s, request_id, operator_id=owner.id)
        return wallet.refund_charge(s, charge_id, amount_minor=None, refund_key="r")

    closed, refunded = run_concurrently(app, act, [0, 1])

    session.expire_all()
    balance = wallet.balance(session, card_id)
    if isinstance(closed, DataRequest):
        assert isinstance(refunded, WalletError), refunded
        assert refunded.code == WalletErrorCode.MEMBER_CLOSED
        assert balance.total == 0
    else:
        assert isinstance(closed, RightsError), closed
        assert closed.code == RightsErrorCode.BALANCE_LEFT
        assert isinstance(refunded, ChargeRefund), refunded
        assert (balance.principal, balance.bonus) == (1000, 500)
    _ledger_sums_to_balances(session)
