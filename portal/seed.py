"""Demo data for `make run`: one merchant with stores, plans, staff, a registration page
with tracking links, and 200 members from varied sources. Idempotent."""
from __future__ import annotations

import random
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import clock
from portal.api.services import create_client
from portal.benefits.models import (
    Benefit,
    BenefitKind,
    BenefitPackage,
    BenefitPackageItem,
    PackageRule,
)
from portal.campaigns.models import Activity, ActivityGift, ActivityKind, ActivityStatus
from portal.coupons import services as coupons
from portal.coupons.models import ClaimLink, CouponPackage, CouponTemplate, PackageItem
from portal.db import transaction
from portal.loyalty.models import EarningRule, TierSettings
from portal.members.models import (
    CardPlan,
    Member,
    PageStatus,
    RegistrationField,
    RegistrationPage,
    Segment,
    Store,
    Tier,
    TrackingLink,
)
from portal.members.services import issue_card
from portal.staff.models import Role, StaffUser
from portal.staff.services import hash_password
from portal.wallet.models import SmartPlan, SmartTier, TopupPlan

DEMO_PASSWORD = "tessera-demo"
GIVEN = ["Wei", "Fang", "Lei", "Jing", "Min", "Tao", "Yan", "Hui", "Emma", "Oliver", "Mia",
         "Lucas", "Chloe", "Noah", "Grace", "Leo", "Ava", "Ethan", "Ruby", "Sam"]
FAMILY = ["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Smith", "Brown",
          "Taylor", "Wilson", "Lee", "Martin", "Walker", "Young"]
SOURCES = [("spring-launch", "poster", "table-card"), ("spring-launch", "instagram", "story"),
           ("weekday-lunch", "flyer", "street"), (None, None, None), ("referral", "friend", None)]


def seed_demo(session: Session) -> dict[str, int]:
    if session.scalar(select(Store.id).where(Store.code == "HQ01")) is not None:
        return {}
    rng = random.Random(2026)
    with transaction(session):
        stores = [Store(name=n, code=c, organisation="Harbour Coffee Co.", store_group=g)
                  for n, c, g in (("Harbour Coffee · Bund", "HQ01", "Shanghai"),
                                  ("Harbour Coffee · Jing'an", "JA02", "Shanghai"),
                                  ("Harbour Coffee · Sanlitun", "SL03", "Beijing"))]
        session.add_all(stores)
        regular = CardPlan(name="Harbour Card", currency="CNY", validity_days=None,
                           color="#0f766e", is_default=True)
        student = CardPlan(name="Campus Card", currency="CNY", validity_days=365,
                           color="#7c3aed")
        session.add_all([regular, student])
        session.flush()
        session.add_all([Tier(plan_id=regular.id, name="Member", rank=0),
                         Tier(plan_id=regular.id, name="Silver", rank=1, threshold=500,
                              rule="window", window_months=12),
                         Tier(plan_id=regular.id, name="Gold", rank=2, threshold=2000,
                              rule="accumulated"),
                         Tier(plan_id=student.id, name="Student", rank=0)])
        # Levels are set up but not released: the demo shows "Save and release".
        session.add(TierSettings(plan_id=regular.id, enabled=False, on_change="realtime",
                                 validity="months", validity_months=12))
        staff = [
            StaffUser(email="owner@demo.tessera", name="Olivia Owner", role=Role.OWNER,
                      password_hash=hash_password(DEMO_PASSWORD)),
            StaffUser(email="manager@demo.tessera", name="Ming Manager", role=Role.MANAGER,
                      password_hash=hash_password(DEMO_PASSWORD)),
            StaffUser(email="clerk@demo.tessera", name="Chen Clerk", role=Role.CLERK,
                      store_id=stores[0].id, password_hash=hash_password(DEMO_PASSWORD)),
        ]
        session.add_all(staff)
        page = RegistrationPage(
            name="Spring launch", title="Join Harbour Coffee", slug="join",
            intro="Become a member: collect points on every cup and get a welcome treat.",
            plan_id=regular.id, status=PageStatus.PUBLISHED, published_at=clock.now(),
            share_title="Join Harbour Coffee", share_summary="Points on every cup.")
        page.fields = [RegistrationField(attribute="full_name", required=True, position=0),
                       RegistrationField(attribute="born_on", required=False, position=1),
                       RegistrationField(attribute="email", required=False, position=2)]
        session.add(page)
        session.flush()
        links = [TrackingLink(page_id=page.id, code=code, campaign=c or "", source=s or "",
                              content=t or "", visit_count=v)
                 for code, (c, s, t), v in (("poster1", SOURCES[0], 140),
                                            ("insta01", SOURCES[1], 210),
                                            ("flyer01", SOURCES[2], 95))]
        session.add_all(links)
        session.flush()
        page.visit_count = 520
        now = clock.now()
        for i in range(200):
            link = rng.choice(links + [None, None])
            campaign, source, content = ((link.campaign, link.source, link.content)
                                         if link else rng.choice(SOURCES[3:]))
            member = Member(
                full_name=f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}",
                mobile=f"+86138{i:08d}", mobile_verified=True,
                email=f"member{i}@example.com" if rng.random() < 0.6 else None,
                born_on=date(1960, 1, 1) + timedelta(days=rng.randrange(0, 16000))
                if rng.random() < 0.7 else None,
                gender=rng.choice(["female", "male", "other", "undisclosed", None]),
                enroll_page_id=page.id if link or rng.random() < 0.3 else None,
                enroll_link_id=link.id if link else None,
                enroll_campaign=campaign, enroll_source=source, enroll_content=content,
                enroll_store_id=rng.choice(stores).id,
                created_at=now - timedelta(days=rng.randrange(0, 120), minutes=i))
            session.add(member)
            session.flush()
            if i % 10 != 9:  # every tenth one stays a customer without a card
                issue_card(session, member, student if i % 7 == 0 else regular)
                member.became_member_at = member.created_at
                if rng.random() < 0.7:  # the rest never bought: lapsed since joining
                    member.last_purchase_at = now - timedelta(days=rng.randrange(0, 90))
        templates = [
            CouponTemplate(kind="cash", internal_name="Welcome ¥10", title="¥10 off your order",
                           subtitle="Welcome to Harbour Coffee", currency="CNY",
                           amount_minor=1000, min_spend_minor=3000, validity_kind="relative",
                           starts_after_days=0, valid_days=30, inventory_total=5000,
                           inventory_left=5000, per_member_limit=1, theme="teal",
                           instructions="Show the code at the till before you pay.",
                           status="active", product_ids=[], extra_fields={},
                           channels=["POS", "ONLINE"]),
            CouponTemplate(kind="discount", internal_name="Weekday 15%",
                           title="15% off, Monday to Friday", currency="CNY", percent_off=1500,
                           cap_minor=2000, validity_kind="relative", starts_after_days=0,
                           valid_days=14, theme="indigo", status="active", product_ids=[],
                           extra_fields={}, channels=["POS"]),
            CouponTemplate(kind="gift", internal_name="Free pastry", title="A free pastry",
                           gift_item="Free pastry", currency="CNY", validity_kind="relative",
                           starts_after_days=1, valid_days=7, theme="amber", status="active",
                           product_ids=["CROISSANT", "MUFFIN"], extra_fields={},
                           channels=["POS"]),
        ]
        session.add_all(templates)
        session.flush()
        session.add(CouponPackage(name="New member pack", items=[
            PackageItem(template_id=templates[0].id, quantity=1),
            PackageItem(template_id=templates[2].id, quantity=2)]))
        session.add(ClaimLink(token="welcome10", template_id=templates[0].id,
                              registration_page_id=page.id))
        session.add_all([
            TopupPlan(kind="fixed", name="Top up ¥100, get ¥10", currency="CNY",
                      status="active", amount_minor=10_000, bonus_minor=1_000,
                      bonus_points=50, description="¥110 to spend for ¥100."),
            TopupPlan(kind="fixed", name="Top up ¥300, get ¥40 and a pastry",
                      currency="CNY", status="active", amount_minor=30_000,
                      bonus_minor=4_000, bonus_points=150, gift_template_id=templates[2].id,
                      stock_total=200, stock_left=200),
            TopupPlan(kind="range", name="Your own amount: 8% more", currency="CNY",
                      status="active", min_minor=20_000, max_minor=200_000, bonus_bp=800,
                      points_bp=100, first_bonus=True, first_bonus_bp=200,
                      description="Top up ¥200 to ¥2,000; 10% more on your first top-up."),
            SmartPlan(name="Short of a bill? Top up and pay", currency="CNY",
                      status="active", rounding_minor=100, min_topup_minor=10_000,
                      tiers=[SmartTier(position=1, kind="discount", multiplier_bp=12_000,
                                       bonus_bp=800),
                             SmartTier(position=2, kind="gift", multiplier_bp=15_000,
                                       bonus_bp=1_000, points_bp=1_000,
                                       gift_template_id=templates[2].id),
                             SmartTier(position=3, kind="fixed", amount_minor=50_000,
                                       bonus_minor=6_000, bonus_points=500)]),
        ])
        session.add(BenefitPackage(
            name="Coffee Club", currency="CNY", status="active", tags=["Quarterly"],
            channels=["POS", "ONLINE"], description="Member prices and double points.",
            agreement="The package runs for the days bought and is not transferable.",
            rules=[PackageRule(position=0, duration_days=30, original_minor=3_900,
                               first_minor=1_900, renewal_minor=2_900),
                   PackageRule(position=1, duration_days=90, original_minor=9_900,
                               repeat_minor=8_900)],
            items=[BenefitPackageItem(position=0, kind="first_gift", name="Welcome gift",
                                      points=200, coupon_template_id=templates[2].id),
                   BenefitPackageItem(position=1, kind="renewal_gift", points=100,
                                      name="Thanks for renewing", distribution="on_start")]))
        lapsed = Segment(name="Away 30 days or more", match="all",
                         rules=[{"field": "days_since_purchase", "op": "gte", "value": 30}])
        session.add(lapsed)
        session.flush()
        session.add_all([
            Activity(kind=ActivityKind.PROFILE_COMPLETION, name="Complete your profile",
                     code="PROFILE", status=ActivityStatus.ACTIVE,
                     description="Tell us your birthday and e-mail: a pastry on us now, "
                                 "¥10 off tomorrow.",
                     starts_at=now - timedelta(days=7), ends_at=now + timedelta(days=180),
                     required_fields=["full_name", "born_on", "email"], points=50,
                     gifts=[ActivityGift(template_id=templates[2].id),
                            ActivityGift(template_id=templates[0].id, delay="days",
                                         delay_amount=1, validity="relative",
                                         valid_days=14)]),
            Activity(kind=ActivityKind.REENGAGEMENT, name="We miss you", code="COMEBACK30",
                     status=ActivityStatus.ACTIVE,
                     description="Members away for 30 days get 15% off on a weekday.",
                     starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=365),
                     lapse_days=30, plan_ids=[regular.id],
                     gifts=[ActivityGift(template_id=templates[1].id)]),
        ])
        gold = session.scalar(select(Tier.id).where(Tier.plan_id == regular.id, Tier.rank == 2))
        session.add_all([
            Benefit(kind=BenefitKind.DISCOUNT, name="Gold 10% off", currency="CNY",
                    brief="10% off every order for Gold members", discount_bp=1000,
                    plan_ids=[regular.id], tier_ids=[gold], operator_id=staff[0].id),
            Benefit(kind=BenefitKind.MEMBER_DAY, name="Friday Member Day", currency="CNY",
                    brief="Every Friday, 10:00–22:00: 5% off and double points",
                    discount_bp=500, multiplier_bp=20_000, operator_id=staff[0].id,
                    schedule={"frequency": "weekly", "days": [4], "times": "window",
                              "window": ["10:00", "22:00"]},
                    tier_perks=[{"tier_id": gold, "discount_bp": 500, "multiplier_bp": None,
                                 "note": "Gold: a further 5% off"}]),
            Benefit(kind=BenefitKind.BIRTHDAY, name="Birthday week", currency="CNY",
                    brief="20% off all your birthday week", birthday_window="week",
                    discount_bp=2000, operator_id=staff[0].id),
            Benefit(kind=BenefitKind.MULTIPLIER, name="Double points", currency="CNY",
                    brief="Twice the points on the Campus Card", multiplier_bp=20_000,
                    plan_ids=[student.id], operator_id=staff[0].id),
            Benefit(kind=BenefitKind.MEMBER_PRICE, name="Member latte price", currency="CNY",
                    brief="A latte for ¥18 instead of ¥25", operator_id=staff[0].id,
                    prices=[{"product_id": "LATTE", "price_minor": 1800}]),
        ])
        session.add_all([
            EarningRule(plan_id=regular.id, points_amount=1, points_per_minor=100,
                        experience_amount=1, experience_per_minor=100, points_expiry_years=1,
                        product_filter="blacklist", filter_names=["Gift card"]),
            EarningRule(plan_id=student.id, points_amount=2, points_per_minor=100,
                        experience_amount=1, experience_per_minor=100, points_expiry_years=0)])
    members = session.query(Member).filter(Member.became_member_at.is_not(None)) \
        .order_by(Member.id).limit(40).all()
    for n, member in enumerate(members):
        coupons.issue(session, member_id=member.id, template_id=templates[n % 3].id,
                      source=coupons.Source("seed"), key=f"seed:{member.id}")
    _seed_students(session, members[:2], templates[0].id, staff[0].id)
    _client, key = create_client(session, name="Demo till", store_code="HQ01", channel="POS")
    return {"stores": 3, "card plans": 2, "staff": 3, "registration pages": 1,
            "tracking links": 3, "members": 200, "coupon templates": 3, "coupons": 40,
            "activities": 2, "segments": 1, "top-up plans": 3, "smart top-up plans": 1,
            "benefit packages": 1, "benefits": 5, "student verifications": 2,
            "till key": key}


def _seed_students(session: Session, members: list[Member], gift_template_id: int,
                   operator_id: int) -> None:
    """Student ID settings with a gift, one approved request and one waiting for review."""
    from io import BytesIO

    from PIL import Image, ImageDraw

    from portal.students import services as students

    students.save_settings(session, {
        "validity_months": 12, "tag_name": "Student", "page_title": "Students save more",
        "page_intro": "Verify your student ID once: student prices all year, and a welcome "
                      "coffee on us.",
        "perks": "10% off every order\nA free coffee when you are verified\n"
                 "Student-only packages", "gift_kind": "coupon",
        "gift_template_id": gift_template_id, "gift_rule": "first", "reminder_days": 14,
        "photo_retention_days": 30}, operator_id=operator_id)
    for n, (member, school) in enumerate(zip(members, ("Fudan University", "Tongji University"),
                                             strict=False)):
        card = BytesIO()
        image = Image.new("RGB", (640, 400), (226, 232, 240))
        ImageDraw.Draw(image).text((32, 32), f"{school}\nStudent card\n2026{n:04d}",
                                   fill=(15, 23, 42))
        image.save(card, "JPEG")
        card.seek(0)
        card.filename = "card.jpg"
        request = students.submit(session, member.id, school=school,
                                  student_number=f"2026{n:04d}",
                                  graduation_on=clock.today() + timedelta(days=700 + n),
                                  consent=True, photo=card)
        if n == 0:
            students.approve(session, request.id, operator_id=operator_id)
