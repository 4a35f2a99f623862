"""The profile completion gift end to end: the merchant builds and launches it, a member
fills in what is missing, claims (a double click gives once) and sees the gift details;
the delayed coupon arrives with the minute tick."""
from __future__ import annotations

import re
from datetime import timedelta

from portal import clock, jobs
from portal.campaigns.models import Activity, Participation
from portal.coupons.models import Coupon
from portal.db import db
from portal.members.models import Member
from tests.browser.steps import member_sign_in, staff_sign_in
from tests.factories import CouponTemplateFactory


def test_merchant_launches_a_profile_gift_and_a_member_claims_it(browser, laptop, phone,
                                                                 owner, member):
    latte = CouponTemplateFactory(title="Welcome latte")
    treat = CouponTemplateFactory(title="Second visit treat")
    with db.session.begin():
        db.session.query(Member).filter_by(id=member.id).update(
            {"full_name": "", "born_on": None})

    staff_sign_in(laptop, owner)
    laptop.get_by_role("link", name="Activities").first.click()
    laptop.get_by_role("button", name="New profile completion gift").click()
    laptop.get_by_label("Activity name").fill("Tell us about you")
    laptop.get_by_label("Activity code").fill("ABOUT-YOU")
    laptop.get_by_label("Full name").check()
    laptop.get_by_label("Date of birth").check()
    laptop.get_by_label("Points").fill("30")
    laptop.locator("#gift-0-offer").select_option(f"t:{latte.id}")
    laptop.locator("#gift-1-offer").select_option(f"t:{treat.id}")
    laptop.locator("#gift-1-delay").select_option("hours")
    laptop.locator("#gift-1-delay_amount").fill("0")
    laptop.get_by_role("button", name="Save and launch").click()
    laptop.locator(".field-error").first.wait_for()
    assert "A delay is at least 1." in laptop.locator("#gift-1-delay_amount").locator(
        "xpath=..").inner_text()                                   # refused, kept as typed
    assert laptop.get_by_label("Activity name").input_value() == "Tell us about you"
    laptop.locator("#gift-1-delay_amount").fill("2")
    laptop.get_by_role("button", name="Save and launch").click()
    laptop.wait_for_url(re.compile(r".*/admin/activities/\d+$"))
    assert "Active" in laptop.locator(".page-head .pill").inner_text()
    # The refused save answers 422, which Chromium notes in the console; nothing else.
    assert [e for e in laptop.console.errors if "status of 422" not in e] == []

    member_sign_in(phone, member)
    phone.goto("/activities/ABOUT-YOU")
    assert phone.locator("li.pending").count() == 2                # both fields missing
    assert phone.get_by_role("button", name="Claim my gift").count() == 0
    phone.get_by_label("Full name").fill("Ada Lin")
    phone.get_by_label("Date of birth").fill("2999-01-01")
    phone.get_by_role("button", name="Save").click()
    phone.locator("#born_on-error").wait_for()                     # a birth in the future
    phone.get_by_label("Date of birth").fill("1990-04-02")
    phone.get_by_role("button", name="Save").click()
    claim = phone.get_by_role("button", name="Claim my gift")
    claim.wait_for()
    claim.dblclick()
    phone.get_by_text("30 points added").wait_for()
    details = phone.locator("section[aria-label='What you received']").inner_text()
    assert "Welcome latte" in details and "in your wallet" in details
    assert "Second visit treat" in details and "arrives" in details
    assert [e for e in phone.console.errors if "status of 422" not in e] == []

    db.session.commit()
    activity = db.session.query(Activity).filter_by(code="ABOUT-YOU").one()
    assert db.session.query(Participation).filter_by(activity_id=activity.id).count() == 1
    assert db.session.query(Coupon).filter_by(member_id=member.id).count() == 1
    clock.freeze(clock.now() + timedelta(hours=2, minutes=1))
    jobs.run_tick()
    phone.reload()
    assert phone.locator("li.pending").count() == 0
    phone.goto("/wallet")
    assert "Second visit treat" in phone.content()
