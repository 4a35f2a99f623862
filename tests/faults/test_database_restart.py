"""PostgreSQL restarting under load: requests in flight and requests made while it is
away get a clean 503 (a page, or problem+json for tills), nothing is half-written, and
requests succeed again once it is back.

The restart is played by a TCP proxy between the app and the machine's PostgreSQL
(tests/faults/proxy.py); the server itself keeps running."""
from __future__ import annotations

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

from portal import ledger
from portal.db import db, make_engine
from portal.loyalty.models import Order
from tests.conftest import TEST_DATABASE_URL, is_postgres
from tests.faults.proxy import TcpProxy
from tests.fixtures import sign_in_as
from tests.web import test_api_loyalty
from tests.web.test_api_loyalty import _order

pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(not is_postgres(), reason="a database restart needs a server "
                                 "between processes: set TEST_DATABASE_URL to PostgreSQL")]

till = test_api_loyalty.till  # a till's API key, with an earning rule on the plan


@pytest.fixture
def restart(app):
    """The app's engine goes through the proxy for the test; `direct` reads behind it."""
    url = make_url(TEST_DATABASE_URL)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).up()
    proxied = make_engine(url.set(host="127.0.0.1", port=proxy.port)
                          .render_as_string(hide_password=False))
    direct = db.engine
    db.session.remove()
    db.engine = proxied
    db.session.configure(bind=proxied)
    yield proxy, direct
    db.session.remove()
    db.engine = direct
    db.session.configure(bind=direct)
    proxied.dispose()
    proxy.down()


def _count(engine, model) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(model))


def test_order_cut_off_mid_write_leaves_no_rows_and_the_retry_records_it_once(
        client, till, member, restart):
    proxy, direct = restart
    headers, store_code = till
    card_no = db.session.merge(member).cards[0].number
    seen = []

    def crash_before_the_points(_conn, _cursor, statement, *_args):
        seen.append(statement.split("(")[0].strip())
        if statement.startswith("INSERT INTO ledger_entries"):
            proxy.cut()

    event.listen(db.engine, "before_cursor_execute", crash_before_the_points)
    try:
        r = client.post("/api/v1/orders", headers=headers, json=_order(card_no, store_code))
    finally:
        event.remove(db.engine, "before_cursor_execute", crash_before_the_points)

    assert "INSERT INTO orders" in seen  # the order row was written when it went down
    assert r.status_code == 503
    assert r.mimetype == "application/problem+json"
    assert r.json["code"] == "service_unavailable"
    assert r.json["type"].endswith("/service_unavailable")
    assert r.json["request_id"] == r.headers["X-Request-ID"]
    assert int(r.headers["Retry-After"]) > 0
    assert (_count(direct, Order), _count(direct, ledger.Entry)) == (0, 0)

    again = client.post("/api/v1/orders", headers=headers, json=_order(card_no, store_code))
    assert again.status_code == 201 and again.json["points_earned"] == 64
    assert _count(direct, Order) == 1
    with direct.connect() as conn:  # points and experience, once each
        assert conn.scalar(select(func.count()).where(ledger.Entry.reason == "order")) == 2


def test_pages_and_the_api_answer_503_while_the_database_is_down_then_recover(
        client, till, member, restart):
    proxy, _direct = restart
    headers, _store_code = till
    card_no = db.session.merge(member).cards[0].number
    sign_in_as(client, member)
    assert client.get("/card").status_code == 200  # a pooled connection to lose

    proxy.down()
    page = client.get("/card", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 503 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "暂时无法使用" in text and page.headers["X-Request-ID"] in text
    assert int(page.headers["Retry-After"]) > 0
    fragment = client.get("/card", headers={"HX-Request": "true"})
    assert fragment.status_code == 503 and "<html" not in fragment.get_data(as_text=True)
    api = client.get(f"/api/v1/members/lookup?card_no={card_no}", headers=headers)
    assert api.status_code == 503 and api.json["code"] == "service_unavailable"
    assert client.get("/healthz").status_code == 503

    proxy.up()
    assert client.get("/card").status_code == 200
    assert client.get(f"/api/v1/members/lookup?card_no={card_no}",
                      headers=headers).status_code == 200
    assert client.get("/healthz").status_code == 200
