"""A member downloads their data → asks to close the account → staff close it → the member
is signed out, and signing in with the old number does not reach the closed account."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import select

from portal.db import db
from portal.ledger import AccountKind
from portal.loyalty import services as loyalty
from portal.members.models import Member, MemberCard
from tests.browser.steps import member_sign_in, staff_sign_in

OUT = Path(__file__).resolve().parents[2] / "screenshots"


def _shoot(page, name: str) -> None:
    """At 390 and 1280 px; the page must not scroll sideways on the phone."""
    OUT.mkdir(exist_ok=True)
    size = page.viewport_size
    for width, height in ((390, 844), (1280, 900)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(OUT / f"rights-{name}.{width}.png"), full_page=True)
        if width == 390:
            assert not page.evaluate(
                "document.documentElement.scrollWidth > window.innerWidth + 1"), name
    page.set_viewport_size(size)


def test_export_close_and_staff_processing(phone, laptop, member, owner):
    loyalty.adjust(db.session, member_id=member.id, kind=AccountKind.POINTS, delta=250,
                   reason="welcome", key="journey", operator_id=owner.id)
    old_card = db.session.scalars(select(MemberCard.number)
                                  .where(MemberCard.member_id == member.id)).one()
    mobile = member.mobile
    db.session.commit()

    member_sign_in(phone, member)
    phone.goto("/me")
    phone.locator("#my-data").click()
    phone.wait_for_url("**/me/data")
    _shoot(phone, "data")
    with phone.expect_download() as download:
        phone.locator("#export").click()
    data = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert data["sections"]["profile"][0]["mobile"] == member.mobile
    assert [e["delta"] for e in data["sections"]["ledger_entries"]] == [250]

    phone.locator("#close-link").click()
    phone.wait_for_url("**/me/close")
    assert "250 points are lost" in phone.locator(".closure-effects").inner_text()
    phone.locator("#confirmation").fill("9999" if member.mobile[-4:] != "9999" else "8888")
    phone.locator("#confirm-close").click()
    phone.locator("#confirmation-error").wait_for()
    _shoot(phone, "close")
    phone.locator("#confirmation").fill(member.mobile[-4:])
    phone.locator("#note").fill("Moving abroad")
    phone.locator("#confirm-close").click()
    phone.wait_for_url("**/me/data")
    assert phone.locator("#withdraw").is_visible()

    staff_sign_in(laptop, owner)
    laptop.goto("/admin/data-requests")
    _shoot(laptop, "admin-list")
    laptop.get_by_role("button", name="Process").first.click()
    laptop.wait_for_url("**/admin/data-requests/*")
    assert "Moving abroad" in laptop.locator(".details").first.inner_text()
    _shoot(laptop, "admin-detail")
    laptop.once("dialog", lambda dialog: dialog.accept())
    laptop.locator("#close-account").click()
    laptop.wait_for_url("**/admin/data-requests")
    assert "No requests here" in laptop.locator("#results").inner_text()

    phone.goto("/card")
    phone.wait_for_url("**/sign-in**")
    db.session.expire_all()
    closed = db.session.get(Member, member.id)
    assert closed.closed_at is not None and closed.mobile is None
    # The number is free again: signing in starts a new, empty membership, never the old one.
    member_sign_in(phone, SimpleNamespace(mobile=mobile))
    assert old_card[-4:] not in phone.locator("main").inner_text()
    db.session.expire_all()
    assert db.session.scalar(select(Member.id).where(Member.mobile == mobile)) != member.id
    # Chromium notes the 422 the refused confirmation answered with; nothing else may show.
    assert [e for e in phone.console.errors if "status of 422" not in e] == []
    assert laptop.console.errors == []
