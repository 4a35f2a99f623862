"""Every page at phone and laptop width, in English and Chinese: no console or CSP errors,
no sideways scrolling on a phone. Screenshots land in screenshots/ for people to look at."""
from __future__ import annotations

from pathlib import Path

import pytest

from portal.db import db
from tests.browser.steps import member_sign_in, staff_sign_in
from tests.factories import PASSWORD, MemberFactory
from tests.fixtures import last_code

OUT = Path(__file__).resolve().parents[2] / "screenshots"
WIDTHS = {"phone": (390, 844), "laptop": (1280, 900)}
LOCALES = {"en": "en-US", "zh": "zh-CN"}


@pytest.fixture
def scene(member, link, owner, plan, store):
    from portal.members.models import CustomAttribute

    db.session.add(CustomAttribute(key="drink", name="Favourite drink", kind="text"))
    db.session.commit()
    MemberFactory(full_name="王小明", enroll_page_id=link.page_id, enroll_link_id=link.id,
                  enroll_campaign="spring", enroll_source="poster", id_number="110101199001021234")
    card = db.session.merge(member).cards[0]
    from portal.coupons import services as coupons
    from tests.factories import CouponTemplateFactory

    for i, (kind, extra) in enumerate((("cash", {}), ("discount", {"percent_off": 1500,
                                                                    "amount_minor": None}),
                                       ("gift", {"gift_item": "Free latte",
                                                 "amount_minor": None}))):
        t = CouponTemplateFactory(kind=kind, title=f"Welcome treat {i}", valid_days=2 + i * 20,
                                  min_spend_minor=3000 if i == 0 else None,
                                  theme=("teal", "indigo", "amber")[i], **extra)
        coupons.issue(db.session, member_id=member.id, template_id=t.id,
                      source=coupons.Source("test"), key=f"scene:{i}")
    first_coupon = coupons.wallet(db.session, member.id, "available")[0][0]
    from datetime import timedelta

    from portal import clock
    from portal.campaigns.models import Activity, ActivityGift

    activity = Activity(kind="profile_completion", name="Complete your profile",
                        code="PROFILE", description="Tell us a little more about you.",
                        starts_at=clock.now() - timedelta(days=1),
                        ends_at=clock.now() + timedelta(days=30), status="active",
                        required_fields=["full_name", "born_on", "email", "mobile"],
                        points=50, gifts=[ActivityGift(template_id=first_coupon.template_id,
                                                       delay="days", delay_amount=1)])
    db.session.add(activity)
    from portal.wallet.models import TopupPlan

    topup_plan = TopupPlan(
        kind="range", name="Spring prepaid bonus", currency="CNY", status="active",
        min_minor=10_000, max_minor=50_000, bonus_bp=1000, points_bp=500, first_bonus=True,
        first_bonus_bp=500, first_points_bp=300, stock_total=500, stock_left=480,
        schedule={"frequency": "weekly", "days": [4, 5], "times": "per_date",
                  "per_date": {"4": ["10:00", "22:00"], "5": ["09:00", "23:00"]}},
        description="Top up ¥100 to ¥500 and get 10% more.")
    db.session.add(topup_plan)
    from portal.wallet.models import SmartPlan, SmartTier

    fixed_plan = TopupPlan(kind="fixed", name="Top up ¥200", currency="CNY", status="active",
                           amount_minor=20_000, bonus_minor=3_000, bonus_points=100,
                           description="¥30 more to spend, and 100 points.")
    db.session.add_all([fixed_plan, SmartPlan(
        name="Short? Top up", currency="CNY", status="active", rounding_minor=100,
        tiers=[SmartTier(position=1, kind="discount", multiplier_bp=12000, bonus_bp=800),
               SmartTier(position=2, kind="fixed", amount_minor=30_000, bonus_minor=3_000,
                         bonus_points=300)])])
    db.session.commit()
    from portal.db import transaction
    from portal.wallet import balance as wallet
    from portal.wallet import topups

    with transaction(db.session):
        wallet.credit(db.session, db.session.merge(card), principal=4_550, bonus=500,
                      key="scene", reason="topup", source=("topup", 0))
    topup = topups.start(db.session, member_id=member.id, card_id=card.id,
                         plan_id=fixed_plan.id)
    from flask import current_app

    from portal.payments import services as payments

    with current_app.test_request_context():
        payments.open_checkout(db.session, topup.payment_id, success_url="/", cancel_url="/")
    from portal.payments.models import Payment

    token = db.session.get(Payment, topup.payment_id).token
    payment_id = topup.payment_id
    return {"coupon": first_coupon, "member": member, "owner": owner, "link": link,
            "page": link.page, "card": card, "activity": activity.id,
            "topup_plan": topup_plan.id, "fixed_plan": fixed_plan.id, "payment": token,
            "payment_id": payment_id}


def _watch(page) -> list[str]:
    """Console errors, less Chromium's note about the 422 a refused form answers with."""
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and "status of 422" not in m.text
            and errors.append(m.text))
    return errors


def _context(browser, live_server, width, locale):
    w, h = WIDTHS[width]
    return browser.new_context(viewport={"width": w, "height": h}, base_url=live_server,
                               locale=LOCALES[locale])


def _shoot(page, name, width, locale, errors):
    page.wait_for_load_state("networkidle")
    OUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUT / f"{name}.{width}.{locale}.png"), full_page=True)
    if width == "phone":
        overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1")
        assert not overflow, f"{name} scrolls sideways at 390px ({locale})"
    assert errors == [], f"{name}: {errors}"


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("width", WIDTHS)
def test_member_screens(browser, live_server, csrf_live, scene, width, locale):
    context = _context(browser, live_server, width, locale)
    page = context.new_page()
    errors = _watch(page)
    slug, mobile = scene["page"].slug, scene["member"].mobile
    for name, url in (("home", "/"), ("sign-in", "/sign-in"), ("register", f"/r/{slug}"),
                      ("not-found", "/nope")):
        page.goto(url)
        _shoot(page, name, width, locale, errors if name != "not-found" else [])
        errors.clear()
    page.goto(f"/r/{slug}")
    page.locator("form#form button[type=submit]").click()  # empty form: field messages
    page.locator(".field-error").first.wait_for()
    _shoot(page, "register-errors", width, locale, errors)
    page.goto("/sign-in")
    page.locator("#mobile").fill(mobile)
    page.locator("form#form button[type=submit]").click()
    page.wait_for_url("**/verify")
    _shoot(page, "verify", width, locale, errors)
    page.locator("#code").fill(last_code(mobile))
    page.locator("form#form button[type=submit]").click()
    page.wait_for_url("**/card")
    for name, url in (("card", "/card"), ("card-detail", f"/cards/{scene['card'].id}"),
                      ("profile", "/me"), ("profile-edit", "/me/edit"),
                      ("mobile-change", "/me/mobile"), ("wallet", "/wallet"),
                      ("wallet-used", "/wallet?tab=used"),
                      ("coupon", f"/wallet/{scene['coupon'].id}"), ("inbox", "/inbox"),
                      ("points", "/points"), ("activity", "/activities/PROFILE"),
                      ("balance", "/balance"), ("topup", "/topup"),
                      ("topup-plan", f"/topup/{scene['fixed_plan']}?card={scene['card'].id}"),
                      ("pay", "/pay"), ("demo-checkout", f"/payments/demo/{scene['payment']}"),
                      ("payment-status", f"/payments/{scene['payment']}")):
        page.goto(url)
        _shoot(page, name, width, locale, errors)
    page.goto("/pay")
    page.locator("#store").select_option(index=1)
    page.locator("#amount").fill("128")
    page.locator("#bill button[type=submit]").click()
    page.locator("dialog.offers").wait_for()
    _shoot(page, "pay-offers", width, locale, [e for e in errors if "status of 409" not in e])
    errors.clear()
    context.close()


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("width", WIDTHS)
def test_admin_screens(browser, live_server, csrf_live, scene, width, locale):
    from portal.db import transaction
    from portal.giftcards.models import GiftCard, GiftCardProduct

    gift = GiftCardProduct(kind="electronic", name="2026 Spring Festival Gift Card",
                           currency="CNY", status="active", design="festive",
                           denominations=[10_000, 20_000, 50_000], discount_bp=1000,
                           custom_amount=True, custom_min_minor=5_000,
                           custom_max_minor=500_000, validity_days=365,
                           terms="Not redeemable for cash.")
    with transaction(db.session):
        db.session.add_all([gift, GiftCardProduct(kind="physical", name="Mid-Autumn card",
                                                   currency="CNY", design="gold",
                                                   denominations=[20_000])])
        db.session.flush()
        db.session.add_all([GiftCard(product_id=gift.id, number=f"70000000000000{i:02d}",
                                     currency="CNY", face_minor=20_000, price_minor=18_000,
                                     status="active") for i in range(3)])
        sold = GiftCard(product_id=gift.id, number="7000000000000099", currency="CNY",
                        face_minor=20_000, price_minor=18_000, recipient_name="Ada",
                        recipient_email="ada@example.com", claim_token="scene-gift")
        db.session.add(sold)
        db.session.flush()
        from portal.giftcards import cards as giftcards

        giftcards.activate(db.session, sold, key="scene")
        gift_id, sold_id = gift.id, sold.id
    context = _context(browser, live_server, width, locale)
    page = context.new_page()
    errors = _watch(page)
    page.goto("/admin/sign-in")
    _shoot(page, "admin-sign-in", width, locale, errors)
    page.locator("#email").fill(scene["owner"].email)
    page.locator("#password").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    page.wait_for_url("**/admin/")
    pid, lid, mid = scene["page"].id, scene["link"].id, scene["member"].id
    from sqlalchemy import select

    from portal.wallet.models import SmartPlan

    sid = db.session.scalar(select(SmartPlan.id).limit(1))
    for name, url in (("admin-overview", "/admin/"), ("admin-members", "/admin/members"),
                      ("admin-member", f"/admin/members/{mid}"),
                      ("admin-member-new", "/admin/members/new"),
                      ("admin-pages", "/admin/pages"), ("admin-page-new", "/admin/pages/new"),
                      ("admin-page-edit", f"/admin/pages/{pid}"),
                      ("admin-link", f"/admin/links/{lid}"),
                      ("admin-link-print", f"/admin/links/{lid}/print"),
                      ("admin-audit", "/admin/audit"),
                      ("admin-attributes", "/admin/attributes"),
                      ("admin-coupons", "/admin/coupons"),
                      ("admin-coupon-new", "/admin/coupons/new"),
                      ("admin-coupon-edit", f"/admin/coupons/{scene['coupon'].template_id}"),
                      ("admin-coupon-packages", "/admin/coupon-packages"),
                      ("admin-api-clients", "/admin/api-clients"),
                      ("admin-loyalty", "/admin/loyalty"),
                      ("admin-loyalty-rule", f"/admin/loyalty/{scene['card'].plan_id}"),
                      ("admin-tiers", f"/admin/loyalty/{scene['card'].plan_id}/tiers"),
                      ("admin-activities", "/admin/activities"),
                      ("admin-activity-new", "/admin/activities/new/reengagement"),
                      ("admin-activity-edit", f"/admin/activities/{scene['activity']}"),
                      ("admin-activity-performance",
                       f"/admin/activities/{scene['activity']}/performance"),
                      ("admin-payments", "/admin/payments"),
                      ("admin-payment", f"/admin/payments/{scene['payment_id']}"),
                      ("admin-topups", "/admin/topups"),
                      ("admin-topup-new", "/admin/topups/new/fixed"),
                      ("admin-topup-new-custom", "/admin/topups/new/custom"),
                      ("admin-topup-edit", f"/admin/topups/{scene['topup_plan']}"),
                      ("admin-topup-details", f"/admin/topups/{scene['topup_plan']}/details"),
                      ("admin-topup-codes", f"/admin/topups/{scene['topup_plan']}/codes"),
                      ("admin-smart", "/admin/smart-topups"),
                      ("admin-smart-new", "/admin/smart-topups/new"),
                      ("admin-smart-edit", f"/admin/smart-topups/{sid}?bill=86.50"),
                      ("admin-giftcards", "/admin/giftcards"),
                      ("admin-giftcards-sold", "/admin/giftcards/sold"),
                      ("admin-giftcard-sold-detail", f"/admin/giftcards/sold/{sold_id}"),
                      ("admin-giftcard-transactions", "/admin/giftcards/transactions"),
                      ("admin-giftcard-import", "/admin/giftcards/import"),
                      ("admin-giftcard-new", "/admin/giftcards/new"),
                      ("admin-giftcard-edit", f"/admin/giftcards/{gift_id}")):
        page.goto(url)
        _shoot(page, name, width, locale, errors)
    page.goto(f"/admin/members/{mid}")
    page.locator("form[action$='/preview'] button").click()
    page.wait_for_url("**/card")
    _shoot(page, "admin-preview", width, locale, errors)
    context.close()


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("width", WIDTHS)
def test_message_screens(browser, live_server, csrf_live, scene, width, locale):
    """The merchant's message settings (also refused), and typed messages in the inbox."""
    from portal.db import transaction
    from portal.notifications import services as notifications
    from portal.notifications.models import MessageKind

    member = scene["member"]
    with transaction(db.session):
        notifications.send(db.session, MessageKind.TIER_CHANGED, member.id,
                           {"tier": "Gold", "plan": "Coffee club", "up": True})
        notifications.send(db.session, MessageKind.POINTS_EXPIRING, member.id,
                           {"points": 1200, "on": "2027-01-01"})
        notifications.send(db.session, MessageKind.GIFT_DELIVERED, member.id,
                           {"activity": "Complete your profile", "points": 50,
                            "titles": ["Welcome treat 0"]})
    context = _context(browser, live_server, width, locale)
    page = context.new_page()
    errors = _watch(page)
    staff_sign_in(page, scene["owner"])
    page.goto("/admin/messages")
    _shoot(page, "admin-messages", width, locale, errors)
    page.locator("#points_expiring-lead_days").fill("0")
    page.locator("form.panel button[type=submit]").click()
    page.locator(".field-error").first.wait_for()
    _shoot(page, "admin-messages-errors", width, locale, errors)
    context.close()
    context = _context(browser, live_server, width, locale)
    page = context.new_page()
    errors = _watch(page)
    member_sign_in(page, member)
    _shoot(page, "inbox-badge-card", width, locale, errors)
    page.goto("/inbox")
    _shoot(page, "inbox-messages", width, locale, errors)
    context.close()


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("width", WIDTHS)
def test_segment_screens(browser, live_server, csrf_live, scene, width, locale):
    """Segments: the list, the editor with its live count (HTMX), a refused save."""
    from datetime import date

    from portal.members import segments

    member = db.session.merge(scene["member"])
    member.born_on, member.enroll_source = date(1990, 3, 8), "poster"
    from portal.ledger import Account, AccountKind

    db.session.add(Account(kind=AccountKind.POINTS.value, owner_type="member",
                           owner_id=member.id, balance=1200))
    db.session.commit()
    plan_id = scene["card"].plan_id
    segment = segments.create_segment(
        db.session, name="Spring birthdays on the card", match="all", operator_id=None,
        rules=[{"field": "plan", "value": [plan_id]}, {"field": "birthday_month", "value": [3, 4]},
               {"field": "points", "value": {"min": 100, "max": 5000}}])
    segments.create_segment(
        db.session, name="Lapsed poster sign-ups", match="any", operator_id=None,
        rules=[{"field": "enroll_source", "value": ["poster"]},
               {"field": "days_since_purchase", "op": "gte", "value": 60}])
    segments.tag_segment(db.session, segment.id, "Spring", None)
    context = _context(browser, live_server, width, locale)
    page = context.new_page()
    errors = _watch(page)
    staff_sign_in(page, scene["owner"])
    page.goto("/admin/segments")
    _shoot(page, "admin-segments", width, locale, errors)
    page.goto(f"/admin/segments/{segment.id}")
    _shoot(page, "admin-segment-edit", width, locale, errors)
    page.locator("#birthday_month-2").uncheck()                    # March: no one left
    page.locator("button[formaction]").click()                     # "Count members"
    page.locator("#live_count strong", has_text="0").wait_for()    # 1 before
    assert page.url.endswith(f"/admin/segments/{segment.id}")      # nothing was saved
    page.goto("/admin/segments/new")
    page.locator("#enroll_source-0").check()
    page.locator("#live_count strong").wait_for()   # the live count came back over HTMX
    page.locator("#points_min").fill("9")
    page.locator("#points_max").fill("1")
    page.locator("form.panel button[type=submit]").first.click()
    page.locator(".field-error").first.wait_for()
    _shoot(page, "admin-segment-errors", width, locale, errors)
    context.close()


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("width", WIDTHS)
def test_giftcard_screens(browser, live_server, csrf_live, scene, width, locale):
    """The gift card shop, buying, a held card, its claim page and the balance check."""
    from portal.db import transaction
    from portal.giftcards import cards, purchase
    from portal.giftcards.models import GiftCardProduct

    gift = GiftCardProduct(kind="electronic", name="Spring gift card", currency="CNY",
                           status="active", design="festive", channels=["ONLINE", "POS"],
                           denominations=[10_000, 20_000, 50_000], discount_bp=1000,
                           custom_amount=True, custom_min_minor=5_000,
                           custom_max_minor=500_000, validity_days=365,
                           terms="Not redeemable for cash.")
    with transaction(db.session):
        db.session.add(gift)
    card = purchase.buy(db.session, purchase.Order(
        product_id=gift.id, amount_minor=20_000, for_friend=True, recipient_name="Ada",
        recipient_email="ada@example.com", message="Happy spring!", buyer_name="Mei"),
        member_id=None)
    from portal import clock
    from portal.giftcards import spending
    from portal.payments.models import Payment
    from tests.factories import StoreFactory

    with transaction(db.session):
        cards.activate(db.session, card, key="screens")
        card.holder_member_id = scene["member"].id
        card.sent_at = card.claimed_at = clock.now()
    spending.charge(db.session, number=card.number, amount_minor=3_650, currency="CNY",
                    idempotency_key="screens", store_id=StoreFactory(name="Harbour Bund").id)
    sent = purchase.buy(db.session, purchase.Order(        # the member's gift, not claimed
        product_id=gift.id, amount_minor=50_000, for_friend=True, recipient_name="Li Lei",
        recipient_phone="13912345678", message="Thank you for everything."),
        member_id=scene["member"].id)
    with transaction(db.session):
        cards.activate(db.session, sent, key="screens-sent")
        sent.sent_at = clock.now()
    guest_gift = db.session.get(Payment, card.payment_id).token
    member_gift = db.session.get(Payment, sent.payment_id).token
    context = _context(browser, live_server, width, locale)
    page = context.new_page()
    errors = _watch(page)
    for name, url in (("giftcard-shop-guest", "/giftcards"),
                      ("giftcard-buy", f"/giftcards/buy/{gift.id}"),
                      ("giftcard-sent", f"/giftcards/sent/{guest_gift}"),
                      ("giftcard-balance", "/giftcards/balance")):
        page.goto(url)
        _shoot(page, name, width, locale, errors)
    page.locator("#number").fill(card.number)
    page.locator("#pin").fill(cards.pin_for(card.number))
    page.locator("form button[type=submit]").click()
    page.locator(".payment__amount").wait_for()
    _shoot(page, "giftcard-balance-result", width, locale, errors)
    member_sign_in(page, scene["member"])
    for name, url in (("giftcard-shop", "/giftcards"),
                      ("giftcard-card", f"/giftcards/mine/{card.id}"),
                      ("giftcard-sent-member", f"/giftcards/sent/{member_gift}"),
                      ("giftcard-claim", f"/giftcards/claim/{card.claim_token}")):
        page.goto(url)
        _shoot(page, name, width, locale, errors)
    context.close()


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("width", WIDTHS)
def test_benefit_screens(browser, live_server, csrf_live, scene, width, locale):
    from datetime import date

    from sqlalchemy import select

    from portal.benefits import manage
    from portal.members.models import Member, Tier

    owner, plan_id = scene["owner"], scene["card"].plan_id
    db.session.add(Tier(plan_id=plan_id, name="Gold", rank=1))
    db.session.get(Member, scene["member"].id).born_on = date(1990, 6, 15)
    db.session.commit()
    gold = db.session.scalar(select(Tier.id).where(Tier.name == "Gold"))
    for kind, data in (
            ("member_day", {"name": "Friday Member Day", "brief": "5% off and double points",
                            "discount_bp": 500, "multiplier_bp": 20_000,
                            "schedule": {"frequency": "weekly", "days": [4], "times": "window",
                                         "window": ["10:00", "22:00"]},
                            "tier_perks": [{"tier_id": gold, "discount_bp": 500,
                                            "note": "Gold: a further 5% off"}]}),
            ("birthday", {"name": "Birthday week", "birthday_window": "week",
                          "discount_bp": 2000}),
            ("member_price", {"name": "Member latte price", "brief": "A latte for 18",
                              "prices": [{"product_id": "LATTE", "price_minor": 1800}]}),
            ("discount", {"name": "Gold 10% off", "discount_bp": 1000, "tier_ids": [gold]})):
        b = manage.create(db.session, kind, data, operator_id=owner.id)
    context = _context(browser, live_server, width, locale)
    page = context.new_page()
    errors = _watch(page)
    page.goto("/admin/sign-in")
    page.locator("#email").fill(owner.email)
    page.locator("#password").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    page.wait_for_url("**/admin/")
    for name, url in (("admin-benefits", "/admin/benefits"),
                      ("admin-benefit-kinds", "/admin/benefits/new"),
                      ("admin-benefit-new-member-day", "/admin/benefits/new/member_day"),
                      ("admin-benefit-new-price", "/admin/benefits/new/member_price"),
                      ("admin-benefit-edit", f"/admin/benefits/{b.id - 1}")):
        page.goto(url)
        _shoot(page, name, width, locale, errors)
    page.goto("/admin/benefits/new/extension")
    page.locator("#name").fill("+30 days")
    page.locator("#extension_days").fill("30")
    page.locator("form.activity-form button[value=save]").click()
    page.locator(".field-error").first.wait_for()
    _shoot(page, "admin-benefit-errors", width, locale, errors)
    member_sign_in(page, scene["member"])
    for name, url in (("benefits", "/benefits"), ("benefit", f"/benefits/{b.id - 1}")):
        page.goto(url)
        _shoot(page, name, width, locale, errors)
    context.close()


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("width", WIDTHS)
def test_student_screens(browser, live_server, csrf_live, scene, width, locale, app,
                         tmp_path, monkeypatch):
    """Student ID: the member's page (approved, with a request pending) and the admin's
    dashboard, queue, review and settings."""
    import io
    from datetime import timedelta

    from PIL import Image

    from portal import clock
    from portal.students import services as students
    from tests.factories import CouponTemplateFactory

    monkeypatch.setitem(app.config, "UPLOAD_DIR", str(tmp_path))
    owner, member = scene["owner"], scene["member"]
    students.save_settings(db.session, {
        "validity_months": 12, "tag_name": "Student", "page_title": "Students save more",
        "page_intro": "Verify your student ID once: student prices all year.",
        "perks": "10% off every order\nA free coffee when you are verified",
        "gift_kind": "coupon", "gift_template_id": CouponTemplateFactory(title="Campus latte").id,
        "gift_rule": "first", "reminder_days": 14, "photo_retention_days": 30},
        operator_id=owner.id)

    def send(member_id):
        photo = io.BytesIO()
        Image.new("RGB", (640, 400), (203, 213, 225)).save(photo, "JPEG")
        photo.seek(0)
        photo.filename = "card.jpg"
        return students.submit(db.session, member_id, school="Fudan University",
                               student_number="20260001", consent=True, photo=photo,
                               graduation_on=clock.today() + timedelta(days=700))

    students.approve(db.session, send(member.id).id, operator_id=owner.id)
    pending = send(member.id)
    context = _context(browser, live_server, width, locale)
    page = context.new_page()
    errors = _watch(page)
    member_sign_in(page, member)
    page.goto("/student")
    _shoot(page, "student", width, locale, errors)
    staff_sign_in(page, owner)
    for name, url in (("admin-students", "/admin/students"),
                      ("admin-student-requests", "/admin/students/requests"),
                      ("admin-student-review", f"/admin/students/requests/{pending.id}"),
                      ("admin-student-settings", "/admin/students/settings")):
        page.goto(url)
        _shoot(page, name, width, locale, errors)
    context.close()


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("width", WIDTHS)
def test_package_screens(browser, live_server, csrf_live, scene, width, locale, app, store):
    """Step 7 beyond the benefit list: every benefit kind's form, the quote preview (empty
    and with reasons), and paid packages for the member (a running and a stacked period)
    and the merchant (list, form, sales, settings)."""
    from urllib.parse import urlencode

    from portal.benefits import manage, packages, purchases
    from portal.payments import services as payments
    from portal.payments.models import Payment
    from portal.payments.providers import DemoProvider
    from tests.factories import CouponTemplateFactory

    owner, member = scene["owner"], scene["member"]
    ten = manage.create(db.session, "discount", {"name": "Members 10% off",
                                                 "discount_bp": 1000}, operator_id=owner.id)
    manage.create(db.session, "member_price", {
        "name": "Member latte price", "prices": [{"product_id": "LATTE", "price_minor": 1800}]},
        operator_id=owner.id)
    manage.create(db.session, "birthday", {"name": "Birthday week", "birthday_window": "week",
                                           "discount_bp": 2000}, operator_id=owner.id)
    double = manage.create(db.session, "multiplier", {"name": "Double points",
                                                      "multiplier_bp": 20_000},
                           operator_id=owner.id)
    gift = CouponTemplateFactory(title="Welcome coffee")
    club = packages.create(db.session, {
        "name": "Premium Club", "currency": "CNY", "channels": ["POS", "ONLINE"],
        "description": "10% off every order and double points, all month.",
        "agreement": "Packages are not refundable once a coupon is used.",
        "terms": "Valid in every store.", "faq": "Can I renew early? Yes: it stacks.",
        "tags": ["Monthly"],
        "rules": [{"duration_days": 30, "original_minor": 19900, "first_minor": 15900,
                   "renewal_minor": 16900},
                  {"duration_days": 90, "original_minor": 49900, "repeat_minor": 45900}],
        "items": [{"kind": "first_gift", "name": "Welcome gift", "points": 100,
                   "coupon_template_id": gift.id},
                  {"kind": "discount", "name": "10% off", "benefit_id": ten.id},
                  {"kind": "multiplier", "name": "Double points", "benefit_id": double.id}]},
        operator_id=owner.id, activate=True)
    packages.create(db.session, {
        "name": "Weekend Brunch Pass", "currency": "CNY", "channels": ["ONLINE"],
        "schedule": {"frequency": "weekly", "days": [5, 6], "times": "per_date",
                     "per_date": {"5": ["09:00", "14:00"], "6": ["09:00", "15:00"]}},
        "rules": [{"duration_days": 7, "original_minor": 5900}], "items": []},
        operator_id=owner.id, activate=True)
    for _ in range(2):          # the first period runs, the early renewal starts after it
        purchase = purchases.start(db.session, member_id=member.id, package_id=club.id,
                                   rule_id=club.rules[0].id, agreed=True)
        payment = db.session.get(Payment, purchase.payment_id)
        payment.provider_session_id = f"demo_cs_{payment.token}"
        db.session.commit()
        payments.receive(db.session, *DemoProvider(app.config["SECRET_KEY"]).event(payment,
                                                                                   "paid"))
    card_no = scene["card"].number
    basket = {"member": card_no, "store_id": store.id, "channel": "POS",
              "rows": 3, "quote": 1}
    for i, (product, category, quantity, price) in enumerate(
            (("LATTE", "Coffee", 2, "28.00"), ("CAKE", "Bakery", 1, "35.00"),
             ("BEANS", "Retail", 1, "88.00"))):
        basket.update({f"product_id_{i}": product, f"category_{i}": category,
                       f"quantity_{i}": quantity, f"unit_price_{i}": price})
    context = _context(browser, live_server, width, locale)
    page = context.new_page()
    errors = _watch(page)
    staff_sign_in(page, owner)
    for name, url in (
            *((f"admin-benefit-new-{kind}", f"/admin/benefits/new/{kind}") for kind in (
                "marketing", "promotion", "discount", "birthday", "multiplier", "extension",
                "service", "custom")),
            ("admin-quote", "/admin/benefits/quote"),
            ("admin-quote-result", f"/admin/benefits/quote?{urlencode(basket)}"),
            ("admin-packages", "/admin/packages"),
            ("admin-package-new", "/admin/packages/new"),
            ("admin-package-edit", f"/admin/packages/{club.id}"),
            ("admin-package-per-date", f"/admin/packages/{club.id + 1}"),
            ("admin-package-sales", f"/admin/packages/{club.id}/sales"),
            ("admin-package-settings", "/admin/packages/settings")):
        page.goto(url)
        _shoot(page, name, width, locale, errors)
    member_sign_in(page, member)
    for name, url in (("packages", "/packages"), ("package", f"/packages/{club.id}"),
                      ("packages-mine", "/packages/mine")):
        page.goto(url)
        _shoot(page, name, width, locale, errors)
    context.close()


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("width", WIDTHS)
def test_dashboard_and_preview_screens(browser, live_server, csrf_live, scene, width, locale,
                                       plan):
    """Step 9: the dashboard with a month of data (registrations by source, tiers, coupons,
    top-ups, gift card and package sales), a custom period with a refused date, the
    "Preview as…" form and a synthetic profile's card and top-up page."""
    from datetime import timedelta

    from portal import clock
    from portal.benefits import packages
    from portal.benefits.models import PackagePurchase
    from portal.coupons import services as coupons
    from portal.coupons.models import Coupon
    from portal.giftcards.models import GiftCard, GiftCardProduct
    from portal.members.models import Tier
    from portal.wallet.models import Topup
    from tests.factories import CouponTemplateFactory
    from tests.fixtures import member_with_card

    owner, now = scene["owner"], clock.now()
    p = db.session.merge(plan)
    db.session.add_all([Tier(plan_id=p.id, name="Silver", rank=1),
                        Tier(plan_id=p.id, name="Gold", rank=2)])
    db.session.commit()
    tiers = db.session.merge(plan).tiers
    product = GiftCardProduct(kind="electronic", name="Thank-you card", currency="CNY",
                              status="active", denominations=[10_000, 20_000],
                              channels=["ONLINE"])
    db.session.add(product)
    db.session.commit()
    club = packages.create(db.session, {
        "name": "Premium Club", "currency": "CNY", "channels": ["ONLINE"],
        "description": "10% off all month.",
        "rules": [{"duration_days": 30, "original_minor": 19_900}], "items": []},
        operator_id=owner.id, activate=True)
    template = CouponTemplateFactory(title="Welcome latte")
    sources = ("poster", "wechat", "staff", None, "pos")
    for i in range(40):
        at = now - timedelta(days=i % 28, hours=i % 5)
        m = db.session.merge(member_with_card(plan))
        m.became_member_at, m.enroll_source = at, sources[i % 5] if i % 7 else "wechat"
        m.cards[0].tier_id = tiers[(i % 6) // 3 + (1 if i % 11 == 0 else 0)].id
        db.session.commit()
        issued = coupons.issue(db.session, member_id=m.id, source=coupons.Source("test"),
                               key=f"dash:{i}", template_id=template.id, quantity=1 + i % 2)
        for c in issued:
            db.session.get(Coupon, c.id).issued_at = at - timedelta(days=i % 3)
        if i % 3 == 0:
            c = db.session.get(Coupon, issued[0].id)
            c.status, c.used_at = "used", at + timedelta(hours=2)
        if i % 2 == 0:
            db.session.add(Topup(member_id=m.id, card_id=m.cards[0].id, currency="CNY",
                                 amount_minor=10_000 * (1 + i % 4), status="credited",
                                 credited_at=at))
        if i % 4 == 1:
            db.session.add(GiftCard(product_id=product.id, number=f"66{i:014d}", currency="CNY",
                                    face_minor=20_000, price_minor=18_000, status="active",
                                    activated_at=at))
        if i % 5 == 2:
            db.session.add(PackagePurchase(package_id=club.id, rule_id=club.rules[0].id,
                                           member_id=m.id, status="paid", price_kind="original",
                                           price_minor=19_900, currency="CNY", paid_at=at))
        db.session.commit()
    context = _context(browser, live_server, width, locale)
    page = context.new_page()
    errors = _watch(page)
    staff_sign_in(page, owner)
    for name, url in (("admin-dashboard", "/admin/?days=30"),
                      ("admin-dashboard-7", "/admin/?days=7"),
                      ("admin-dashboard-range", "/admin/?from=2026-13-01&to=2026-11-30")):
        page.goto(url)
        _shoot(page, name, width, locale, errors)
    page.goto(f"/admin/topups/{scene['topup_plan']}")
    page.locator("a[href*='/admin/preview/topup/']").click()
    page.wait_for_url("**/admin/preview/topup/*")
    _shoot(page, "admin-preview-as", width, locale, errors)
    page.locator("input[name=who][value=synthetic]").check()
    page.locator("#tier_id").select_option(index=3)
    page.locator("#name").fill("Pat Preview")
    page.locator("#born_on").fill("1992-06-15")
    page.locator("#prepaid").fill("388.50")
    page.locator("#points").fill("2400")
    page.locator("form.preview-form button[type=submit]").click()
    page.wait_for_url("**/topup")
    _shoot(page, "preview-synthetic-topup", width, locale, errors)
    page.goto("/card")
    _shoot(page, "preview-synthetic-card", width, locale, errors)
    context.close()


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("width", WIDTHS)
def test_card_and_member_centre_screens(browser, live_server, csrf_live, scene, width, locale,
                                        clerk):
    """Cards list and edit (a refused freeze), the member centre (a found member, an unknown
    number, add member), member attributes with system rows, a custom-attribute segment."""
    from portal.db import transaction
    from portal.loyalty import services as loyalty

    card, member = scene["card"], db.session.merge(scene["member"])
    loyalty.adjust(db.session, member_id=member.id, kind="points", delta=1280, reason="test",
                   key="screens:points", operator_id=scene["owner"].id)
    with transaction(db.session):
        member.custom = {"drink": "Oat latte"}
    context = _context(browser, live_server, width, locale)
    page = context.new_page()
    errors = _watch(page)
    staff_sign_in(page, scene["owner"])
    page.goto("/admin/cards")
    _shoot(page, "admin-cards", width, locale, errors)
    page.goto(f"/admin/cards/{card.id}")
    page.locator("#status").select_option("frozen")
    page.locator("form.form-grid button[type=submit]").first.click()
    page.locator("#reason-error").wait_for()
    _shoot(page, "admin-card-edit-errors", width, locale, errors)
    page.goto("/admin/attributes")
    _shoot(page, "admin-attributes-system", width, locale, errors)
    page.goto("/admin/segments/new")
    page.locator("#custom_key").select_option("drink")
    page.locator("#custom_op").select_option("contains")
    page.locator("#custom_value").fill("latte")
    page.locator("#live_count strong").wait_for()
    _shoot(page, "admin-segment-custom", width, locale, errors)
    context.close()
    context = _context(browser, live_server, width, locale)
    page = context.new_page()
    errors = _watch(page)
    staff_sign_in(page, clerk)
    page.goto("/admin/till")
    page.locator("#till-q").fill(card.number)
    page.locator("#till-q").press("Enter")
    page.locator("#member-title").wait_for()
    _shoot(page, "admin-till-member", width, locale, errors)
    page.locator("#till-q").fill("13912340000")
    page.locator("#till-q").press("Enter")
    page.locator("#result .empty").wait_for()
    _shoot(page, "admin-till-unknown", width, locale, errors)
    page.goto("/admin/till/join?mobile=13912340000")
    _shoot(page, "admin-till-join", width, locale, errors)
    context.close()


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("width", WIDTHS)
def test_customer_import_screens(browser, live_server, csrf_live, scene, width, locale, app,
                                 tmp_path, monkeypatch):
    """The customer import: the upload page with its history, and a finished run with a
    failed row (its counts and the download of the failed rows)."""
    from portal.imports import customers
    from tests.unit.test_xlsx import workbook

    monkeypatch.setitem(app.config, "UPLOAD_DIR", str(tmp_path))
    header = ["Mobile", "Name", "Type", "Card plan", "Tier", "Email", "Date of birth",
              "Gender", "Address", "ID number"]
    run = customers.start(db.session, workbook([
        header, ["13912345601", "Ada Lovelace", "Customer", "", "", "ada@example.com"],
        ["13912345602", "Grace Hopper", "Customer", "", "", "grace@@example"],
        ["13912345603", "Mary Somerville", "Customer"]]), filename="march-customers.xlsx",
        policy="skip", operator_id=scene["owner"].id)
    context = _context(browser, live_server, width, locale)
    page = context.new_page()
    errors = _watch(page)
    staff_sign_in(page, scene["owner"])
    for name, url in (("admin-customer-import", "/admin/members/import"),
                      ("admin-customer-import-run", f"/admin/members/import/{run.id}")):
        page.goto(url)
        _shoot(page, name, width, locale, errors)
    context.close()
