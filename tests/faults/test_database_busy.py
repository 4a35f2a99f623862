"""What counts as the database being away, on SQLite too (the PostgreSQL restart itself
is test_database_restart): a lock wait that ran out is worth a retry (503), a missing
table is a bug (the ordinary 500)."""
from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from portal.db import db, is_unavailable
from tests.conftest import is_postgres
from tests.fixtures import sign_in_as

sqlite_only = pytest.mark.skipif(is_postgres(), reason="raises SQLite's own errors")


def _failing_with(message: str):
    def execute(_cursor, _statement, _parameters, _context):
        raise sqlite3.OperationalError(message)

    return execute


def test_a_full_pool_counts_as_unavailable():
    assert is_unavailable(PoolTimeout("QueuePool limit of size 10 overflow 10 reached"))


@sqlite_only
def test_a_lock_wait_that_ran_out_answers_503_in_the_viewers_language(client, member):
    sign_in_as(client, member)
    locked = _failing_with("database is locked")
    event.listen(db.engine, "do_execute", locked)
    try:
        r = client.get("/card", headers={"Accept-Language": "zh-CN"})
    finally:
        event.remove(db.engine, "do_execute", locked)
    assert r.status_code == 503 and "暂时无法使用" in r.get_data(as_text=True)
    assert r.headers["X-Request-ID"] in r.get_data(as_text=True)
    assert client.get("/card").status_code == 200


@sqlite_only
def test_a_missing_table_stays_a_server_error(client, member):
    sign_in_as(client, member)
    missing = _failing_with("no such table: members")
    event.listen(db.engine, "do_execute", missing)
    try:
        with pytest.raises(OperationalError, match="no such table"):
            client.get("/card")  # tests propagate what production answers with a 500
    finally:
        event.remove(db.engine, "do_execute", missing)


class _PgError(Exception):
    def __init__(self, sqlstate):
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize("sqlstate,away", [
    (None, True),          # the connection itself failed: no server answered
    ("08006", True),       # connection_failure
    ("57P01", True),       # admin_shutdown: a restart
    ("57P03", True),       # cannot_connect_now: still starting
    ("53300", True),       # too_many_connections
    ("40P01", False),      # deadlock_detected: our bug, paged as a 500
    ("40001", False),      # serialization_failure
    ("57014", False),      # query_canceled: a statement timeout
])
def test_postgresql_errors_count_as_away_only_when_the_server_is(sqlstate, away):
    error = OperationalError("SELECT 1", {}, _PgError(sqlstate))
    assert is_unavailable(error) is away
