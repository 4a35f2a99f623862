"""The job queue: Huey, with a task registry and the periodic schedule.

Huey only wakes work up. Pending work (a due grant, an undelivered message) lives in our
tables, and every periodic sweep picks up what an earlier run missed, so a task lost with
a dying worker is redone by the next tick. Storage: SQLite file by default (no server),
Redis when TESSERA_REDIS_URL is set; immediate (in-process) under tests.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import nullcontext
from functools import wraps

from huey import MemoryHuey, RedisHuey, SqliteHuey, crontab
from redis import ConnectionPool

from portal import observability
from portal.config import INSTANCE

log = logging.getLogger(__name__)


def _make_huey():
    if os.environ.get("TESSERA_ENV") == "test":
        return MemoryHuey("tessera", immediate=True)
    if url := os.environ.get("TESSERA_REDIS_URL"):
        # A Redis that does not answer fails a web request's wake-up in seconds, not minutes.
        return RedisHuey("tessera", connection_pool=ConnectionPool.from_url(
            url, socket_connect_timeout=2))
    INSTANCE.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("tessera", filename=os.environ.get(
        "TESSERA_HUEY_FILE", str(INSTANCE / "huey.db")))


huey = _make_huey()

_app = None
# Work the minute tick and the daily run do, in registration order: name -> fn(session).
TICK_HANDLERS: dict[str, Callable] = {}
DAILY_HANDLERS: dict[str, Callable] = {}


def _app_context():
    """Tasks run inside an app context: the web request's, or the consumer's own app."""
    from flask import has_app_context

    if has_app_context():
        return nullcontext()
    global _app
    if _app is None:
        from portal import create_app

        _app = create_app()
    return _app.app_context()


def task(**options):
    """A queued task that runs with an app context and its own database session."""

    def decorate(fn):
        @wraps(fn)
        def run(*args, **kwargs):
            with _app_context(), observability.job_run("task", fn.__name__):
                return fn(*args, **kwargs)

        return huey.task(name=fn.__name__, **options)(run)

    return decorate


def wake(task_fn, *args) -> bool:
    """Queue `task_fn(*args)` to run soon. The work it does is a row a sweep finds too, so
    a queue that is down (Redis away) delays the work rather than losing it: the failure
    is logged and counted (tessera_job_wake_failures_total), not raised into a request
    that has already committed."""
    try:
        task_fn(*args)
    except Exception:  # noqa: BLE001 - any queue failure; the sweep picks the work up
        name = getattr(task_fn, "name", None) or "task"
        observability.JOB_WAKE_FAILURES.labels(name).inc()
        log.warning("could not queue %s%r; its sweep will do it", name, args, exc_info=True,
                    extra={"job": name})
        return False
    return True


def on_tick(name: str):
    """Register a sweep the minute tick runs. Sweeps must be idempotent."""

    def decorate(fn):
        TICK_HANDLERS[name] = fn
        return fn

    return decorate


def on_daily(name: str):
    """Register a sweep the daily run does. Sweeps must be idempotent."""

    def decorate(fn):
        DAILY_HANDLERS[name] = fn
        return fn

    return decorate


def run_tick() -> dict[str, object]:
    """Run every minute sweep once; one failing sweep does not stop the others."""
    return _run("tick", TICK_HANDLERS)


def run_daily() -> dict[str, object]:
    return _run("daily", DAILY_HANDLERS)


def _run(kind: str, handlers: dict[str, Callable]) -> dict[str, object]:
    from portal.db import db

    results: dict[str, object] = {}
    with _app_context():
        for name, handler in handlers.items():
            try:
                with observability.job_run(kind, name):
                    results[name] = handler(db.session)
            except Exception:  # noqa: BLE001 - logged by job_run, retried on the next tick
                results[name] = "failed"
                db.session.rollback()
    return results


@huey.periodic_task(crontab(minute="*"), name="tick")
def tick():
    return run_tick()


# 00:05 UTC. Nothing depends on the exact hour: views compute states from the clock, and
# the daily sweeps only tidy up what has already lapsed.
@huey.periodic_task(crontab(minute="5", hour="0"), name="daily")
def daily():
    return run_daily()
