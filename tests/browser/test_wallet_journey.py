"""Topping up with the demo provider, and paying a bill with a short balance through the
smart top-up dialog, in a real browser."""
from __future__ import annotations

from portal.db import db
from portal.members.models import MemberCard
from portal.wallet import balance as wallet
from portal.wallet.models import SmartPlan, SmartTier, TopupPlan
from tests.browser.steps import member_sign_in
from tests.factories import StoreFactory


def _no_errors(page):
    assert [e for e in page.console.errors if "status of 409" not in e
            and "status of 422" not in e] == []


def test_top_up_with_the_demo_provider(phone, member):
    db.session.add(TopupPlan(kind="fixed", name="Top up 100", currency="CNY", status="active",
                             amount_minor=10000, bonus_minor=1000, bonus_points=0))
    db.session.commit()
    member_sign_in(phone, member)
    phone.goto("/topup")
    phone.get_by_text("Top up 100").click()
    phone.get_by_role("button", name="Pay").click()
    phone.wait_for_url("**/payments/demo/**")
    assert "no money moves" in phone.locator(".dev-banner").inner_text()
    phone.get_by_role("button", name="Pay ¥100.00 (demo)").click()
    phone.get_by_text("Paid. Thank you!").wait_for()
    phone.get_by_role("button", name="See what you got").click()
    phone.wait_for_url("**/balance")
    assert "¥110.00" in phone.content()
    _no_errors(phone)


def test_pay_a_bill_with_a_short_balance_through_the_smart_dialog(phone, member):
    store = StoreFactory(name="Harbour Bund")
    db.session.add(SmartPlan(name="Short? Top up", currency="CNY", status="active",
                             rounding_minor=10,
                             tiers=[SmartTier(position=1, kind="discount", multiplier_bp=12000,
                                              bonus_bp=800)]))
    db.session.commit()
    member_sign_in(phone, member)
    phone.goto("/pay")
    phone.get_by_label("Store").select_option(store.code)
    phone.get_by_label("Amount of the bill").fill("100")
    phone.get_by_role("button", name="Pay from my balance").click()
    dialog = phone.locator("dialog.offers")
    dialog.wait_for()
    assert "+ ¥8.00 bonus" in dialog.inner_text()
    dialog.get_by_role("button", name="Top up ¥120.00 and pay").click()
    phone.wait_for_url("**/payments/demo/**")
    phone.get_by_role("button", name="Pay ¥120.00 (demo)").click()
    phone.get_by_text("Paid. Thank you!").wait_for()
    db.session.commit()
    card = db.session.query(MemberCard).filter_by(member_id=member.id).one()
    assert wallet.balance(db.session, card.id).total == 2800   # 120 + 8 − the 100 bill
    _no_errors(phone)
