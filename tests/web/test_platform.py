"""Cross-cutting behaviour: security headers, CSRF, errors, health, sessions."""
from __future__ import annotations

from unittest import mock

from sqlalchemy.exc import OperationalError


def test_every_page_has_a_strict_csp_and_security_headers(client):
    r = client.get("/sign-in")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp \
        and "unsafe-eval" not in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"]


def test_pages_have_no_inline_script_or_style(client, page):
    for url in ("/", "/sign-in", f"/r/{page.slug}", "/admin/sign-in"):
        body = client.get(url).get_data(as_text=True)
        assert "<script>" not in body and " style=" not in body and "<style" not in body
        assert "hx-on" not in body


def test_missing_csrf_token_gets_the_400_page(client, csrf_on, member):
    r = client.post("/sign-in", data={"mobile": member.mobile})
    assert r.status_code == 400
    assert "<h1>" in r.get_data(as_text=True)


def test_csrf_token_in_the_htmx_header_is_accepted(client, csrf_on, member):
    body = client.get("/sign-in").get_data(as_text=True)
    import re

    token = re.search(r'"X-CSRFToken": "([^"]+)"', body).group(1)
    r = client.post("/sign-in", data={"mobile": member.mobile},
                    headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert r.status_code == 303


def test_error_pages_in_both_languages(client):
    assert "Page not found" in client.get("/nope").get_data(as_text=True)
    zh = client.get("/nope", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "页面" in zh


def test_healthz_reports_the_database(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json == {"status": "ok", "db": "ok"}


def test_healthz_is_503_when_the_database_is_down(client):
    from portal.db import db

    with mock.patch.object(db.session, "execute",
                           side_effect=OperationalError("SELECT 1", {}, Exception("down"))):
        r = client.get("/healthz")
    assert r.status_code == 503 and r.json["db"] == "down"


def test_livez_answers_even_with_the_database_down(client):
    from portal.db import db

    with mock.patch.object(db.session, "execute",
                           side_effect=OperationalError("SELECT 1", {}, Exception("down"))):
        r = client.get("/livez")
    assert r.status_code == 200 and r.get_data(as_text=True) == "ok"


def test_static_addresses_carry_a_version_that_follows_the_content(app, tmp_path):
    import os

    from flask import url_for

    (tmp_path / "css").mkdir()
    sheet = tmp_path / "css" / "site.css"
    sheet.write_text("a { color: red }")
    real, app.static_folder = app.static_folder, str(tmp_path)
    try:
        with app.test_request_context():
            first = url_for("static", filename="css/site.css")
            assert first.startswith("/static/css/site.css?v=") and len(first.split("v=")[1]) == 12
            assert url_for("static", filename="css/site.css") == first
            sheet.write_text("a { color: blue }")
            os.utime(sheet, ns=(1, 1))  # a new modification time, whatever the clock's grain
            assert url_for("static", filename="css/site.css") not in (first, None)
            assert url_for("static", filename="css/missing.css") == "/static/css/missing.css"
    finally:
        app.static_folder = real


def test_pages_link_versioned_static_files(client):
    body = client.get("/sign-in").get_data(as_text=True)
    assert "/static/css/tessera.css?v=" in body and "/static/vendor/htmx.min.js?v=" in body


def test_idle_member_session_expires(client, member):
    from datetime import UTC, datetime, timedelta

    from portal import clock
    from tests.fixtures import sign_in_as

    clock.freeze(datetime(2026, 1, 1, tzinfo=UTC))
    sign_in_as(client, member)
    assert client.get("/card").status_code == 200
    clock.advance(timedelta(days=31))
    assert client.get("/card").status_code == 302


def test_htmx_responses_vary_on_hx_request(client):
    assert "HX-Request" in client.get("/sign-in").headers.get("Vary", "")


def test_server_errors_get_the_500_page(app, client):
    from portal.db import db

    app.config["PROPAGATE_EXCEPTIONS"] = False
    try:
        with mock.patch.object(db.session, "execute", side_effect=RuntimeError("boom")):
            r = client.get("/healthz")
    finally:
        app.config["PROPAGATE_EXCEPTIONS"] = None
    assert r.status_code == 500 and "Something went wrong" in r.get_data(as_text=True)


def test_too_many_requests_get_the_429_page_in_chinese(client, app, member):
    app.config["OTP_SEND_LIMIT_PER_NUMBER"] = "1 per hour"
    try:
        client.post("/sign-in", data={"mobile": member.mobile})
        r = client.post("/sign-in", data={"mobile": member.mobile},
                        headers={"Accept-Language": "zh-CN"})
    finally:
        app.config["OTP_SEND_LIMIT_PER_NUMBER"] = "5 per hour"
    assert r.status_code == 429 and "请求过于频繁" in r.get_data(as_text=True)


def test_idle_staff_session_expires_sooner_than_a_members(client, owner):
    from datetime import UTC, datetime, timedelta

    from portal import clock
    from tests.fixtures import sign_in_as

    clock.freeze(datetime(2026, 1, 1, tzinfo=UTC))
    sign_in_as(client, owner)
    assert client.get("/admin/").status_code == 200
    clock.advance(timedelta(hours=9))
    assert client.get("/admin/").status_code == 303


def test_the_minute_tick_is_on_the_schedule():
    from datetime import datetime

    from portal.jobs import huey

    (tick,) = [t for t in huey._registry._periodic_tasks if t.__name__ == "tick"]
    assert tick().validate_datetime(datetime(2026, 1, 1, 10, 7))  # every minute


def test_brand_colour_feeds_the_css_tokens(app, client):
    app.config["BRAND_COLOR"] = "#aa3300"
    try:
        r = client.get("/theme.css")
    finally:
        app.config["BRAND_COLOR"] = "#0f766e"
    assert r.mimetype == "text/css" and "--t-brand: #aa3300;" in r.get_data(as_text=True)
    assert "/theme.css" in client.get("/sign-in").get_data(as_text=True)


def test_a_malformed_brand_colour_fails_at_start(monkeypatch):
    import pytest

    from portal import config

    monkeypatch.setenv("TESSERA_BRAND_COLOR", "red; } body { display:none")
    with pytest.raises(config.ConfigError):
        config.load({"ENV": "development"})
