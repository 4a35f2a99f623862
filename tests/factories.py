"""factory_boy factories; tests build their own data and never use the demo seed."""
from __future__ import annotations

import factory
from factory.alchemy import SQLAlchemyModelFactory

from portal.db import db
from portal.members.models import (
    CardPlan,
    Member,
    PageStatus,
    RegistrationField,
    RegistrationPage,
    Store,
    Tier,
    TrackingLink,
)
from portal.staff.models import Role, StaffUser

PASSWORD = "correct horse battery"
_password_hash = None


def password_hash() -> str:
    global _password_hash
    if _password_hash is None:
        from portal.staff.services import hash_password

        _password_hash = hash_password(PASSWORD)
    return _password_hash


class Base(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = lambda: db.session()  # noqa: E731
        sqlalchemy_session_persistence = "commit"


class StoreFactory(Base):
    class Meta:
        model = Store

    name = factory.Sequence(lambda n: f"Store {n}")
    code = factory.Sequence(lambda n: f"S{n:03d}")


class CardPlanFactory(Base):
    class Meta:
        model = CardPlan

    name = factory.Sequence(lambda n: f"Plan {n}")
    currency = "CNY"
    validity_days = None
    is_default = True

    @factory.post_generation
    def tier(self, create, extracted, **kwargs):
        db.session.add(Tier(plan_id=self.id, name=extracted or "Classic", rank=0))
        db.session.commit()


class MemberFactory(Base):
    class Meta:
        model = Member

    full_name = factory.Faker("name")
    mobile = factory.Sequence(lambda n: f"+8613900{n:06d}")
    mobile_verified = True


class RegistrationPageFactory(Base):
    class Meta:
        model = RegistrationPage

    name = factory.Sequence(lambda n: f"Page {n}")
    title = "Join us"
    slug = factory.Sequence(lambda n: f"join-{n}")
    plan = factory.SubFactory(CardPlanFactory)
    status = PageStatus.PUBLISHED

    @factory.post_generation
    def fields(self, create, extracted, **kwargs):
        spec = extracted if extracted is not None else [("full_name", True), ("born_on", False)]
        self.fields = [RegistrationField(attribute=a, required=r, position=i)
                       for i, (a, r) in enumerate(spec)]
        db.session.commit()


class TrackingLinkFactory(Base):
    class Meta:
        model = TrackingLink

    page = factory.SubFactory(RegistrationPageFactory)
    code = factory.Sequence(lambda n: f"lnk{n:04d}")
    campaign = "spring"
    source = "poster"
    content = "table-card"


class StaffFactory(Base):
    class Meta:
        model = StaffUser

    email = factory.Sequence(lambda n: f"staff{n}@example.com")
    name = factory.Faker("name")
    role = Role.OWNER
    password_hash = factory.LazyFunction(password_hash)


class CouponTemplateFactory(Base):
    class Meta:
        model = __import__("portal.coupons.models", fromlist=["CouponTemplate"]).CouponTemplate

    kind = "cash"
    internal_name = factory.Sequence(lambda n: f"Coupon {n}")
    title = "¥10 off"
    currency = "CNY"
    amount_minor = 1000
    validity_kind = "relative"
    starts_after_days = 0
    valid_days = 30
    status = "active"
