from __future__ import annotations

import re

import pytest

from portal.db import db
from portal.members import services as members
from portal.notifications.models import OutboxMessage
from portal.staff.models import Role
from tests.factories import (
    CardPlanFactory,
    MemberFactory,
    RegistrationPageFactory,
    StaffFactory,
    StoreFactory,
    TrackingLinkFactory,
)


@pytest.fixture
def plan():
    return CardPlanFactory()


@pytest.fixture
def store():
    return StoreFactory()


def member_with_card(plan):
    from portal.db import transaction

    m = MemberFactory()
    with transaction(db.session):
        members.issue_card(db.session, db.session.merge(m), plan)
    return m


@pytest.fixture
def member(plan):
    return member_with_card(plan)


@pytest.fixture
def other_member(plan):
    return member_with_card(plan)


@pytest.fixture
def page(plan):
    return RegistrationPageFactory(plan=plan)


@pytest.fixture
def link(page):
    return TrackingLinkFactory(page=page)


@pytest.fixture
def owner():
    return StaffFactory(role=Role.OWNER)


@pytest.fixture
def manager():
    return StaffFactory(role=Role.MANAGER)


@pytest.fixture
def clerk(store):
    return StaffFactory(role=Role.CLERK, store_id=store.id)


def sign_in_as(client, user) -> None:
    """Put a signed-in session in the test client's cookie (no code round trip)."""
    prefix = "s" if user.__tablename__ == "staff_users" else "m"
    with client.session_transaction() as s:
        s["_user_id"] = f"{prefix}:{user.id}:{user.session_version}"
        s["_fresh"] = True


@pytest.fixture
def member_client(client, member):
    sign_in_as(client, member)
    return client


@pytest.fixture
def owner_client(client, owner):
    sign_in_as(client, owner)
    return client


def last_code(mobile: str) -> str:
    """The code in the newest text message to `mobile` (what the member would read)."""
    db.session.commit()  # read now, not from an SQLite snapshot an earlier read pinned
    body = db.session.query(OutboxMessage.body).filter_by(recipient=mobile, template="otp") \
        .order_by(OutboxMessage.id.desc()).limit(1).scalar()
    db.session.commit()
    return re.search(r"\b(\d{6})\b", body).group(1)


def count_queries(client, url: str) -> int:
    """SQL statements one GET of `url` runs (for "no N+1" tests)."""
    from sqlalchemy import event

    count = 0

    def on_execute(*_args):
        nonlocal count
        count += 1

    event.listen(db.engine, "before_cursor_execute", on_execute)
    try:
        assert client.get(url).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", on_execute)
    return count


@pytest.fixture
def tiered(plan, owner):
    """Computed tiers on `plan`: Member (0) / Silver 100 accumulated / Gold 300 in 12
    months; 6-month validity, adjusted in real time (not released yet)."""
    from portal.loyalty import tiers

    tiers.save_settings(db.session, plan.id, {"enabled": True, "on_change": "realtime",
                                              "validity": "months", "validity_months": 6,
                                              "after_expiry": "rule"}, operator_id=owner.id)
    tiers.save_level(db.session, plan.id, name="Silver", threshold=100, rule="accumulated",
                     window_months=None, operator_id=owner.id)
    tiers.save_level(db.session, plan.id, name="Gold", threshold=300, rule="window",
                     window_months=12, operator_id=owner.id)
    return plan


def add_experience(session, member, owner, delta: int, key: str) -> None:
    from portal.loyalty import services as loyalty

    loyalty.adjust(session, member_id=member.id, kind="experience", delta=delta,
                   reason="test", key=key, operator_id=owner.id)


from tests.stripe_stub import stripe_stub, test_purposes  # noqa: E402,F401 - fixtures
