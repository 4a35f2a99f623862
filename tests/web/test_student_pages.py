"""Student ID over HTTP: the member's page and request, the photo's privacy, staff review,
settings and the dashboard, and who may see what."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
from PIL import Image
from sqlalchemy import func, select

from portal import clock
from portal.db import db
from portal.members.models import Segment
from portal.staff.models import AuditEntry
from portal.students import services as students
from portal.students.models import StudentVerification, VerificationStatus
from tests.factories import CouponTemplateFactory
from tests.fixtures import count_queries, member_with_card, sign_in_as

GRADUATION = clock.today() + timedelta(days=700)


@pytest.fixture(autouse=True)
def _own_uploads(app, tmp_path):
    uploads, app.config["UPLOAD_DIR"] = app.config["UPLOAD_DIR"], str(tmp_path)
    yield
    app.config["UPLOAD_DIR"] = uploads


def _jpeg() -> io.BytesIO:
    out = io.BytesIO()
    Image.new("RGB", (80, 50), (10, 120, 200)).save(out, "JPEG")
    out.seek(0)
    return out


def _request(**changes) -> dict:
    data = {"school": "Tongji University", "student_number": "S-1234",
            "graduation_on": GRADUATION.isoformat(), "consent": "y",
            "photo": (_jpeg(), "card.jpg")}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def _count() -> int:
    n = db.session.scalar(select(func.count(StudentVerification.id)))
    db.session.commit()
    return n


@pytest.fixture
def settings_saved(owner):
    coupon = CouponTemplateFactory(title="Student latte")
    students.save_settings(db.session, {
        "validity_months": 12, "tag_name": "Student", "page_title": "Students save 10%",
        "page_intro": "Show your student card once.", "perks": "10% off every day\nFree refill",
        "gift_kind": "coupon", "gift_template_id": coupon.id, "gift_rule": "first",
        "reminder_days": 14, "photo_retention_days": 30, "package_ids": []},
        operator_id=owner.id)
    return coupon


def _pending(member) -> StudentVerification:
    v = db.session.scalar(select(StudentVerification).where(
        StudentVerification.member_id == member.id))
    db.session.commit()
    return v


def test_member_page_shows_the_merchants_content(member_client, settings_saved):
    page = member_client.get("/student").get_data(as_text=True)
    assert "Students save 10%" in page and "Free refill" in page
    assert 'enctype="multipart/form-data"' in page and "Not verified yet." in page


def test_member_sends_a_request_and_sees_it_pending(member_client, member):
    r = member_client.post("/student", data=_request(), content_type="multipart/form-data")
    assert r.status_code == 303 and r.headers["Location"].endswith("/student")
    page = member_client.get("/student").get_data(as_text=True)
    assert "Waiting for review" in page and "Send for review" not in page
    v = _pending(member)
    assert f"/student/photo/{v.id}" in page
    r = member_client.get(f"/student/photo/{v.id}")
    assert r.status_code == 200 and r.mimetype == "image/jpeg"
    assert "no-store" in r.headers["Cache-Control"]


def test_bad_request_shows_every_error_and_stores_nothing(member_client, app):
    r = member_client.post("/student", data=_request(
        school="", graduation_on="2001-01-01", consent=None,
        photo=(io.BytesIO(b"GIF89a not really"), "card.png")),
        content_type="multipart/form-data")
    page = r.get_data(as_text=True)
    assert r.status_code == 422
    for message in ("Enter your school", "The graduation date has passed.",
                    "Agree to the use of your student card photo",
                    "This file is not an image we can read"):
        assert message in page
    assert 'aria-invalid="true"' in page and _count() == 0


def test_second_pending_request_is_refused(member_client):
    member_client.post("/student", data=_request(), content_type="multipart/form-data")
    r = member_client.post("/student", data=_request(), content_type="multipart/form-data")
    assert r.status_code == 422 and "still waiting for review" in r.get_data(as_text=True)
    assert _count() == 1


def test_another_member_cannot_see_my_photo(client, member, plan):
    sign_in_as(client, member)
    client.post("/student", data=_request(), content_type="multipart/form-data")
    v = _pending(member)
    sign_in_as(client, member_with_card(plan))
    assert client.get(f"/student/photo/{v.id}").status_code == 404
    assert client.get(f"/admin/students/requests/{v.id}/photo").status_code in (302, 303)


def test_photo_needs_a_signed_in_member(client, member):
    sign_in_as(client, member)
    client.post("/student", data=_request(), content_type="multipart/form-data")
    v = _pending(member)
    with client.session_transaction() as s:
        s.clear()
    assert client.get(f"/student/photo/{v.id}").status_code in (302, 303, 401)


def test_staff_approve_and_the_member_sees_until_and_gift(client, member, owner,
                                                           settings_saved):
    sign_in_as(client, member)
    client.post("/student", data=_request(), content_type="multipart/form-data")
    v = _pending(member)
    sign_in_as(client, owner)
    queue = client.get("/admin/students/requests").get_data(as_text=True)
    assert "Tongji University" in queue
    review = client.get(f"/admin/students/requests/{v.id}").get_data(as_text=True)
    assert f"/admin/students/requests/{v.id}/photo" in review and "S-1234" in review
    assert client.get(f"/admin/students/requests/{v.id}/photo").status_code == 200
    r = client.post(f"/admin/students/requests/{v.id}/approve")
    assert r.status_code == 303
    assert client.post(f"/admin/students/requests/{v.id}/approve").status_code == 409
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "student.approve"))
    assert entry.staff_id == owner.id
    db.session.commit()
    sign_in_as(client, member)
    page = client.get("/student").get_data(as_text=True)
    assert "You are a verified student until" in page
    assert "Your verification gift is in your wallet." in page
    assert "Student latte" in client.get("/wallet").get_data(as_text=True)


def test_reject_needs_a_reason_and_the_member_reads_it(client, member, manager):
    sign_in_as(client, member)
    client.post("/student", data=_request(), content_type="multipart/form-data")
    v = _pending(member)
    sign_in_as(client, manager)
    r = client.post(f"/admin/students/requests/{v.id}/reject", data={"reason": " "})
    assert r.status_code == 422 and 'id="reason-error"' in r.get_data(as_text=True)
    assert _pending(member).status == VerificationStatus.PENDING
    r = client.post(f"/admin/students/requests/{v.id}/reject",
                    data={"reason": "The card has expired."})
    assert r.status_code == 303
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "student.reject")) == 1
    db.session.commit()
    sign_in_as(client, member)
    page = client.get("/student").get_data(as_text=True)
    assert "Rejected" in page and "The card has expired." in page and "Send for review" in page


def test_settings_save_create_the_group_and_are_audited(owner_client):
    coupon = CouponTemplateFactory()
    r = owner_client.post("/admin/students/settings", data={
        "validity_months": "6", "tag_name": "Student", "page_title": "Hi students",
        "page_intro": "", "perks": "Free cookie", "gift_kind": "coupon",
        "gift_template_id": str(coupon.id), "gift_package_id": "", "gift_rule": "each",
        "reminder_days": "10", "photo_retention_days": "20"})
    assert r.status_code == 303
    conf = students.settings(db.session)
    assert (conf.validity_months, conf.gift_rule, conf.reminder_days) == (6, "each", 10)
    assert db.session.get(Segment, conf.segment_id).name == "Student members"
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "student.settings")) == 1
    db.session.commit()
    page = owner_client.get("/admin/students/settings").get_data(as_text=True)
    assert 'value="6"' in page and "Student members" in page


def test_bad_settings_are_refused_next_to_the_fields(owner_client):
    r = owner_client.post("/admin/students/settings", data={
        "validity_months": "soon", "tag_name": "", "gift_kind": "coupon",
        "gift_template_id": "", "gift_rule": "first", "reminder_days": "0",
        "photo_retention_days": "30"})
    page = r.get_data(as_text=True)
    assert r.status_code == 422
    for name in ("validity_months", "tag_name", "gift_template_id", "reminder_days"):
        assert f'id="{name}-error"' in page
    assert "Enter a whole number." in page
    assert students.settings(db.session).updated_at is None


def test_dashboard_shows_counts_chart_and_table(owner_client, member):
    v = students.submit(db.session, member.id, school="A", student_number="1",
                        graduation_on=GRADUATION, consent=True,
                        photo=type("U", (io.BytesIO,), {"filename": "c.jpg"})(
                            _jpeg().getvalue()))
    students.approve(db.session, v.id, operator_id=None)
    page = owner_client.get("/admin/students").get_data(as_text=True)
    assert "Student members" in page and "100.0%" in page
    # Empty days draw no bar; the table still lists all 30.
    assert page.count('class="chart-bar chart-bar--new"') == 1
    assert page.split('<tbody>')[1].count("<tr>") == 30
    assert "<table" in page and "style=" not in page.split('<svg class="chart"')[1][:5000]


def test_dashboard_and_queue_queries_do_not_grow_with_rows(owner_client, plan):
    def add(n):
        for _ in range(n):
            m = member_with_card(plan)
            students.submit(db.session, m.id, school="A", student_number="1",
                            graduation_on=GRADUATION, consent=True,
                            photo=type("U", (io.BytesIO,), {"filename": "c.jpg"})(
                                _jpeg().getvalue()))
    add(1)
    few = (count_queries(owner_client, "/admin/students"),
           count_queries(owner_client, "/admin/students/requests"))
    add(4)
    assert (count_queries(owner_client, "/admin/students"),
            count_queries(owner_client, "/admin/students/requests")) == few


def test_clerks_cannot_review(client, clerk, member):
    sign_in_as(client, clerk)
    for url in ("/admin/students", "/admin/students/requests", "/admin/students/settings"):
        assert client.get(url).status_code == 403
    assert client.post("/admin/students/requests/1/approve").status_code == 403


def test_a_verified_student_is_led_to_the_student_only_packages(client, member, owner,
                                                              settings_saved):
    from portal.benefits.models import BenefitPackage

    package = BenefitPackage(name="Student plan", currency="CNY", status="active",
                             students_only=True)
    db.session.add(package)
    db.session.commit()
    sign_in_as(client, member)
    client.post("/student", data=_request(), content_type="multipart/form-data")
    v = _pending(member)
    sign_in_as(client, owner)
    client.post(f"/admin/students/requests/{v.id}/approve")
    sign_in_as(client, member)
    page = client.get("/student").get_data(as_text=True)
    assert f'href="/packages/{package.id}"' in page and "Student plan" in page
