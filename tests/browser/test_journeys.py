"""Key journeys in a real browser, with CSRF on and htmx loaded."""
from __future__ import annotations

import re

from portal.db import db
from portal.members.models import Member, RegistrationPage
from tests.browser.steps import staff_sign_in
from tests.fixtures import last_code


def test_register_through_a_tracking_link_and_land_on_the_card(phone, link):
    phone.goto(f"/t/{link.code}")
    assert phone.locator("h1").inner_text() == link.page.title
    phone.get_by_label("Mobile number").fill("139 1234 5555")
    phone.get_by_label("Full name").fill("Mei Browser")
    phone.get_by_role("button", name="Join and get my card").click()
    phone.wait_for_url("**/verify")
    phone.get_by_label("6-digit code").fill(last_code("+8613912345555"))
    phone.get_by_role("button", name="Continue").click()
    phone.wait_for_url("**/card")
    member = db.session.query(Member).filter_by(mobile="+8613912345555").one()
    assert member.cards[0].grouped_number in phone.content()
    assert (member.enroll_campaign, member.enroll_source, member.enroll_content) == \
        (link.campaign, link.source, link.content)
    assert phone.locator("svg.qr").first.is_visible()
    assert phone.console.errors == []


def test_wrong_code_shows_a_message_next_to_the_field(phone, member):
    phone.goto("/sign-in")
    phone.get_by_label("Mobile number").fill(member.mobile)
    phone.get_by_role("button", name="Send code").click()
    phone.wait_for_url("**/verify")
    right = last_code(member.mobile)
    phone.get_by_label("6-digit code").fill(f"{(int(right) + 1) % 1_000_000:06d}")
    phone.get_by_role("button", name="Continue").click()
    error = phone.locator("#code-error")
    error.wait_for()
    assert "not right" in error.inner_text()
    assert phone.get_by_label("6-digit code").get_attribute("aria-invalid") == "true"


def _field_order(page):
    return page.locator("li.field-row[data-attribute]").evaluate_all(
        "rows => rows.map(r => r.dataset.attribute)")


def _db_order(page_id):
    db.session.commit()  # a new read: an open one would keep seeing an old SQLite snapshot
    db.session.expire_all()
    return [f.attribute for f in db.session.get(RegistrationPage, page_id).fields]


def test_staff_build_a_registration_page_and_reorder_its_fields(laptop, owner, plan):
    staff_sign_in(laptop, owner)
    laptop.goto("/admin/pages/new")
    laptop.get_by_label("Name (for staff)").fill("Winter")
    laptop.get_by_label("Page title (members see it)").fill("Join for winter")
    laptop.get_by_label("Web address").fill("winter")
    laptop.get_by_role("button", name="Create draft").click()
    laptop.wait_for_url(re.compile(r".*/admin/pages/\d+$"))
    page_id = int(laptop.url.rsplit("/", 1)[1])

    for attribute in ("Email", "Date of birth"):
        laptop.get_by_label("Member attribute").select_option(label=attribute)
        laptop.get_by_role("button", name="Add field").click()
        laptop.locator(f"li.field-row:has-text('{attribute}')").wait_for()
    assert _field_order(laptop) == ["full_name", "email", "born_on"]

    # Up/down buttons (htmx swaps the list in place).
    laptop.get_by_role("button", name="Move Date of birth up").click()
    laptop.wait_for_function(
        "() => document.querySelectorAll('li.field-row[data-attribute]')[1]"
        ".dataset.attribute === 'born_on'")
    assert _db_order(page_id) == ["full_name", "born_on", "email"]

    # Drag and drop: email to the top; the new order is posted when the row is dropped.
    with laptop.expect_response(lambda r: "fields-order" in r.url) as posted:
        laptop.locator("li[data-attribute=email]").drag_to(
            laptop.locator("li[data-attribute=full_name]"),
            target_position={"x": 20, "y": 2})
    assert posted.value.status == 303  # saved, then redirected to the fields fragment
    assert _db_order(page_id) == ["email", "full_name", "born_on"]

    laptop.get_by_role("button", name="Publish").click()
    laptop.locator(".pill--ok", has_text="Published").wait_for()
    laptop.goto("/r/winter")
    labels = laptop.locator("form label").all_inner_texts()
    assert [t.replace("*", "").strip() for t in labels[:4]] == \
        ["Mobile number", "Email", "Full name", "Date of birth"]
    assert laptop.console.errors == []


def test_coupon_form_shows_the_fields_of_the_chosen_type(laptop, owner):
    staff_sign_in(laptop, owner)
    laptop.goto("/admin/coupons/new")
    amount = laptop.get_by_role("textbox", name="Amount off")
    percent = laptop.get_by_role("textbox", name="Percent off")
    assert amount.is_visible() and not percent.is_visible()
    laptop.get_by_label("Discount (percent off)").check()
    assert percent.is_visible() and not amount.is_visible()
    laptop.get_by_label("Between two dates").check()
    assert laptop.get_by_label("First day").is_visible()
    assert not laptop.get_by_label("Valid for (days)").is_visible()
