"""Student ID verification: requests, review, validity, gifts, reminders, expiry, photos."""
from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from flask import current_app
from PIL import Image
from sqlalchemy import func, select

from portal import clock, jobs
from portal.benefits.models import BenefitPackage
from portal.coupons.models import Coupon, CouponPackage, PackageItem
from portal.members import segments
from portal.members.models import Member, Segment, Tag, member_tags
from portal.notifications.models import InboxMessage
from portal.staff.models import AuditEntry
from portal.students import services as students
from portal.students.errors import StudentError, StudentErrorCode
from portal.students.models import StudentVerification, VerificationStatus
from tests.factories import CouponTemplateFactory

NOON = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # 12:00 on 10 March in Shanghai


@pytest.fixture(autouse=True)
def _shanghai(app, tmp_path):
    zone = clock.timezone().key
    clock.set_timezone("Asia/Shanghai")
    clock.freeze(NOON)
    uploads, app.config["UPLOAD_DIR"] = app.config["UPLOAD_DIR"], str(tmp_path)
    yield
    app.config["UPLOAD_DIR"] = uploads
    clock.set_timezone(zone)


class Upload(io.BytesIO):
    def __init__(self, data: bytes, filename: str = "card.jpg"):
        super().__init__(data)
        self.filename = filename


def jpeg(size=(60, 40)) -> Upload:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, "JPEG")
    return Upload(out.getvalue())


def photos() -> list[Path]:
    folder = Path(current_app.config["UPLOAD_DIR"]) / "students"
    return sorted(folder.glob("*")) if folder.exists() else []


@pytest.fixture
def coupon():
    return CouponTemplateFactory(title="Student latte")


@pytest.fixture
def configured(session, owner, coupon):
    def configure(**overrides):
        values = {"validity_months": 6, "tag_name": "Student", "page_title": "Students save",
                  "page_intro": "Verify once.", "perks": "10% off\nFree refill",
                  "gift_kind": "coupon", "gift_template_id": coupon.id, "gift_rule": "first",
                  "reminder_days": 14, "photo_retention_days": 30, "package_ids": []}
        values.update(overrides)
        return students.save_settings(session, values, operator_id=owner.id)
    configure()
    return configure


def submit(session, member, graduation_on=date(2030, 7, 1), photo=None, **fields):
    values = {"school": "Fudan University", "student_number": "2026 0001",
              "graduation_on": graduation_on, "consent": True,
              "photo": photo if photo is not None else jpeg()}
    values.update(fields)
    return students.submit(session, member.id, **values)


def gifts(session, member) -> int:
    return session.scalar(select(func.count(Coupon.id)).where(Coupon.member_id == member.id))


def tag_ids(session, member) -> set[int]:
    return set(session.scalars(select(member_tags.c.tag_id).where(
        member_tags.c.member_id == member.id)))


def inbox_kinds(session, member) -> list[str]:
    return list(session.scalars(select(InboxMessage.kind).where(
        InboxMessage.member_id == member.id).order_by(InboxMessage.id)))


def test_submit_stores_a_pending_request_with_a_reencoded_photo(session, member):
    v = submit(session, member)
    assert v.status == VerificationStatus.PENDING and v.student_number == "20260001"
    stored = photos()
    assert len(stored) == 1 and stored[0].name == v.photo
    assert "static" not in str(stored[0])


@pytest.mark.parametrize("data, filename", [
    (b"just some text, not a picture", "card.png"),
    (b"\x89PNG\r\n\x1a\n" + b"this is really text" * 10, "card.png"),
    (None, "broken.jpg"),
    (b"x" * (4 * 1024 * 1024 + 1), "huge.jpg"),
])
def test_submit_refuses_a_bad_photo_and_stores_nothing(session, member, data, filename):
    if data is None:  # a JPEG cut in half
        data = jpeg((400, 300)).getvalue()[:300]
    with pytest.raises(StudentError) as e:
        submit(session, member, photo=Upload(data, filename))
    assert "photo" in e.value.details["errors"]
    assert photos() == [] and session.scalar(select(func.count(StudentVerification.id))) == 0


def test_submit_lists_every_field_error_at_once_and_keeps_no_photo(session, member):
    with pytest.raises(StudentError) as e:
        submit(session, member, graduation_on=date(2026, 3, 9), school=" ",
               student_number="", consent=False)
    assert set(e.value.details["errors"]) == {"school", "student_number", "graduation_on",
                                              "consent"}
    assert photos() == []


def test_submit_refuses_a_second_pending_request(session, member):
    submit(session, member)
    with pytest.raises(StudentError) as e:
        submit(session, member)
    assert e.value.code == StudentErrorCode.PENDING
    assert len(photos()) == 1
    assert session.scalar(select(func.count(StudentVerification.id))) == 1


def test_approve_validity_is_capped_by_graduation(session, member, configured):
    v = submit(session, member, graduation_on=date(2026, 6, 30))
    students.approve(session, v.id, operator_id=None)
    assert v.valid_until_on == date(2026, 6, 30)
    assert v.expires_at == datetime(2026, 6, 30, 16, 0, tzinfo=UTC)  # 1 July 0:00 Shanghai
    w = submit(session, member)
    students.approve(session, w.id, operator_id=None)
    assert w.valid_until_on == date(2026, 9, 10)  # six months, before graduation in 2030


def test_approve_tags_groups_gifts_notifies_and_audits(session, member, configured, owner):
    v = submit(session, member)
    students.approve(session, v.id, operator_id=owner.id)
    conf = students.settings(session)
    assert conf.tag_id in tag_ids(session, member)
    group = session.get(Segment, conf.segment_id)
    assert member.id in set(session.scalars(segments.member_ids(session, group)))
    assert gifts(session, member) == 1 and v.gift_key == f"student:{v.id}"
    assert "student_approved" in inbox_kinds(session, member)
    assert students.is_verified_student(session, member.id)
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "student.approve"))
    assert entry.staff_id == owner.id and entry.object_id == str(v.id)


def test_approve_twice_is_refused(session, member, configured):
    v = submit(session, member)
    students.approve(session, v.id, operator_id=None)
    with pytest.raises(StudentError) as e:
        students.approve(session, v.id, operator_id=None)
    assert e.value.code == StudentErrorCode.ALREADY_DECIDED
    assert gifts(session, member) == 1


def test_approve_refused_once_graduation_has_passed(session, member, configured):
    v = submit(session, member, graduation_on=date(2026, 3, 20))
    clock.advance(timedelta(days=11))
    with pytest.raises(StudentError) as e:
        students.approve(session, v.id, operator_id=None)
    assert e.value.code == StudentErrorCode.GRADUATED


def test_reject_needs_a_reason_and_the_member_reads_it(session, member, configured):
    v = submit(session, member)
    with pytest.raises(StudentError) as e:
        students.reject(session, v.id, "  ", operator_id=None)
    assert "reason" in e.value.details["errors"]
    students.reject(session, v.id, "The photo is blurred.", operator_id=None)
    assert v.status == VerificationStatus.REJECTED and v.reason == "The photo is blurred."
    message = session.scalar(select(InboxMessage).where(InboxMessage.member_id == member.id))
    assert message.kind == "student_rejected" and "blurred" in message.body
    assert not students.is_verified_student(session, member.id)
    submit(session, member)  # a new request is welcome after a decision


def _reverify(session, member, days: int):
    clock.advance(timedelta(days=days))
    v = submit(session, member)
    students.approve(session, v.id, operator_id=None)
    return v


def test_gift_only_on_the_first_verification(session, member, configured):
    _reverify(session, member, 0)
    clock.advance(timedelta(days=200))
    jobs.run_tick()
    _reverify(session, member, 1)
    assert gifts(session, member) == 1


def test_gift_on_each_verification(session, member, configured):
    configured(gift_rule="each")
    _reverify(session, member, 0)
    second = _reverify(session, member, 150)  # re-verifying before the first ends
    assert gifts(session, member) == 2
    first = session.scalar(select(StudentVerification).order_by(StudentVerification.id))
    assert first.status == VerificationStatus.REPLACED and second.status == "approved"


def test_gift_from_a_coupon_package(session, member, configured, coupon):
    package = CouponPackage(name="Student pack",
                            items=[PackageItem(template_id=coupon.id, quantity=2)])
    session.add(package)
    session.commit()
    configured(gift_kind="package", gift_package_id=package.id)
    _reverify(session, member, 0)
    assert gifts(session, member) == 2


def test_gift_out_of_stock_does_not_stop_the_approval(session, member, configured, coupon):
    c = session.merge(coupon)
    c.inventory_total, c.inventory_left = 1, 0
    session.commit()
    v = _reverify(session, member, 0)
    assert v.status == VerificationStatus.APPROVED and v.gift_key is None and v.gift_error
    assert gifts(session, member) == 0


def test_expiry_by_the_sweep_removes_the_tag_and_tells_once(session, member, configured):
    v = _reverify(session, member, 0)
    tag_id = students.settings(session).tag_id
    clock.freeze(v.expires_at - timedelta(minutes=1))
    assert students.expire_lapsed(session) == 0
    assert students.is_verified_student(session, member.id)
    clock.advance(timedelta(minutes=1))
    assert not students.is_verified_student(session, member.id)  # before any sweep
    assert students.expire_lapsed(session) == 1
    assert students.expire_lapsed(session) == 0
    assert tag_id not in tag_ids(session, member)
    assert session.get(StudentVerification, v.id).status == VerificationStatus.EXPIRED
    assert inbox_kinds(session, member).count("student_expired") == 1


def test_reminder_goes_once_before_expiry(session, member, configured):
    v = _reverify(session, member, 0)  # until 10 September; 14 days' notice
    clock.freeze(clock.start_of_local_day(date(2026, 8, 26)) + timedelta(hours=1))
    assert students.remind_expiring(session) == 0
    clock.advance(timedelta(days=1))
    assert students.remind_expiring(session) == 1
    clock.advance(timedelta(days=1))
    assert students.remind_expiring(session) == 0
    assert inbox_kinds(session, member).count("student_expiring") == 1
    assert session.get(StudentVerification, v.id).reminded_at is not None


def test_photo_deleted_days_after_the_decision(session, member, configured):
    v = submit(session, member)
    clock.advance(timedelta(days=40))
    assert students.delete_old_photos(session) == 0  # pending: staff still need it
    students.approve(session, v.id, operator_id=None)
    clock.advance(timedelta(days=29))
    assert students.delete_old_photos(session) == 0
    clock.advance(timedelta(days=1))
    assert students.delete_old_photos(session) == 1
    assert photos() == [] and session.get(StudentVerification, v.id).photo is None
    assert students.delete_old_photos(session) == 0


def test_verified_student_ids_in_one_query(session, member, other_member, configured):
    v = submit(session, member)
    submit(session, other_member)
    students.approve(session, v.id, operator_id=None)
    assert students.verified_student_ids(session, [member.id, other_member.id]) == {member.id}
    assert session.scalars(select(Member.id).where(students.verified_condition())).all() == \
        [member.id]


def test_settings_mark_students_only_packages(session, member, configured):
    p = BenefitPackage(name="Student plan", currency="CNY", status="active")
    q = BenefitPackage(name="Everyone plan", currency="CNY", status="active")
    session.add_all([p, q])
    session.commit()
    configured(package_ids=[p.id])
    assert [x.id for x in students.student_packages(session)] == [p.id]
    assert not students.may_buy_package(session, p, member.id)
    assert students.may_buy_package(session, q, member.id)
    _reverify(session, member, 0)
    assert students.may_buy_package(session, p, member.id)
    configured(package_ids=[])
    assert students.student_packages(session) == []


def test_changing_the_tag_moves_students_and_the_group(session, member, configured):
    _reverify(session, member, 0)
    old = students.settings(session).tag_id
    configured(tag_name="Uni student")
    conf = students.settings(session)
    new = session.scalar(select(Tag.id).where(Tag.name == "Uni student"))
    assert conf.tag_id == new and tag_ids(session, member) == {new} and old != new
    group = session.get(Segment, conf.segment_id)
    assert group.rules[0]["value"] == [new]
    assert session.scalar(select(func.count(Segment.id))) == 1


def test_settings_refuse_bad_values_all_at_once(session, owner):
    with pytest.raises(StudentError) as e:
        students.save_settings(session, {"validity_months": 0, "tag_name": "",
                                         "gift_kind": "coupon", "gift_template_id": 999,
                                         "gift_rule": "never", "reminder_days": 14,
                                         "photo_retention_days": 400},
                               operator_id=owner.id)
    assert set(e.value.details["errors"]) == {"validity_months", "tag_name",
                                              "gift_template_id", "gift_rule",
                                              "photo_retention_days"}


def test_dashboard_counts_students_share_and_yesterday(session, member, other_member,
                                                        configured):
    v = submit(session, member, graduation_on=date(2026, 3, 12))
    students.approve(session, v.id, operator_id=None)  # 10 March, until 12 March
    clock.advance(timedelta(days=1))
    board = students.dashboard(session)
    assert (board.students, board.members, board.new_yesterday) == (1, 2, 1)
    assert board.share == 0.5 and len(board.days) == 30 and board.days[-1].on == \
        date(2026, 3, 11)
    clock.advance(timedelta(days=3))  # status ended at 0:00 on 13 March: "yesterday" now
    jobs.run_tick()
    board = students.dashboard(session)
    assert board.students == 0 and board.expired_yesterday == 1


def test_students_only_package_is_on_sale_only_to_verified_students(session, member,
                                                                     configured):
    from portal.benefits import purchases
    from portal.benefits.models import PackageRule

    package = BenefitPackage(name="Student plan", currency="CNY", status="active",
                             channels=["ONLINE"], rules=[PackageRule(
                                 position=1, duration_days=30, original_minor=990)])
    session.add(package)
    session.commit()
    configured(package_ids=[package.id])
    assert purchases.available(session, member.id) == []
    v = _reverify(session, member, 0)
    assert [p.id for p in purchases.available(session, member.id)] == [package.id]
    clock.freeze(v.expires_at)
    assert purchases.available(session, member.id) == []
