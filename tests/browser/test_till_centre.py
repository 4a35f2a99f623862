"""A clerk at the till: types (or scans) a card number and presses Enter, sees the member's
points and coupons; adds a new member on the spot, and a known mobile finds its member."""
from __future__ import annotations

from playwright.sync_api import expect

from portal.db import db
from portal.loyalty import services as loyalty
from portal.members.models import Member
from tests.browser.steps import staff_sign_in
from tests.factories import CouponTemplateFactory


def test_clerk_looks_up_a_card_and_adds_a_member(browser, live_server, csrf_live, member,
                                                clerk, owner, plan):
    from portal.coupons import services as coupons

    loyalty.adjust(db.session, member_id=member.id, kind="points", delta=450, reason="test",
                   key="till:points", operator_id=owner.id)
    template = CouponTemplateFactory(title="Free pastry")
    coupons.issue(db.session, member_id=member.id, template_id=template.id, key="till:c",
                  source=coupons.Source("test"))
    number = db.session.merge(member).cards[0].number
    context = browser.new_context(base_url=live_server)
    page = context.new_page()
    staff_sign_in(page, clerk)
    page.locator(".sidebar a[href='/admin/till']").click()
    page.wait_for_url("**/admin/till")
    # The box has the focus: a scanner just types and presses Enter.
    expect(page.locator("#till-q")).to_be_focused()
    page.keyboard.type(number)
    page.keyboard.press("Enter")
    result = page.locator("#result")
    result.locator("#member-title").wait_for()
    assert member.full_name in result.inner_text()
    assert "450" in result.inner_text() and "Free pastry" in result.inner_text()

    page.locator("a[href='/admin/till/join']").click()
    page.locator("#plan_id").select_option(str(plan.id))
    page.locator("#mobile").fill("13912348888")
    page.locator("#full_name").fill("New Walk-in")
    page.locator("form.panel button[type=submit]").click()
    page.locator("#member-title", has_text="New Walk-in").wait_for()
    db.session.commit()  # read now, not from the snapshot an earlier read pinned
    assert db.session.query(Member).filter_by(mobile="+8613912348888").one().is_member

    page.locator("a[href='/admin/till/join']").click()
    page.locator("#plan_id").select_option(str(plan.id))
    page.locator("#mobile").fill(member.mobile)
    page.locator("#full_name").fill("Someone Else")
    page.locator("form.panel button[type=submit]").click()
    page.locator("#member-title", has_text=member.full_name).wait_for()
    db.session.commit()
    assert db.session.query(Member).filter_by(full_name="Someone Else").count() == 0
    context.close()
