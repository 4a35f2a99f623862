"""The admin dashboard: figures per local day of a chosen period, drawn as SVG with the
numbers in tables, a fixed number of queries, and clerks kept to their shortcuts."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from portal import clock, reports
from portal.coupons import services as coupons
from portal.db import db
from portal.giftcards.models import GiftCard, GiftCardProduct
from portal.members.models import Member
from portal.wallet.models import PlanKind, Topup, TopupPlan, TopupStatus
from tests.factories import CouponTemplateFactory, MemberFactory
from tests.fixtures import count_queries, member_with_card, sign_in_as

# 10:00 in Shanghai on Friday 4 December 2026.
NOW = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _shanghai():
    clock.set_timezone("Asia/Shanghai")
    clock.freeze(NOW)


def _join(at: datetime, source: str | None = None, plan=None) -> Member:
    m = member_with_card(plan) if plan else MemberFactory()
    m = db.session.merge(m)
    m.became_member_at, m.enroll_source = at, source
    db.session.commit()
    return m


def _topup(card_member: Member, at: datetime, amount: int, status=TopupStatus.CREDITED):
    p = db.session.query(TopupPlan).first()
    if p is None:
        p = TopupPlan(kind=PlanKind.CUSTOM, name="Custom", currency="CNY")
        db.session.add(p)
        db.session.flush()
    db.session.add(Topup(plan_id=p.id, member_id=card_member.id,
                         card_id=card_member.cards[0].id, currency="CNY",
                         amount_minor=amount, status=status, credited_at=at))
    db.session.commit()


def _giftcard(at: datetime | None, price: int, status: str = "active", n: int = [0]):
    p = db.session.query(GiftCardProduct).first()
    if p is None:
        p = GiftCardProduct(kind="electronic", name="Gift", currency="CNY", status="active",
                            denominations=[10000], validity_days=365, channels=["ONLINE"])
        db.session.add(p)
        db.session.flush()
    n[0] += 1
    db.session.add(GiftCard(product_id=p.id, number=f"8{n[0]:015d}", currency="CNY",
                            face_minor=price, price_minor=price, status=status,
                            activated_at=at))
    db.session.commit()


def test_registrations_fall_on_the_merchants_local_day(app):
    # 16:30 UTC on 2 December is 00:30 on 3 December in Shanghai.
    _join(datetime(2026, 12, 2, 16, 30, tzinfo=UTC), "wechat")
    _join(datetime(2026, 12, 2, 15, 30, tzinfo=UTC), "wechat")   # 23:30 on the 2nd
    _join(datetime(2026, 12, 3, 1, 0, tzinfo=UTC), None)
    _join(datetime(2026, 11, 27, 15, 59, tzinfo=UTC), "wechat")  # 23:59 on 27 Nov: outside
    board = reports.dashboard(db.session, reports.last_days(7))
    assert board.days[0] == date(2026, 11, 28) and board.days[-1] == date(2026, 12, 4)
    assert board.registrations["wechat"] == [0, 0, 0, 0, 1, 1, 0]
    assert board.registrations[None] == [0, 0, 0, 0, 0, 1, 0]
    assert board.new_members == 3


def test_registrations_keep_the_busiest_sources_and_sum_the_rest(app):
    for i, source in enumerate(["a", "a", "b", "c", "d", "e", "f", "g"]):
        _join(NOW - timedelta(hours=i), source)
    board = reports.dashboard(db.session, reports.last_days(7))
    assert list(board.registrations)[0] == "a"
    assert len(board.registrations) == reports.TOP_SOURCES + 1
    assert sum(board.registrations[reports.OTHER_SOURCE]) == 2


def test_coupons_topups_and_giftcards_are_counted_per_day(app, plan):
    m = _join(NOW - timedelta(days=1), "shop", plan=plan)
    template = CouponTemplateFactory()
    issued = coupons.issue(db.session, member_id=m.id, source=coupons.Source("admin"),
                           key="k1", template_id=template.id, quantity=3)
    issued[0].used_at, issued[0].status = NOW, "used"
    db.session.commit()
    _topup(m, NOW - timedelta(days=2), 10_000)
    _topup(m, NOW - timedelta(days=2), 5_000, status=TopupStatus.REFUNDED)
    _topup(m, NOW, 7_000, status=TopupStatus.PENDING)                  # not paid: not a sale
    _giftcard(NOW, 18_000)
    _giftcard(None, 18_000, status="in_stock")                           # not sold
    board = reports.dashboard(db.session, reports.last_days(7))
    assert board.coupons_issued[-1] == 3 and board.coupons_used[-1] == 1
    [topups] = board.topups
    assert topups.currency == "CNY" and topups.amounts[-3] == 15_000 and topups.counts[-3] == 2
    assert sum(topups.counts) == 2
    [cards] = board.giftcards
    assert cards.counts[-1] == 1 and cards.amounts[-1] == 18_000
    assert board.packages == []


def test_members_by_tier_counts_active_cards(app, plan):
    member_with_card(plan), member_with_card(plan)
    [row] = reports.dashboard(db.session, reports.last_days(7)).tiers
    assert row.tier == "Classic" and row.members == 2


def test_period_reaches_across_a_daylight_saving_change(app):
    clock.set_timezone("Europe/London")
    # 29 March 2026: clocks go forward at 01:00 UTC; the day is 23 hours long.
    _join(datetime(2026, 3, 29, 22, 30, tzinfo=UTC))    # 23:30 BST on the 29th
    board = reports.dashboard(db.session, reports.Period(date(2026, 3, 28), date(2026, 3, 30),
                                                         None))
    assert board.registrations[None] == [0, 1, 0]


def test_dashboard_page_draws_charts_with_tables(owner_client, plan):
    m = _join(NOW - timedelta(days=1), "wechat", plan=plan)
    _topup(m, NOW, 12_300)
    body = owner_client.get("/admin/?days=7").get_data(as_text=True)
    assert body.count('<svg class="chart"') == 3   # registrations, tiers, top-ups
    assert "chart-bar--a" in body and "wechat" in body
    assert "¥123.00" in body
    assert "<table" in body and "style=" not in body.split('<svg class="chart"')[1][:3000]
    assert "<script" not in body.split("<main")[1]


def test_dashboard_page_takes_from_and_to_dates(owner_client):
    _join(datetime(2026, 11, 1, 4, 0, tzinfo=UTC), "wechat")
    body = owner_client.get("/admin/?from=2026-10-30&to=2026-11-02").get_data(as_text=True)
    assert "Oct 30, 2026" in body and "Nov 2, 2026" in body
    assert "<tr><th scope=\"row\">Nov 1, 2026</th><td class=\"tabular\">1</td>" in body


@pytest.mark.parametrize("query", ["from=soon&to=2026-11-02", "from=2026-11-05&to=2026-11-01",
                                   "from=2025-01-01&to=2026-11-01"])
def test_dashboard_refuses_bad_periods_next_to_the_field(owner_client, query):
    r = owner_client.get(f"/admin/?{query}")
    body = r.get_data(as_text=True)
    assert r.status_code == 422
    assert 'id="from-error"' in body or 'id="to-error"' in body
    assert "The last 30 days" in body


def test_dashboard_queries_do_not_grow_with_the_period_or_rows(owner_client, plan):
    short = count_queries(owner_client, "/admin/?days=7")
    for i in range(5):
        m = _join(NOW - timedelta(days=i * 10), f"s{i}", plan=plan)
        _topup(m, NOW - timedelta(days=i * 10), 1000)
        _giftcard(NOW - timedelta(days=i * 10), 100)
    assert count_queries(owner_client, "/admin/?days=90") == short
    assert count_queries(owner_client, "/admin/?from=2026-01-01&to=2026-12-04") == short


def test_clerks_see_the_shortcuts_not_the_figures(client, clerk):
    _join(NOW, "wechat")
    sign_in_as(client, clerk)
    body = client.get("/admin/?days=7").get_data(as_text=True)
    assert "Find a member" in body
    assert '<svg class="chart"' not in body and "wechat" not in body
