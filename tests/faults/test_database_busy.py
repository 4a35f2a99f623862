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
