"""Member data rights: the export's content and cost, closure requests and closing."""
from __future__ import annotations

import json
import tracemalloc

import pytest
from sqlalchemy import event, func, select

from portal import ledger
from portal.consistency import services as consistency
from portal.coupons import services as coupons
from portal.coupons.models import Coupon, CouponStatus
from portal.db import db, transaction
from portal.ledger import AccountKind
from portal.loyalty import services as loyalty
from portal.members import services as members
from portal.members.models import CardStatus, Member, MemberCard, Tag, member_tags
from portal.notifications.models import InboxMessage
from portal.rights import services as rights
from portal.rights.errors import RightsError, RightsErrorCode
from portal.rights.export import SECTIONS
from portal.rights.models import DataRequest, RequestKind, RequestStatus
from portal.staff.models import AuditEntry
from portal.wallet import balance as wallet
from tests.factories import CouponTemplateFactory


def _export(member_id: int) -> dict:
    return json.loads("".join(rights.export(db.session, member_id)))


def _give_points(member, owner, n: int, key: str = "p") -> None:
    loyalty.adjust(db.session, member_id=member.id, kind=AccountKind.POINTS, delta=n,
                   reason="welcome", key=key, operator_id=owner.id)


def _prepaid(member, *, principal: int, bonus: int, key: str = "top") -> MemberCard:
    card = db.session.scalars(select(MemberCard).where(MemberCard.member_id == member.id)).one()
    with transaction(db.session):
        wallet.credit(db.session, card, principal=principal, bonus=bonus, key=key,
                      reason="topup", source=("test", 1))
    return card


def _coupon(member) -> Coupon:
    template = CouponTemplateFactory()
    [coupon] = coupons.issue(db.session, member_id=member.id, template_id=template.id,
                             key=f"c:{member.id}", source=coupons.Source("admin"))
    return coupon


def _ask(member) -> DataRequest:
    return rights.request_closure(db.session, member.id,
                                  confirmation=member.mobile[-4:], note="moving away")


def _queries(fn) -> int:
    count = 0

    def on_execute(*_args):
        nonlocal count
        count += 1

    event.listen(db.engine, "before_cursor_execute", on_execute)
    try:
        fn()
    finally:
        event.remove(db.engine, "before_cursor_execute", on_execute)
    return count


# --- export -------------------------------------------------------------------------------

def test_export_holds_every_section_with_the_members_rows(member, owner):
    with transaction(db.session):
        db.session.get(Member, member.id).custom = {"shoe_size": "42"}
    _give_points(member, owner, 120)
    _coupon(member)

    data = _export(member.id)

    assert list(data["sections"]) == list(SECTIONS)
    [profile] = data["sections"]["profile"]
    assert profile["mobile"] == member.mobile and profile["custom"] == {"shoe_size": "42"}
    assert "session_version" not in profile
    assert [e["delta"] for e in data["sections"]["ledger_entries"]] == [120]
    assert len(data["sections"]["coupons"]) == 1
    assert data["sections"]["cards"][0]["plan_name"]


def test_export_leaves_out_other_members_rows(member, other_member, owner):
    _give_points(other_member, owner, 50, key="other")
    _coupon(other_member)

    data = _export(member.id)

    assert data["sections"]["ledger_entries"] == []
    assert data["sections"]["coupons"] == []
    assert [p["id"] for p in data["sections"]["profile"]] == [member.id]


def test_export_is_recorded_as_a_done_request_and_audited(member):
    _export(member.id)

    req = db.session.scalars(select(DataRequest)).one()
    assert (req.kind, req.status, req.member_id) == (RequestKind.EXPORT, RequestStatus.DONE,
                                                     member.id)
    entry = db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == "data_request.export")).one()
    assert entry.object_id == str(req.id) and entry.staff_id is None


def test_export_runs_the_same_number_of_queries_for_one_row_or_many(member, owner):
    _give_points(member, owner, 1, key="first")
    one = _queries(lambda: _export(member.id))
    for n in range(30):
        _give_points(member, owner, 1, key=f"more{n}")
    _coupon(member)

    many = _queries(lambda: _export(member.id))

    assert many == one


def test_export_memory_stays_flat_with_a_long_ledger(member):
    acc_id = _many_entries(member, 20_000)
    tracemalloc.start()
    try:
        size = 0
        for piece in rights.export(db.session, member.id):
            size += len(piece)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert acc_id and size > 2_000_000
    # The document is over 2 MB; what is held at once is a few batches of rows.
    assert peak < size / 2


def _many_entries(member, n: int) -> int:
    with transaction(db.session):
        acc = ledger.account(db.session, AccountKind.POINTS, "member", member.id)
        db.session.execute(ledger.Entry.__table__.insert(), [
            {"account_id": acc.id, "delta": 1, "balance_after": i + 1, "reason": "test",
             "idempotency_key": f"k{i}", "open_amount": 1,
             "created_at": member.created_at} for i in range(n)])
        acc.balance = n
        return acc.id


def test_export_of_a_closed_account_is_refused(member, owner):
    rights.close_account(db.session, _ask(member).id, operator_id=owner.id)

    with pytest.raises(RightsError) as e:
        rights.export(db.session, member.id)
    assert e.value.code == RightsErrorCode.CLOSED


# --- asking to close ----------------------------------------------------------------------

def test_closure_needs_the_last_four_digits_of_the_mobile(member):
    with pytest.raises(RightsError) as e:
        rights.request_closure(db.session, member.id, confirmation="9999")
    assert "confirmation" in e.value.details["errors"]
    assert db.session.scalar(select(func.count()).select_from(DataRequest)) == 0


def test_closure_request_waits_and_a_second_one_is_refused(member):
    req = _ask(member)

    with pytest.raises(RightsError) as e:
        _ask(member)

    assert e.value.code == RightsErrorCode.ALREADY_REQUESTED
    assert (req.status, req.open_member_id) == (RequestStatus.REQUESTED, member.id)


def test_withdrawn_closure_lets_the_member_ask_again(member):
    first = _ask(member)
    rights.withdraw_closure(db.session, member.id)

    second = _ask(member)

    assert db.session.get(DataRequest, first.id).status == RequestStatus.REFUSED
    assert second.status == RequestStatus.REQUESTED


# --- closing -------------------------------------------------------------------------------

def test_closing_erases_personal_fields_and_ends_sessions(member, owner):
    with transaction(db.session):
        m = db.session.get(Member, member.id)
        m.email, m.address, m.id_number, m.custom = "a@example.com", "1 Road", "X1", {"k": "v"}
        tag = Tag(name="VIP")
        db.session.add(tag)
        m.tags.append(tag)
        version = m.session_version
    req = _ask(member)

    rights.close_account(db.session, req.id, operator_id=owner.id)

    m = db.session.get(Member, member.id)
    assert (m.full_name, m.mobile, m.email, m.address, m.id_number, m.custom) == \
        ("", None, None, None, None, {})
    assert m.closed_at is not None
    assert members.load_for_session(db.session, m.id, version) is None
    assert members.load_for_session(db.session, m.id, m.session_version) is None
    assert db.session.scalar(select(func.count()).select_from(member_tags)) == 0
    done = db.session.get(DataRequest, req.id)
    assert (done.status, done.processed_by, done.open_member_id) == \
        (RequestStatus.DONE, owner.id, None)


def test_closing_forfeits_points_and_bonus_with_ledger_entries(member, owner):
    _give_points(member, owner, 300)
    card = _prepaid(member, principal=0, bonus=500)

    rights.close_account(db.session, _ask(member).id, operator_id=owner.id)

    assert ledger.balance(db.session, AccountKind.POINTS, "member", member.id) == 0
    assert ledger.balance(db.session, AccountKind.PREPAID_BONUS, "card", card.id,
                          card.plan.currency) == 0
    reasons = db.session.scalars(select(ledger.Entry.reason).where(
        ledger.Entry.delta < 0)).all()
    assert sorted(reasons) == [rights.CLOSED_REASON, rights.CLOSED_REASON]
    assert consistency.check(db.session).ok


def test_closing_keeps_financial_records_and_voids_coupons(member, owner):
    _give_points(member, owner, 10)
    coupon = _coupon(member)

    rights.close_account(db.session, _ask(member).id, operator_id=owner.id)

    assert db.session.get(Coupon, coupon.id).status == CouponStatus.EXPIRED
    assert db.session.scalar(select(func.count()).select_from(ledger.Entry)) == 2
    card = db.session.scalars(select(MemberCard).where(MemberCard.member_id == member.id)).one()
    assert card.status == CardStatus.FROZEN
    assert db.session.scalar(select(func.count()).select_from(InboxMessage)) == 0


def test_closing_waits_while_the_member_has_prepaid_money_of_their_own(member, owner):
    _prepaid(member, principal=2000, bonus=100)
    req = _ask(member)

    with pytest.raises(RightsError) as e:
        rights.close_account(db.session, req.id, operator_id=owner.id)

    assert e.value.code == RightsErrorCode.BALANCE_LEFT
    assert db.session.get(Member, member.id).mobile == member.mobile
    assert db.session.get(DataRequest, req.id).status == RequestStatus.REQUESTED


def test_closed_member_is_not_found_by_mobile(member, owner):
    mobile = member.mobile
    rights.close_account(db.session, _ask(member).id, operator_id=owner.id)

    assert members.member_by_mobile(db.session, mobile) is None


def test_closing_twice_is_refused(member, owner):
    req = _ask(member)
    rights.close_account(db.session, req.id, operator_id=owner.id)

    with pytest.raises(RightsError) as e:
        rights.close_account(db.session, req.id, operator_id=owner.id)
    assert e.value.code == RightsErrorCode.ALREADY_DECIDED


def test_closing_blanks_the_members_values_in_the_audit_log(member, owner):
    members.set_tags(db.session, member.id, ["VIP"], operator_id=owner.id)
    rights.close_account(db.session, _ask(member).id, operator_id=owner.id)

    entry = db.session.scalars(select(AuditEntry).where(
        AuditEntry.object_type == "members")).one()
    assert entry.after == {"erased": True} and entry.staff_id == owner.id
    closed = db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == "data_request.close")).one()
    assert closed.staff_id == owner.id and closed.after["status"] == RequestStatus.DONE


def test_refusal_needs_a_reason_and_reopens_asking(member, owner):
    req = _ask(member)
    with pytest.raises(RightsError) as e:
        rights.refuse(db.session, req.id, "  ", operator_id=owner.id)
    assert "reason" in e.value.details["errors"]

    rights.refuse(db.session, req.id, "An order is in dispute", operator_id=owner.id)

    refused = db.session.get(DataRequest, req.id)
    assert (refused.status, refused.reason, refused.processed_by) == \
        (RequestStatus.REFUSED, "An order is in dispute", owner.id)
    assert _ask(member).status == RequestStatus.REQUESTED


def test_closed_account_leaves_every_segment(member, other_member, owner, plan):
    from portal.members import segments

    rules = [{"field": "plan", "op": "in", "value": [plan.id]}]
    assert segments.count(db.session, "all", rules) == 2

    rights.close_account(db.session, _ask(member).id, operator_id=owner.id)

    assert segments.count(db.session, "all", rules) == 1


def test_closing_waits_for_a_payment_under_way(member, owner):
    from datetime import timedelta

    from portal import clock
    from portal.payments.models import Payment, PaymentStatus

    db.session.add(Payment(token="t" * 20, purpose="topup", purpose_id=1, member_id=member.id,
                           amount_minor=1000, currency="CNY", description="Top-up",
                           status=PaymentStatus.OPEN, provider="demo",
                           expires_at=clock.now() + timedelta(minutes=30)))
    db.session.commit()
    req = _ask(member)

    with pytest.raises(RightsError) as e:
        rights.close_account(db.session, req.id, operator_id=owner.id)

    assert e.value.code == RightsErrorCode.PAYMENT_UNDER_WAY
    assert db.session.get(Member, member.id).closed_at is None


@pytest.mark.parametrize("status,expires_in", [
    ("open", -60),        # past its expiry, not swept yet: the sweep may still fulfil it
    ("review", -60),      # paid, nothing given: staff settle it with the member
    ("processing", 30)])
def test_closing_waits_for_any_payment_not_settled(member, owner, status, expires_in):
    from datetime import timedelta

    from portal import clock
    from portal.payments.models import Payment

    db.session.add(Payment(token="t" * 20, purpose="topup", purpose_id=1, member_id=member.id,
                           amount_minor=1000, currency="CNY", description="Top-up",
                           status=status, provider="demo",
                           expires_at=clock.now() + timedelta(minutes=expires_in)))
    db.session.commit()
    req = _ask(member)

    with pytest.raises(RightsError) as e:
        rights.close_account(db.session, req.id, operator_id=owner.id)

    assert e.value.code == RightsErrorCode.PAYMENT_UNDER_WAY
    assert db.session.get(Member, member.id).closed_at is None


def test_export_hides_the_buyers_contact_on_a_card_someone_else_bought(member, other_member):
    from portal.giftcards.models import GiftCard, GiftCardProduct

    product = GiftCardProduct(kind="electronic", name="Gift", currency="CNY", status="active",
                              denominations=[10_000], channels=["ONLINE"])
    db.session.add(product)
    db.session.flush()
    db.session.add_all([
        GiftCard(product_id=product.id, number="G1", currency="CNY", face_minor=10_000,
                 price_minor=10_000, buyer_member_id=other_member.id, buyer_name="Giver",
                 buyer_phone="+8613911112222", holder_member_id=member.id),
        GiftCard(product_id=product.id, number="G2", currency="CNY", face_minor=10_000,
                 price_minor=10_000, buyer_member_id=member.id, buyer_name="Me",
                 buyer_phone=member.mobile, holder_member_id=member.id)])
    db.session.commit()

    cards = {c["number"]: c for c in _export(member.id)["sections"]["gift_cards"]}

    assert (cards["G1"]["buyer_name"], cards["G1"]["buyer_phone"]) == (None, None)
    assert (cards["G2"]["buyer_name"], cards["G2"]["buyer_phone"]) == ("Me", member.mobile)
    assert "pin_hash" not in cards["G1"] and "claim_token" not in cards["G1"]


def test_closing_erases_the_recipient_on_gift_cards_the_member_holds(member, other_member,
                                                                     owner):
    from portal.giftcards.models import GiftCard, GiftCardProduct

    product = GiftCardProduct(kind="electronic", name="Gift", currency="CNY", status="active",
                              denominations=[10_000], channels=["ONLINE"])
    db.session.add(product)
    db.session.flush()
    db.session.add_all([
        GiftCard(product_id=product.id, number="G1", currency="CNY", face_minor=10_000,
                 price_minor=10_000, buyer_member_id=other_member.id, buyer_name="Giver",
                 holder_member_id=member.id, recipient_name="Me", recipient_phone=member.mobile,
                 recipient_email="me@example.com"),
        GiftCard(product_id=product.id, number="G2", currency="CNY", face_minor=10_000,
                 price_minor=10_000, buyer_member_id=other_member.id, buyer_name="Giver",
                 holder_member_id=other_member.id, recipient_name="Friend",
                 recipient_phone="+8613911113333")])
    db.session.commit()

    rights.close_account(db.session, _ask(member).id, operator_id=owner.id)

    held, other = (db.session.scalars(select(GiftCard).where(GiftCard.number == n)).one()
                   for n in ("G1", "G2"))
    assert (held.recipient_name, held.recipient_phone, held.recipient_email) == \
        (None, None, None)
    assert (held.buyer_name, held.number) == ("Giver", "G1")
    assert (other.recipient_name, other.recipient_phone) == ("Friend", "+8613911113333")


def test_export_leaves_out_the_number_of_a_card_the_member_gave_away(member, other_member):
    from portal.giftcards.models import GiftCard, GiftCardProduct

    product = GiftCardProduct(kind="electronic", name="Gift", currency="CNY", status="active",
                              denominations=[10_000], channels=["ONLINE"])
    db.session.add(product)
    db.session.flush()
    db.session.add_all([
        GiftCard(product_id=product.id, number="G-CLAIMED", currency="CNY", face_minor=10_000,
                 price_minor=10_000, buyer_member_id=member.id, buyer_name="Me",
                 holder_member_id=other_member.id, recipient_name="Friend"),
        GiftCard(product_id=product.id, number="G-UNCLAIMED", currency="CNY",
                 face_minor=10_000, price_minor=10_000, buyer_member_id=member.id,
                 buyer_name="Me", recipient_name="Friend"),
        GiftCard(product_id=product.id, number="G-MINE", currency="CNY", face_minor=10_000,
                 price_minor=10_000, buyer_member_id=member.id, buyer_name="Me",
                 holder_member_id=member.id)])
    db.session.commit()

    cards = _export(member.id)["sections"]["gift_cards"]

    assert sorted(str(c["number"]) for c in cards) == ["G-MINE", "None", "None"]
    assert all(c["buyer_name"] == "Me" for c in cards)


def test_closing_blanks_the_notes_of_every_request_of_the_member(member, other_member, owner):
    first = _ask(member)
    rights.withdraw_closure(db.session, member.id)
    theirs = _ask(other_member)
    req = rights.request_closure(db.session, member.id, confirmation=member.mobile[-4:],
                                 note="I am Wang Fang, please hurry")

    rights.close_account(db.session, req.id, operator_id=owner.id)

    db.session.expire_all()
    assert db.session.get(DataRequest, first.id).note == ""
    assert db.session.get(DataRequest, req.id).note == ""
    assert db.session.get(DataRequest, theirs.id).note == "moving away"


def test_staff_cannot_adjust_points_of_a_closed_account(member, owner):
    from portal.loyalty.errors import LoyaltyError, LoyaltyErrorCode

    rights.close_account(db.session, _ask(member).id, operator_id=owner.id)

    for kind in (AccountKind.POINTS, AccountKind.EXPERIENCE):
        with pytest.raises(LoyaltyError) as e:
            loyalty.adjust(db.session, member_id=member.id, kind=kind, delta=100,
                           reason="goodwill", key=f"late:{kind}", operator_id=owner.id)
        assert e.value.code == LoyaltyErrorCode.MEMBER_CLOSED
    assert db.session.scalar(select(func.count()).select_from(ledger.Entry)) == 0


def test_staff_cannot_issue_coupons_to_a_closed_account(member, owner):
    from portal.coupons.errors import CouponError, CouponErrorCode

    template = CouponTemplateFactory()
    rights.close_account(db.session, _ask(member).id, operator_id=owner.id)

    with pytest.raises(CouponError) as e:
        coupons.issue(db.session, member_id=member.id, template_id=template.id, key="late",
                      source=coupons.Source("admin", reason="goodwill"),
                      operator_id=owner.id)

    assert e.value.code == CouponErrorCode.MEMBER_CLOSED
    assert db.session.scalar(select(func.count()).select_from(Coupon)) == 0
