"""A member buys a paid benefit package with the demo provider, then renews it early: the
price that applies, the agreement refused at its field, the periods stacked on My packages
and the first-purchase gift in the wallet."""
from __future__ import annotations

from sqlalchemy import select

from portal.benefits import packages
from portal.benefits.models import PackagePurchase
from portal.db import db
from tests.browser.steps import member_sign_in
from tests.factories import CouponTemplateFactory


def _no_errors(page):
    assert [e for e in page.console.errors if "status of 409" not in e
            and "status of 422" not in e] == []


def _pay(phone, amount: str) -> None:
    """Pay on the package page with the demo provider and follow the result to My packages."""
    phone.get_by_role("button", name="Pay").click()
    phone.wait_for_url("**/payments/demo/**")
    phone.get_by_role("button", name=f"Pay {amount} (demo)").click()
    phone.get_by_text("Paid. Thank you!").wait_for()
    phone.get_by_role("button", name="See what you got").click()
    phone.wait_for_url("**/packages/mine")


def test_buy_a_package_renew_it_early_and_see_the_stacked_periods(phone, member, owner):
    gift = CouponTemplateFactory(kind="cash", title="Welcome coffee")
    packages.create(db.session, {
        "name": "Premium Club", "currency": "CNY", "channels": ["ONLINE"],
        "agreement": "Packages are not refundable once a coupon is used.",
        "rules": [{"duration_days": 30, "original_minor": 19900, "first_minor": 15900,
                   "renewal_minor": 16900}],
        "items": [{"kind": "first_gift", "name": "Welcome gift", "points": 100,
                   "coupon_template_id": gift.id}]},
        operator_id=owner.id, activate=True)
    member_sign_in(phone, member)

    # The shop shows the first-purchase price, not the original one.
    phone.goto("/packages")
    tile = phone.locator(".plan-tile", has_text="Premium Club")
    assert "¥159.00" in tile.inner_text() and "First purchase price" in tile.inner_text()
    tile.get_by_role("link").click()
    phone.get_by_role("heading", level=1, name="Premium Club").wait_for()

    # Pay without the agreement: refused next to the checkbox, nothing bought.
    phone.get_by_role("button", name="Pay").click()
    error = phone.locator("#agree-error")
    error.wait_for()
    assert "accept the purchase agreement" in error.inner_text()
    agree = phone.get_by_label("I have read and accept the purchase agreement")
    assert agree.get_attribute("aria-describedby") == "agree-error"

    agree.check()
    _pay(phone, "¥159.00")
    periods = phone.locator(".package-periods > li")
    assert periods.count() == 1
    assert "In effect" in periods.first.inner_text()
    assert "30 days" in periods.first.inner_text() and "Welcome gift" in periods.first.inner_text()

    # Renew early at the renewal price: the new period starts when the first ends.
    phone.get_by_role("button", name="Renew early").click()
    assert "the new period starts when the current one ends" in \
        phone.locator(".notice").inner_text()
    assert "¥169.00" in phone.locator("#buy").inner_text()
    phone.get_by_label("I have read and accept the purchase agreement").check()
    _pay(phone, "¥169.00")
    assert periods.count() == 2
    first, second = (periods.nth(i).inner_text() for i in range(2))
    assert "In effect" in first and "Starts later" in second and "Early renewal" in second
    db.session.commit()         # a fresh read: the purchases were paid in the server's thread
    bought = db.session.scalars(select(PackagePurchase).order_by(PackagePurchase.id)).all()
    assert bought[1].starts_at == bought[0].ends_at
    assert "Welcome gift" not in second                  # the gift is for the first only

    phone.goto("/wallet")
    assert phone.get_by_text("Welcome coffee").count() == 1
    _no_errors(phone)

