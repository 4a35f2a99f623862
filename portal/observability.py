"""Request ids, structured logs, Prometheus metrics and slow-query logging.

Every request carries an id: the caller's `X-Request-ID` when it is sane, else a new one.
It is on every log line of the request, in the response header, on error pages and in
problem+json bodies, so a member quoting it to support leads to the request's log lines.
Jobs get an id of their own (`<job>:<hex>`).

Metrics live in process memory; under gunicorn set PROMETHEUS_MULTIPROC_DIR so the
workers' values are added up at scrape time (portal.gunicorn_hooks; docs/operations.md,
"Logs and metrics"). The log format itself is portal.logs.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Blueprint, Flask, Response, abort, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import event, func, select
from sqlalchemy.exc import SQLAlchemyError

from portal import logs

log = logging.getLogger("tessera.observability")
access_log = logging.getLogger("tessera.access")
sql_log = logging.getLogger("tessera.sql")

HEADER = "X-Request-ID"
# Ids from a proxy or a client are kept when they look like ids (a UUID, nginx's
# $request_id); anything else could forge log lines or bloat them, and is replaced.
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

HTTP_REQUESTS = Counter("tessera_http_requests", "HTTP requests answered.",
                        ["method", "endpoint", "status"])
HTTP_LATENCY = Histogram("tessera_http_request_duration_seconds",
                         "Time from the first request hook to the response.",
                         ["method", "endpoint"])
JOB_RUNS = Counter("tessera_job_runs", "Job runs (tick and daily sweeps, queued tasks).",
                   ["kind", "job"])
JOB_FAILURES = Counter("tessera_job_failures", "Job runs that raised.", ["kind", "job"])
JOB_DURATION = Histogram("tessera_job_duration_seconds", "Job run time.", ["kind", "job"],
                         buckets=(0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600))
JOB_LAST_SUCCESS = Gauge("tessera_job_last_success_timestamp_seconds",
                         "Unix time a job last finished without raising.", ["kind", "job"],
                         multiprocess_mode="max")
SLOW_QUERIES = Counter("tessera_slow_queries", "SQL statements over TESSERA_SLOW_QUERY_MS.")
JOB_WAKE_FAILURES = Counter("tessera_job_wake_failures",
                            "Tasks the queue refused (Redis away); their sweep does the work.",
                            ["job"])


def init_app(app: Flask) -> None:
    """After the database, before any other extension: their before_request hooks (CSRF)
    may end a request early, and its error page and log lines still need the id."""
    from portal.db import db

    logs.configure(app)
    _time_queries(app, db.engine)
    app.before_request(_start_request)
    app.after_request(_finish_request)
    app.teardown_request(_end_request)
    app.register_blueprint(bp)


def _time_queries(app: Flask, engine) -> None:
    """Time every statement; log and count those over SLOW_QUERY_MS."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(_conn, _cursor, _statement, _params, context, _many):
        if context is not None:
            context._tessera_started = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(_conn, _cursor, statement, _params, context, _many):
        started = getattr(context, "_tessera_started", None)
        if started is None:
            return
        ms = (time.perf_counter() - started) * 1000
        if ms >= app.config["SLOW_QUERY_MS"]:
            SLOW_QUERIES.inc()
            # The statement only: its parameters are members' data.
            sql_log.warning("slow query %.0f ms: %s", ms, " ".join(statement.split())[:2000],
                            extra={"duration_ms": round(ms, 1)})


# --- request ids ------------------------------------------------------------------------

def _start_request() -> None:
    incoming = request.headers.get(HEADER, "")
    g.request_id = incoming if _SANE_ID.fullmatch(incoming) else uuid.uuid4().hex
    g._request_id_token = logs.context_id.set(g.request_id)
    g._request_started = time.perf_counter()


def _finish_request(response: Response) -> Response:
    if "request_id" not in g:  # a hook before ours ended the request
        _start_request()
    response.headers[HEADER] = g.request_id
    seconds = time.perf_counter() - g._request_started
    rule = request.url_rule
    endpoint = rule.rule if rule is not None else "unmatched"
    method = request.method if request.method in _METHODS else "other"
    HTTP_REQUESTS.labels(method, endpoint, str(response.status_code)).inc()
    HTTP_LATENCY.labels(method, endpoint).observe(seconds)
    path = _loggable_path(rule)
    access_log.info("%s %s %s", request.method, path, response.status_code,
                    extra={"method": request.method, "path": path, "endpoint": endpoint,
                           "status": response.status_code,
                           "duration_ms": round(seconds * 1000, 1)})
    return response


def _end_request(_exc) -> None:
    token = g.pop("_request_id_token", None)
    if token is not None:
        logs.context_id.reset(token)


def _loggable_path(rule) -> str:
    """The path with its text parts as placeholders: they are claim tokens, card numbers
    and codes, secrets or personal data; numeric ids stay. No query string."""
    if rule is None or not request.view_args:
        return request.path[:200]
    args = request.view_args
    if all(isinstance(v, int) for v in args.values()):
        return request.path
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>",
                  lambda m: str(args[m[1]]) if isinstance(args.get(m[1]), int) else f"<{m[1]}>",
                  rule.rule)


# --- jobs -------------------------------------------------------------------------------

@contextmanager
def job_run(kind: str, name: str) -> Iterator[None]:
    """Count, time and give an id to one job run; a raise is logged and counted, then
    passed on (the caller decides whether it stops anything)."""
    token = logs.context_id.set(f"{name}:{uuid.uuid4().hex[:16]}")
    started = time.perf_counter()
    JOB_RUNS.labels(kind, name).inc()
    try:
        yield
    except Exception:
        JOB_FAILURES.labels(kind, name).inc()
        log.exception("%s job %s failed", kind, name, extra={"job": name})
        raise
    else:
        # Wall time, not clock.now(): Prometheus compares it with its own time().
        JOB_LAST_SUCCESS.labels(kind, name).set(time.time())
    finally:
        JOB_DURATION.labels(kind, name).observe(time.perf_counter() - started)
        logs.context_id.reset(token)


# --- the /metrics endpoint --------------------------------------------------------------

bp = Blueprint("observability", __name__)


@bp.get("/metrics")
def metrics():
    if not _may_scrape():
        abort(403)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    # Read from the database at scrape time, once, by whichever worker answers.
    scraped = CollectorRegistry()
    scraped.register(_OutboxCollector())
    scraped.register(_LedgerCheckCollector())
    return Response(generate_latest(registry) + generate_latest(scraped),
                    content_type=CONTENT_TYPE_LATEST)


def _may_scrape() -> bool:
    token = current_app.config["METRICS_TOKEN"]
    scheme, _sep, given = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                                    token.encode()):
        return True
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(address in network for network in current_app.config["METRICS_ALLOW"])


class _OutboxCollector:
    """The outbox backlog, in one query over the pending and failed rows (sent rows, the
    bulk of the table, stay out of it through the status index)."""

    def collect(self):
        from portal import clock
        from portal.db import db
        from portal.notifications.models import OutboxMessage, OutboxStatus

        pending = OutboxMessage.status == OutboxStatus.PENDING
        try:
            row = db.session.execute(
                select(func.count().filter(pending),
                       func.count().filter(pending, OutboxMessage.attempts > 0),
                       func.count().filter(OutboxMessage.status == OutboxStatus.FAILED),
                       func.min(OutboxMessage.created_at).filter(pending))
                .where(OutboxMessage.status.in_([OutboxStatus.PENDING, OutboxStatus.FAILED]))
            ).one()
        except SQLAlchemyError:
            log.warning("metrics: the outbox backlog could not be read", exc_info=True)
            return
        finally:
            db.session.rollback()
        waiting, retrying, failed, oldest = row
        yield GaugeMetricFamily("tessera_outbox_pending_messages",
                                "Messages waiting to be sent, retries included.", waiting)
        yield GaugeMetricFamily("tessera_outbox_retrying_messages",
                                "Pending messages that have failed at least once.", retrying)
        yield GaugeMetricFamily("tessera_outbox_failed_messages",
                                "Messages given up on after every attempt.", failed)
        age = (clock.now() - oldest).total_seconds() if oldest is not None else 0
        yield GaugeMetricFamily("tessera_outbox_oldest_pending_age_seconds",
                                "Age of the oldest pending message (0: none).", max(age, 0))


class _LedgerCheckCollector:
    """The latest consistency check (portal/consistency), read from its stored run: the
    check runs in the job consumer, and every web worker must report the same result."""

    def collect(self):
        from portal.consistency.models import CheckRun
        from portal.db import db

        try:
            run = db.session.scalars(
                select(CheckRun).order_by(CheckRun.started_at.desc(), CheckRun.id.desc())
                .limit(1)).first()
        except SQLAlchemyError:
            log.warning("metrics: the last consistency check could not be read",
                        exc_info=True)
            return
        finally:
            db.session.rollback()
        if run is None:
            return
        yield GaugeMetricFamily("tessera_ledger_check_mismatches",
                                "Rows that disagreed with their cached value, last check.",
                                run.mismatch_count)
        by_check = GaugeMetricFamily("tessera_ledger_check_mismatches_by_check",
                                     "Mismatches of each check, last check.", labels=["check"])
        for name, figures in sorted((run.checked or {}).items()):
            by_check.add_metric([name], figures.get("mismatches", 0))
        yield by_check
        yield GaugeMetricFamily("tessera_ledger_check_duration_seconds",
                                "The last check's run time.", run.duration_ms / 1000)
        yield GaugeMetricFamily("tessera_ledger_check_last_run_timestamp_seconds",
                                "Unix time the last check started.",
                                run.started_at.timestamp())
