"""issue(): the one service every gift uses."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from portal import clock, jobs
from portal.coupons import services as coupons
from portal.coupons.errors import CouponError, CouponErrorCode
from portal.coupons.models import Coupon, CouponPackage, CouponStatus, PackageItem
from portal.coupons.services import Source
from portal.notifications.models import InboxMessage
from tests.factories import CouponTemplateFactory, MemberFactory

SOURCE = Source("admin", reason="test")


@pytest.fixture(autouse=True)
def _noon_in_shanghai():
    clock.set_timezone("Asia/Shanghai")
    clock.freeze(datetime(2026, 3, 10, 4, 0, tzinfo=UTC))  # 12:00 local


def _issue(session, member, key="k1", **kw):
    kw.setdefault("template_id", None)
    return coupons.issue(session, member_id=member.id, source=SOURCE, key=key, **kw)


def test_issue_gives_coupons_with_unguessable_codes_and_tells_the_member(session, member):
    t = CouponTemplateFactory()
    issued = _issue(session, member, template_id=t.id, quantity=3)
    assert len(issued) == 3 and len({c.code for c in issued}) == 3
    assert all(len(c.code) == 12 for c in issued)
    assert session.query(InboxMessage).filter_by(member_id=member.id).count() == 1


def test_same_key_issues_once(session, member):
    t = CouponTemplateFactory(inventory_total=10, inventory_left=10)
    first = _issue(session, member, template_id=t.id, quantity=2)
    again = _issue(session, member, template_id=t.id, quantity=2)
    assert [c.id for c in again] == [c.id for c in first]
    session.expire_all()
    assert session.get(type(t), t.id).inventory_left == 8


def test_inventory_runs_out_and_nothing_is_issued(session, member):
    t = CouponTemplateFactory(inventory_total=2, inventory_left=2)
    with pytest.raises(CouponError) as e:
        _issue(session, member, template_id=t.id, quantity=3)
    assert e.value.code == CouponErrorCode.OUT_OF_STOCK
    assert session.query(Coupon).count() == 0
    session.expire_all()
    assert session.get(type(t), t.id).inventory_left == 2


def test_per_member_limit_counts_every_coupon_ever_issued(session, member):
    t = CouponTemplateFactory(per_member_limit=2)
    _issue(session, member, "a", template_id=t.id)
    issued = _issue(session, member, "b", template_id=t.id)
    session.query(Coupon).filter_by(id=issued[0].id).update({"status": CouponStatus.USED})
    session.commit()
    with pytest.raises(CouponError) as e:
        _issue(session, member, "c", template_id=t.id)  # using one does not free a slot
    assert e.value.code == CouponErrorCode.LIMIT_REACHED


@pytest.mark.parametrize("status", ["draft", "inactive"])
def test_only_active_templates_issue(session, member, status):
    t = CouponTemplateFactory(status=status)
    with pytest.raises(CouponError) as e:
        _issue(session, member, template_id=t.id)
    assert e.value.code == CouponErrorCode.INACTIVE


@pytest.mark.parametrize("quantity", [0, -1, 101])
def test_bad_quantities_are_refused(session, member, quantity):
    t = CouponTemplateFactory()
    with pytest.raises(CouponError) as e:
        _issue(session, member, template_id=t.id, quantity=quantity)
    assert e.value.code == CouponErrorCode.BAD_QUANTITY


def test_customers_without_a_card_get_nothing(session):
    t = CouponTemplateFactory()
    with pytest.raises(CouponError) as e:
        _issue(session, MemberFactory(), template_id=t.id)
    assert e.value.code == CouponErrorCode.NOT_A_MEMBER


def test_package_is_all_or_nothing(session, member):
    a = CouponTemplateFactory()
    b = CouponTemplateFactory(inventory_total=5, inventory_left=5)
    c = CouponTemplateFactory(inventory_total=1, inventory_left=1)
    package = CouponPackage(name="Welcome", items=[
        PackageItem(template_id=a.id, quantity=2), PackageItem(template_id=b.id, quantity=1),
        PackageItem(template_id=c.id, quantity=1)])
    session.add(package)
    session.commit()
    with pytest.raises(CouponError) as e:
        _issue(session, member, package_id=package.id, quantity=2)  # c has only 1
    assert e.value.code == CouponErrorCode.OUT_OF_STOCK
    assert session.query(Coupon).count() == 0
    session.expire_all()
    assert session.get(type(b), b.id).inventory_left == 5
    issued = _issue(session, member, "k2", package_id=package.id)
    assert sorted(x.template_id for x in issued) == sorted([a.id, a.id, b.id, c.id])


def test_fixed_window_covers_both_local_days_whole(session, member):
    t = CouponTemplateFactory(validity_kind="fixed", valid_from_on=date(2026, 3, 1),
                              valid_until_on=date(2026, 3, 31), valid_days=None,
                              starts_after_days=None)
    (coupon,) = _issue(session, member, template_id=t.id)
    assert coupon.valid_from == datetime(2026, 2, 28, 16, 0, tzinfo=UTC)   # 1 Mar 00:00
    assert coupon.valid_until == datetime(2026, 3, 31, 16, 0, tzinfo=UTC)  # 1 Apr 00:00


def test_relative_validity_starts_the_next_local_day(session, member):
    t = CouponTemplateFactory(starts_after_days=1, valid_days=30)
    (coupon,) = _issue(session, member, template_id=t.id)
    assert coupon.valid_from == datetime(2026, 3, 10, 16, 0, tzinfo=UTC)   # 11 Mar 00:00
    assert coupon.valid_until == datetime(2026, 4, 9, 16, 0, tzinfo=UTC)   # 10 Apr 00:00
    assert coupon.state() == "not_yet_valid"


def test_relative_validity_with_no_delay_starts_at_once(session, member):
    t = CouponTemplateFactory(starts_after_days=0, valid_days=1)
    (coupon,) = _issue(session, member, template_id=t.id)
    assert coupon.state() == "available"
    assert coupon.valid_until == datetime(2026, 3, 10, 16, 0, tzinfo=UTC)  # end of today


def test_ended_fixed_window_issues_nothing(session, member):
    t = CouponTemplateFactory(validity_kind="fixed", valid_from_on=date(2026, 1, 1),
                              valid_until_on=date(2026, 3, 9))
    with pytest.raises(CouponError) as e:
        _issue(session, member, template_id=t.id)
    assert e.value.code == CouponErrorCode.INACTIVE


def test_wallet_never_shows_an_expired_coupon_as_available(session, member):
    t = CouponTemplateFactory(valid_days=2)
    _issue(session, member, template_id=t.id)
    items, counts = coupons.wallet(session, member.id, "available")
    assert counts == {"available": 1, "used": 0, "expired": 0} and len(items) == 1
    clock.advance(timedelta(days=3))
    items, counts = coupons.wallet(session, member.id, "available")  # no job has run
    assert items == [] and counts["expired"] == 1
    assert jobs.run_daily()["expire_coupons"] == 1
    assert session.query(Coupon).one().status == CouponStatus.EXPIRED


def test_wallet_lists_the_soonest_to_expire_first(session, member):
    late = CouponTemplateFactory(valid_days=30)
    soon = CouponTemplateFactory(valid_days=3)
    _issue(session, member, "a", template_id=late.id)
    _issue(session, member, "b", template_id=soon.id)
    items, _counts = coupons.wallet(session, member.id, "available")
    assert [c.template_id for c in items] == [soon.id, late.id]
    assert coupons.days_left(items[0]) == 2


def test_bulk_issue_gives_one_each_and_reruns_give_nothing_twice(session, plan):
    from tests.fixtures import member_with_card

    members = [member_with_card(plan) for _ in range(5)]
    customer = MemberFactory()  # no card: skipped
    t = CouponTemplateFactory(inventory_total=10, inventory_left=10, per_member_limit=1)
    ids = [m.id for m in members] + [customer.id]
    assert coupons.issue_bulk(session, template_id=t.id, member_ids=ids, source=SOURCE,
                              key="spring") == 5
    assert coupons.issue_bulk(session, template_id=t.id, member_ids=ids, source=SOURCE,
                              key="spring") == 0
    assert session.query(Coupon).count() == 5
    assert session.query(InboxMessage).count() == 5
    session.expire_all()
    assert session.get(type(t), t.id).inventory_left == 5
    # A second campaign: everyone is at the limit of 1.
    assert coupons.issue_bulk(session, template_id=t.id, member_ids=ids, source=SOURCE,
                              key="autumn") == 0


def test_bulk_issue_without_enough_stock_issues_nothing(session, plan):
    from tests.fixtures import member_with_card

    members = [member_with_card(plan) for _ in range(3)]
    t = CouponTemplateFactory(inventory_total=2, inventory_left=2)
    with pytest.raises(CouponError) as e:
        coupons.issue_bulk(session, template_id=t.id, member_ids=[m.id for m in members],
                           source=SOURCE, key="x")
    assert e.value.code == CouponErrorCode.OUT_OF_STOCK
    assert session.query(Coupon).count() == 0


def test_a_package_call_cannot_give_more_than_500_coupons(session, member):
    t = CouponTemplateFactory()
    package = CouponPackage(name="Huge", items=[PackageItem(template_id=t.id, quantity=100)])
    session.add(package)
    session.commit()
    with pytest.raises(CouponError) as e:
        _issue(session, member, package_id=package.id, quantity=6)
    assert e.value.code == CouponErrorCode.BAD_QUANTITY


def test_over_long_texts_are_refused_by_the_service(session, owner):
    with pytest.raises(CouponError) as e:
        coupons.create_template(session, {"kind": "cash", "internal_name": "x",
                                          "title": "t" * 121, "amount_minor": 100,
                                          "validity_kind": "relative", "starts_after_days": 0,
                                          "valid_days": 1, "theme": "teal",
                                          "channels": ["POS"], "external_id": "e" * 65,
                                          "currency": "CNY"}, operator_id=owner.id)
    assert {"title", "external_id"} <= set(e.value.details["errors"])
