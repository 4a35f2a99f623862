"""Request ids, JSON logs, the /metrics endpoint and slow-query logging."""
from __future__ import annotations

import io
import ipaddress
import json
import logging
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from portal import clock, gunicorn_hooks, jobs, logs, observability
from portal.config import ConfigError, load
from portal.db import db
from portal.notifications.models import OutboxMessage, OutboxStatus

HEX_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def json_log():
    """The production handler (JSON formatter, request-id filter) writing into a buffer."""
    buffer = io.StringIO()
    handler = logs.make_handler("json")
    handler.setStream(buffer)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def scrape(client, **kwargs) -> dict[tuple, float]:
    r = client.get("/metrics", **kwargs)
    assert r.status_code == 200, r.status_code
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.get_data(as_text=True))
            for s in family.samples}


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# --- request ids ------------------------------------------------------------------------

def test_request_id_is_made_when_none_comes(client):
    assert HEX_ID.fullmatch(client.get("/sign-in").headers["X-Request-ID"])


def test_a_sane_incoming_request_id_is_kept(client):
    r = client.get("/sign-in", headers={"X-Request-ID": "lb-7f3a9c2e.01:retry"})
    assert r.headers["X-Request-ID"] == "lb-7f3a9c2e.01:retry"


@pytest.mark.parametrize("incoming", ["short", "x" * 129, "abc def ghij", "../../etc/passwd",
                                      '{"level": "ERROR"}', "<script>alert(1)</script>"])
def test_an_odd_incoming_request_id_is_replaced(client, incoming):
    assert HEX_ID.fullmatch(client.get("/sign-in", headers={"X-Request-ID": incoming})
                            .headers["X-Request-ID"])


def test_error_page_shows_the_reference_to_quote(client):
    r = client.get("/nope")
    page = r.get_data(as_text=True)
    assert r.status_code == 404
    assert f"<code>{r.headers['X-Request-ID']}</code>" in page and "quote this reference" in page


def test_error_page_reference_in_chinese(client):
    r = client.get("/nope", headers={"Accept-Language": "zh-CN"})
    assert "请提供此编号" in r.get_data(as_text=True)


def test_problem_json_carries_the_request_id(client):
    r = client.post("/api/v1/coupons/redeem", json={},
                    headers={"X-Request-ID": "till-42-abcdef"})
    assert r.status_code == 401 and r.mimetype == "application/problem+json"
    assert r.json["request_id"] == "till-42-abcdef" == r.headers["X-Request-ID"]


def test_csrf_refusal_still_gets_an_id(client, csrf_on, member):
    r = client.post("/sign-in", data={"mobile": member.mobile})
    assert r.status_code == 400
    assert f"<code>{r.headers['X-Request-ID']}</code>" in r.get_data(as_text=True)


# --- logs -------------------------------------------------------------------------------

def test_access_line_is_json_with_the_request_id(client, json_log):
    r = client.get("/sign-in")
    [line] = [e for e in json_log() if e["logger"] == "tessera.access"]
    assert line["request_id"] == r.headers["X-Request-ID"]
    assert (line["method"], line["path"], line["status"]) == ("GET", "/sign-in", 200)
    assert line["level"] == "INFO" and isinstance(line["duration_ms"], float)
    assert datetime.fromisoformat(line["time"]).utcoffset() == timedelta(0)


def test_access_line_hides_tokens_and_query_strings(client, json_log):
    client.get("/giftcards/claim/s3cr3t-claim-token?ref=13800138000")
    [line] = [e for e in json_log() if e["logger"] == "tessera.access"]
    assert line["path"] == "/giftcards/claim/<token>"
    assert "s3cr3t" not in json.dumps(json_log()) and "13800138000" not in json.dumps(json_log())


def test_access_line_keeps_numeric_ids(owner_client, member, json_log):
    owner_client.get(f"/admin/members/{member.id}")
    [line] = [e for e in json_log() if e["logger"] == "tessera.access"]
    assert line["path"] == f"/admin/members/{member.id}"
    assert line["endpoint"] == "/admin/members/<int:member_id>"


def test_a_server_error_is_logged_with_its_traceback_and_id(app, client, json_log):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    try:
        with mock.patch.object(db.session, "execute", side_effect=RuntimeError("boom")):
            r = client.get("/healthz")
    finally:
        app.config["PROPAGATE_EXCEPTIONS"] = None
    [error] = [e for e in json_log() if e["level"] == "ERROR"]
    assert error["request_id"] == r.headers["X-Request-ID"]
    assert "RuntimeError: boom" in error["exception"]
    assert r.headers["X-Request-ID"] in r.get_data(as_text=True)


def test_a_failing_sweep_logs_under_its_own_job_id(json_log, monkeypatch):
    def boom(_session):
        raise RuntimeError("sweep broke")

    monkeypatch.setattr(jobs, "TICK_HANDLERS", {"boom": boom})
    assert jobs.run_tick() == {"boom": "failed"}
    [error] = [e for e in json_log() if e["level"] == "ERROR"]
    assert re.fullmatch(r"boom:[0-9a-f]{16}", error["request_id"])
    assert error["job"] == "boom" and "sweep broke" in error["exception"]


def test_text_logs_in_development_and_json_in_production(monkeypatch):
    assert load({"ENV": "development"})["LOG_FORMAT"] == "text"
    monkeypatch.setenv("TESSERA_SECRET_KEY", "x" * 40)
    monkeypatch.setenv("TESSERA_STRIPE_SECRET_KEY", "sk_test_x")
    monkeypatch.setenv("TESSERA_STRIPE_WEBHOOK_SECRET", "whsec_x")
    monkeypatch.setenv("TESSERA_PUBLIC_URL", "https://members.example.com")
    production = load({"ENV": "production"})
    assert production["LOG_FORMAT"] == "json" and production["METRICS_ALLOW"] == []


@pytest.mark.parametrize("name, bad", [("LOG_FORMAT", "xml"), ("METRICS_ALLOW", "10.0.0.0/33")])
def test_a_bad_log_or_metrics_setting_stops_the_start(monkeypatch, name, bad):
    monkeypatch.setenv(f"TESSERA_{name}", bad)
    with pytest.raises(ConfigError):
        load({"ENV": "test"})


def test_gunicorns_own_lines_come_out_as_json():
    script = ("import logging, logging.config; from portal import gunicorn_hooks; "
              "logging.config.dictConfig(gunicorn_hooks.logconfig_dict()); "
              "logging.getLogger('gunicorn.error').info('Booting worker with pid: 7')")
    env = {"TESSERA_ENV": "production", "TESSERA_SECRET_KEY": "x" * 40,
           "TESSERA_STRIPE_SECRET_KEY": "sk_test_x", "TESSERA_STRIPE_WEBHOOK_SECRET": "w",
           "TESSERA_PUBLIC_URL": "https://members.example.com", "PATH": "/usr/bin:/bin",
           # gunicorn's master imports the hooks before this exists: a metric made on
           # import would fail to open its file there.
           "PROMETHEUS_MULTIPROC_DIR": "/nonexistent/tessera-metrics"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True, timeout=60).stderr.strip().splitlines()
    assert [json.loads(line)["message"] for line in out] == ["Booting worker with pid: 7"]


# --- metrics ----------------------------------------------------------------------------

def test_requests_are_counted_by_route_not_by_path(client):
    before = scrape(client)
    client.get("/giftcards/claim/one-token")
    client.get("/giftcards/claim/another-token")
    after = scrape(client)
    labels = {"method": "GET", "endpoint": "/giftcards/claim/<token>"}
    counted = sum(after[k] - before.get(k, 0) for k in after
                  if k[0] == "tessera_http_requests_total" and set(labels.items()) <= set(k[1]))
    assert counted == 2
    assert (value(after, "tessera_http_request_duration_seconds_count", **labels)
            - value(before, "tessera_http_request_duration_seconds_count", **labels)) == 2


def test_unknown_paths_share_one_label(client):
    before = scrape(client)
    client.get("/no/such/page")
    after = scrape(client)
    key = {"method": "GET", "endpoint": "unmatched", "status": "404"}
    assert (value(after, "tessera_http_requests_total", **key)
            - value(before, "tessera_http_requests_total", **key)) == 1


def test_metrics_refused_outside_the_allowed_networks(client):
    r = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert r.status_code == 403


def test_metrics_allowed_from_a_configured_network(app, client):
    app.config["METRICS_ALLOW"] = [ipaddress.ip_network("10.0.0.0/8")]
    try:
        assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
        assert client.get("/metrics").status_code == 403  # 127.0.0.1 is no longer listed
    finally:
        app.config["METRICS_ALLOW"] = load({"ENV": "test"})["METRICS_ALLOW"]


def test_metrics_with_the_bearer_token_from_anywhere(app, client):
    app.config["METRICS_TOKEN"] = "scrape-token-123"
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    try:
        scrape(client, environ_base=outside,
               headers={"Authorization": "Bearer scrape-token-123"})
        assert client.get("/metrics", environ_base=outside,
                          headers={"Authorization": "Bearer wrong"}).status_code == 403
    finally:
        app.config["METRICS_TOKEN"] = None


def test_job_runs_and_failures_are_counted_by_handler(client, monkeypatch):
    calls = []

    def boom(_session):
        raise RuntimeError("sweep broke")

    monkeypatch.setattr(jobs, "TICK_HANDLERS", {"fine": calls.append, "boom": boom})
    before = scrape(client)
    jobs.run_tick()
    jobs.run_tick()
    after = scrape(client)

    def moved(name, job):
        return value(after, name, kind="tick", job=job) - value(before, name, kind="tick", job=job)

    assert len(calls) == 2
    assert (moved("tessera_job_runs_total", "fine"), moved("tessera_job_failures_total", "fine"),
            moved("tessera_job_runs_total", "boom"), moved("tessera_job_failures_total", "boom")
            ) == (2, 0, 2, 2)
    assert value(after, "tessera_job_last_success_timestamp_seconds", kind="tick", job="fine") > 0


def test_queued_tasks_are_counted(client, session):
    from portal.db import transaction
    from portal.notifications import services as outbox
    from portal.notifications.models import Channel

    before = scrape(client)
    with transaction(session):
        outbox.queue(session, channel=Channel.EMAIL, recipient="a@example.com",
                     template="notice", body="hello")
    after = scrape(client)
    labels = {"kind": "task", "job": "deliver_task"}
    assert (value(after, "tessera_job_runs_total", **labels)
            - value(before, "tessera_job_runs_total", **labels)) == 1


def test_outbox_backlog_is_read_at_scrape_time(client, session):
    clock.freeze(datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
    hour_ago = clock.now() - timedelta(hours=1)

    def message(**kw):
        return OutboxMessage(channel="sms", recipient="+8613900000000", body="x",
                             template="notice", **kw)

    session.add_all([message(), message(attempts=2, created_at=hour_ago),
                     message(status=OutboxStatus.FAILED, attempts=6,
                             created_at=hour_ago - timedelta(days=1)),
                     message(status=OutboxStatus.SENT, created_at=hour_ago - timedelta(days=2))])
    session.commit()
    samples = scrape(client)
    assert value(samples, "tessera_outbox_pending_messages") == 2
    assert value(samples, "tessera_outbox_retrying_messages") == 1
    assert value(samples, "tessera_outbox_failed_messages") == 1
    assert value(samples, "tessera_outbox_oldest_pending_age_seconds") == 3600


def test_empty_outbox_has_no_age(client):
    samples = scrape(client)
    assert value(samples, "tessera_outbox_pending_messages") == 0
    assert ("tessera_outbox_oldest_pending_age_seconds", ()) in samples
    assert value(samples, "tessera_outbox_oldest_pending_age_seconds") == 0


def test_the_last_consistency_check_is_published(client, session):
    from portal.consistency import services as consistency

    assert ("tessera_ledger_check_mismatches", ()) not in scrape(client)  # none run yet
    clock.freeze(datetime(2026, 5, 1, 0, 5, tzinfo=UTC))
    consistency.run_check(session)
    samples = scrape(client)
    assert value(samples, "tessera_ledger_check_mismatches") == 0
    assert value(samples, "tessera_ledger_check_last_run_timestamp_seconds") == \
        datetime(2026, 5, 1, 0, 5, tzinfo=UTC).timestamp()
    assert value(samples, "tessera_ledger_check_mismatches_by_check",
                 check="ledger_balance") == 0


def test_gunicorn_start_empties_the_metrics_directory(tmp_path, monkeypatch):
    (tmp_path / "counter_123.db").write_bytes(b"old run")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    gunicorn_hooks.on_starting(None)
    assert list(tmp_path.iterdir()) == []


# --- slow queries -----------------------------------------------------------------------

@pytest.fixture
def every_query_slow(app):
    app.config["SLOW_QUERY_MS"] = 0
    yield
    app.config["SLOW_QUERY_MS"] = load({"ENV": "test"})["SLOW_QUERY_MS"]


def test_slow_queries_are_logged_without_parameters(client, every_query_slow, json_log):
    before = observability.SLOW_QUERIES._value.get()
    db.session.execute(text("SELECT :mobile AS m"), {"mobile": "+8613800138000"})
    db.session.rollback()
    [line] = [e for e in json_log()
              if e["logger"] == "tessera.sql" and e["message"].endswith(" AS m")]
    assert line["level"] == "WARNING"
    assert "13800138000" not in json.dumps(line) and line["duration_ms"] >= 0
    slow = [e for e in json_log() if e["logger"] == "tessera.sql"]
    assert observability.SLOW_QUERIES._value.get() - before == len(slow)


def test_slow_query_lines_carry_the_request_id(client, every_query_slow, json_log):
    r = client.get("/healthz")
    lines = [e for e in json_log() if e["logger"] == "tessera.sql"]
    assert lines and {e["request_id"] for e in lines} == {r.headers["X-Request-ID"]}


def test_fast_queries_are_not_logged(client, json_log):
    client.get("/healthz")
    assert not [e for e in json_log() if e["logger"] == "tessera.sql"]


MULTIPROCESS_SCRIPT = """
import sys
from prometheus_client.parser import text_string_to_metric_families
from portal import create_app

app = create_app({"ENV": "test", "DATABASE_URL": "sqlite:///" + sys.argv[2]})
client = app.test_client()
client.get("/healthz")
client.get("/healthz")
if sys.argv[1] == "scrape":
    body = client.get("/metrics").get_data(as_text=True)
    print(sum(s.value for f in text_string_to_metric_families(body) for s in f.samples
              if s.name == "tessera_http_requests_total"
              and s.labels["endpoint"] == "/healthz"))
"""


def test_worker_counts_are_added_up_at_scrape(tmp_path):
    """As under gunicorn: two processes count; one answers the scrape, with the sum."""
    env = {"TESSERA_ENV": "test", "PATH": "/usr/bin:/bin",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    (tmp_path / "metrics").mkdir()

    def run(mode):
        return subprocess.run([sys.executable, "-c", MULTIPROCESS_SCRIPT, mode,
                               str(tmp_path / "t.db")], env=env, capture_output=True,
                              text=True, check=True, timeout=120).stdout

    run("hit")
    assert float(run("scrape").strip().splitlines()[-1]) == 4
