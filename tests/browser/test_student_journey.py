"""A member sends a student ID with a photo → staff review and approve it → the member
sees "approved until" and the verification gift in the wallet."""
from __future__ import annotations

from datetime import timedelta

import pytest
from PIL import Image

from portal import clock
from portal.db import db
from portal.students import services as students
from tests.browser.steps import member_sign_in, staff_sign_in
from tests.factories import CouponTemplateFactory


@pytest.fixture
def card_photo(tmp_path):
    path = tmp_path / "card.jpg"
    Image.new("RGB", (320, 200), (30, 90, 160)).save(path, "JPEG")
    return path


def test_student_verification_with_review(phone, laptop, app, member, owner, card_photo,
                                          tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "UPLOAD_DIR", str(tmp_path / "uploads"))
    coupon = CouponTemplateFactory(title="Student latte")
    students.save_settings(db.session, {
        "validity_months": 6, "tag_name": "Student", "page_title": "Students save 10%",
        "page_intro": "", "perks": "10% off every day", "gift_kind": "coupon",
        "gift_template_id": coupon.id, "gift_rule": "first", "reminder_days": 14,
        "photo_retention_days": 30}, operator_id=owner.id)
    db.session.commit()

    member_sign_in(phone, member)
    phone.goto("/student")
    assert "Students save 10%" in phone.locator("h1").inner_text()
    phone.get_by_label("School").fill("Fudan University")
    phone.get_by_label("Student number").fill("20260001")
    phone.get_by_label("Expected graduation date").fill(
        (clock.today() + timedelta(days=500)).isoformat())
    phone.get_by_label("Photo of your student card").set_input_files(str(card_photo))
    phone.locator("input[name=consent]").check()
    phone.get_by_role("button", name="Send for review").click()
    phone.wait_for_url("**/student")
    assert "Waiting for review" in phone.locator(".student-status").inner_text()

    staff_sign_in(laptop, owner)
    laptop.goto("/admin/students/requests")
    laptop.get_by_role("button", name="Review").first.click()
    laptop.locator("img.student-card-photo").wait_for()
    assert laptop.locator("img.student-card-photo").evaluate("i => i.naturalWidth") > 0
    laptop.get_by_role("button", name="Approve").click()
    laptop.wait_for_url("**/admin/students/requests")
    assert "No requests here" in laptop.locator("#results").inner_text()

    phone.goto("/student")
    status = phone.locator(".student-status").inner_text()
    assert "You are a verified student until" in status
    assert "Your verification gift is in your wallet." in status
    phone.goto("/wallet")
    assert "Student latte" in phone.locator(".tickets").inner_text()
    assert phone.console.errors == [] and laptop.console.errors == []
