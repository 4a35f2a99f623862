"""A consumer killed in the middle of delivering gifts: what it had committed stays, what
it was writing is rolled back, and the next sweep delivers each remaining gift, so every
grant arrives exactly once (its coupons, and one "gift delivered" message per claim).

The sweep runs in a process of its own on the test's database (a file for SQLite, the
server for PostgreSQL) and is killed with SIGKILL inside a transaction: nothing in the
process gets to clean up, as when the machine or the OOM killer takes it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, text

from portal import clock
from portal.campaigns import services as campaigns
from portal.campaigns.models import Activity, ActivityGift, Grant, Participation
from portal.coupons.models import Coupon
from portal.notifications.models import InboxMessage
from tests.factories import CouponTemplateFactory
from tests.fixtures import member_with_card

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = 6
HANG_AT = 3  # the third claim's delivery is in flight when the process dies


def _owed_gifts(session, plan) -> list[int]:
    """MEMBERS claims, each owed one coupon of one kind and two of another, all due."""
    now = clock.now()
    one, two = CouponTemplateFactory(), CouponTemplateFactory()
    activity = Activity(kind="profile_completion", name="Complete your profile",
                        code="FAULTS-1", starts_at=now - timedelta(days=1),
                        ends_at=now + timedelta(days=30), status="active",
                        required_fields=[], plan_ids=[plan.id], tier_ids=[], notify=True,
                        gifts=[ActivityGift(template_id=one.id, quantity=1, delay="hours",
                                            delay_amount=1),
                               ActivityGift(template_id=two.id, quantity=2, delay="hours",
                                            delay_amount=1)])
    session.add(activity)
    session.flush()
    member_ids = []
    for _ in range(MEMBERS):
        member_id = member_with_card(plan).id
        participation = Participation(activity_id=activity.id, member_id=member_id)
        session.add(participation)
        session.flush()
        for gift in activity.gifts:
            session.add(Grant(participation_id=participation.id, gift_id=gift.id,
                              member_id=member_id, due_at=now - timedelta(minutes=1)))
        member_ids.append(member_id)
    session.commit()
    return member_ids


def _kill_mid_sweep(database_url: str) -> tuple[int, int]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TESSERA_", "TEST_", "PROMETHEUS_"))}
    env.update(TESSERA_ENV="test", TESSERA_DATABASE_URL=database_url,
               TESSERA_LOG_LEVEL="WARNING")
    sweep = subprocess.Popen([sys.executable, "-m", "tests.faults.sweep", str(HANG_AT)],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    line = sweep.stdout.readline().split()
    sweep.send_signal(signal.SIGKILL)
    sweep.wait(10)
    assert len(line) == 2, f"the sweep did not reach delivery {HANG_AT}: {line}"
    return int(line[0]), int(line[1])


def _wait_until_rolled_back(session, pid: int) -> None:
    """PostgreSQL ends the dead client's transaction (and its row locks) once it sees the
    connection closed; a sweep started earlier would skip the still-locked grants."""
    deadline = time.monotonic() + 10
    while session.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                         {"pid": pid}):
        assert time.monotonic() < deadline, "PostgreSQL kept the killed sweep's session"
        time.sleep(0.05)
        session.rollback()
    session.rollback()


def _delivered(session) -> tuple[int, int, int]:
    session.commit()  # read now, not from an older snapshot
    return (session.scalar(select(func.count()).where(Grant.delivered_at.is_not(None))),
            session.scalar(select(func.count(Coupon.id))),
            session.scalar(select(func.count(InboxMessage.id))))


def test_a_sweep_killed_mid_delivery_leaves_the_rest_to_the_next_one_exactly_once(
        session, plan, database_url):
    member_ids = _owed_gifts(session, plan)

    coupons_in_flight, pid = _kill_mid_sweep(database_url)
    if pid:
        _wait_until_rolled_back(session, pid)
    # Two claims were committed (2 grants, 3 coupons, 1 message each); the third's
    # coupons were written but died with the transaction.
    committed = HANG_AT - 1
    assert coupons_in_flight == (committed + 1) * 3
    assert _delivered(session) == (committed * 2, committed * 3, committed)

    assert campaigns.deliver_due(session) == (MEMBERS - committed) * 2
    assert _delivered(session) == (MEMBERS * 2, MEMBERS * 3, MEMBERS)
    for member_id in member_ids:
        assert session.scalar(select(func.count(Coupon.id))
                              .where(Coupon.member_id == member_id)) == 3
        assert session.scalar(select(func.count(InboxMessage.id))
                              .where(InboxMessage.member_id == member_id)) == 1
    assert campaigns.deliver_due(session) == 0  # and a third sweep finds nothing
