"""Steps many browser tests share. Selectors by id, so they work in every language."""
from __future__ import annotations

from tests.factories import PASSWORD
from tests.fixtures import last_code


def staff_sign_in(page, user) -> None:
    page.goto("/admin/sign-in")
    page.locator("#email").fill(user.email)
    page.locator("#password").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    page.wait_for_url("**/admin/")


def member_sign_in(page, member) -> None:
    """Sign in with the code texted to the member's mobile; lands on the card."""
    page.goto("/sign-in")
    page.locator("#mobile").fill(member.mobile)
    page.locator("form#form button[type=submit]").click()
    page.wait_for_url("**/verify")
    page.locator("#code").fill(last_code(member.mobile))
    page.locator("form#form button[type=submit]").click()
    page.wait_for_url("**/card")
