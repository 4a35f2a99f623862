"""Redis away: pages keep serving (rate limits fall back to each process's memory),
sending sign-in codes fails closed with a clear message and a 503, and once Redis is
back codes go out again. Queue wake-ups that fail are logged and counted, and their
sweep does the work.

The server runs in a process of its own with the production wiring: TESSERA_REDIS_URL
points at a proxy in front of the machine's Redis (database 5), which the test takes
down and brings back."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests
from sqlalchemy import func, select

from portal.db import db
from portal.members.models import OneTimeCode
from portal.notifications.models import OutboxMessage
from tests.faults.proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
REDIS_DB = 5


def _redis_is_up() -> bool:
    try:
        return redis.Redis(db=REDIS_DB, socket_connect_timeout=1).ping()
    except redis.ConnectionError:
        return False


@pytest.fixture
def redis_proxy():
    proxy = TcpProxy("127.0.0.1", 6379).up()
    yield proxy
    proxy.down()
    if _redis_is_up():
        redis.Redis(db=REDIS_DB).flushdb()  # what the test queued once Redis was back


@pytest.fixture
def server(database_url, redis_proxy, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TESSERA_", "TEST_", "PROMETHEUS_"))}
    env.update(TESSERA_ENV="development", TESSERA_DATABASE_URL=database_url,
               TESSERA_REDIS_URL=f"redis://127.0.0.1:{redis_proxy.port}/{REDIS_DB}",
               TESSERA_UPLOAD_DIR=str(tmp_path), TESSERA_LOG_LEVEL="WARNING",
               # The test polls from one address until Redis is counted again.
               TESSERA_OTP_SEND_LIMIT_PER_IP="1000 per hour")
    log = (tmp_path / "server.log").open("w+")
    process = subprocess.Popen([sys.executable, "-m", "tests.faults.serve"], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    port = process.stdout.readline().strip()
    assert port, (tmp_path / "server.log").read_text()
    yield f"http://127.0.0.1:{port}", tmp_path / "server.log"
    process.kill()
    process.wait()
    log.close()


def _count(model) -> int:
    db.session.commit()  # a fresh read: the server wrote from another process
    return db.session.scalar(select(func.count()).select_from(model))


def _member_cookie(app, member) -> dict:
    """The session cookie of a signed-in member (no code round trip: codes are refused)."""
    value = app.session_interface.get_signing_serializer(app).dumps(
        {"_user_id": f"m:{member.id}:{member.session_version}", "_fresh": True})
    return {app.config["SESSION_COOKIE_NAME"]: value}


@pytest.mark.skipif(not _redis_is_up(), reason="Redis coming back needs a Redis at "
                    "127.0.0.1:6379 (database 5 is used and emptied)")
def test_pages_serve_and_codes_fail_closed_until_redis_is_back(app, server, redis_proxy,
                                                                member):
    base, server_log = server
    redis_proxy.down()
    web = requests.Session()

    assert web.get(f"{base}/").status_code == 200
    assert web.get(f"{base}/sign-in").status_code == 200
    card = requests.get(f"{base}/card", cookies=_member_cookie(app, member))
    assert card.status_code == 200 and "/sign-in" not in card.url
    # Limited too (staff sign-in): counted in memory now, answered as usual.
    staff = web.post(f"{base}/admin/sign-in", data={"email": "x@example.com",
                                                    "password": "wrong"})
    assert staff.status_code == 422

    refused = web.post(f"{base}/sign-in", data={"mobile": "13912345678"})
    assert refused.status_code == 503
    assert "We cannot send codes just now" in refused.text
    in_chinese = web.post(f"{base}/sign-in", data={"mobile": "13912345678"},
                          headers={"Accept-Language": "zh-CN"})
    assert in_chinese.status_code == 503 and "暂时无法发送验证码" in in_chinese.text
    assert (_count(OneTimeCode), _count(OutboxMessage)) == (0, 0)
    assert "falling back to in-memory storage" in server_log.read_text()

    redis_proxy.up()
    # The limiter tries Redis again after 1, 2, 4 … seconds; the first request it
    # counts there sends the code. A new number each time: refused requests still count
    # against the number's limit in memory.
    deadline = time.monotonic() + 20
    for attempt in range(100):
        sent = web.post(f"{base}/sign-in", data={"mobile": f"139123400{attempt:02d}"},
                        allow_redirects=False)
        if sent.status_code != 503:
            break
        assert time.monotonic() < deadline, "codes were not sent again after Redis returned"
        time.sleep(0.5)
    assert sent.status_code == 303 and sent.headers["Location"].endswith("/verify")
    assert (_count(OneTimeCode), _count(OutboxMessage)) == (1, 1)
    # Its delivery was queued in Redis for a consumer.
    assert redis.Redis(db=REDIS_DB).dbsize() > 0


def _refused(redis_proxy, name: str, fn):
    """`fn` as a task of a queue in a Redis that is away: queueing it raises."""
    from huey import RedisHuey
    from redis import ConnectionPool

    redis_proxy.down()
    queue = RedisHuey("faults", connection_pool=ConnectionPool.from_url(
        f"redis://127.0.0.1:{redis_proxy.port}/{REDIS_DB}"))
    return queue.task(name=name)(fn)


def test_a_wake_up_the_queue_refuses_is_logged_counted_and_swept(session, redis_proxy,
                                                                  monkeypatch, caplog):
    from prometheus_client import REGISTRY

    from portal import jobs
    from portal.db import transaction
    from portal.notifications import services as notifications
    from portal.notifications.models import Channel, OutboxStatus

    monkeypatch.setattr(notifications, "deliver_task", _refused(
        redis_proxy, "deliver_task", notifications.deliver))

    def failures() -> float:
        return REGISTRY.get_sample_value("tessera_job_wake_failures_total",
                                         {"job": notifications.deliver_task.name}) or 0

    before = failures()
    with transaction(session):  # what a request does; it must not fail after its commit
        message = notifications.queue(session, channel=Channel.SMS, recipient="+8613912345678",
                                      template="otp", body="Your code is 123456")
    assert failures() == before + 1
    assert "could not queue" in caplog.text
    session.expire_all()
    assert session.get(OutboxMessage, message.id).status == OutboxStatus.PENDING

    assert jobs.run_tick()["deliver_outbox"] == 1  # the next tick sends it
    session.expire_all()
    assert session.get(OutboxMessage, message.id).status == OutboxStatus.SENT


def test_a_tier_release_the_queue_refused_is_run_by_the_tick(session, tiered, member, owner,
                                                             redis_proxy, monkeypatch):
    from datetime import timedelta

    from portal import clock, jobs
    from portal.loyalty import tiers
    from portal.loyalty.models import TierSettings
    from portal.members.models import MemberCard
    from tests.fixtures import add_experience

    monkeypatch.setattr(tiers, "recalculate_task", _refused(
        redis_proxy, "recalculate_task", tiers.recalculate_task.call_local))
    add_experience(session, member, owner, 120, "a")
    settings_id = tiers.release(session, tiered.id, operator_id=owner.id).id

    def settings() -> TierSettings:
        session.commit()
        session.expire_all()
        return session.get(TierSettings, settings_id)

    assert settings().is_running  # released, its recalculation never queued
    now = clock.now()
    clock.freeze(now + timedelta(minutes=5))
    jobs.run_tick()
    assert settings().is_running  # it may still be starting: left alone
    clock.freeze(now + tiers.RELEASE_STALLED_AFTER + timedelta(minutes=1))
    jobs.run_tick()
    assert not settings().is_running and settings().recalc_done == settings().recalc_total
    card = session.scalar(select(MemberCard).where(MemberCard.member_id == member.id))
    assert card.tier.name == "Silver"
