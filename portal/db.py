"""The typed declarative base, the engine and the request-scoped session.

Services open write transactions with `transaction(session)`: a read earlier in the
request (loading the signed-in user, say) has already auto-begun a read transaction,
so a plain `session.begin()` would fail; and on SQLite a write transaction must start
with BEGIN IMMEDIATE, or two read-then-write requests race or fail "database is locked".
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC

from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use clock.now()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):
            # Let SQLAlchemy, not the driver, decide when transactions begin.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            immediate = conn.get_execution_options().get("tessera_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _session_scope() -> int:
    """One session per app context (so per request, per task), else per thread."""
    from flask import has_app_context
    from flask.globals import app_ctx

    if has_app_context():
        return id(app_ctx._get_current_object())
    import threading

    return threading.get_ident()


class Database:
    """Holds the engine and the scoped session; bound to an app by init_app."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.session: scoped_session[Session] = scoped_session(
            sessionmaker(expire_on_commit=False), scopefunc=_session_scope
        )

    def init_app(self, app) -> None:
        if self.engine is not None:
            self.engine.dispose()
        self.engine = make_engine(app.config["DATABASE_URL"])
        self.session.remove()
        self.session.configure(bind=self.engine)

        @app.teardown_appcontext
        def _remove_session(_exc):
            self.session.remove()


db = Database()


@contextmanager
def transaction(session: Session) -> Iterator[Session]:
    """One write transaction; nested calls join the outer one."""
    if isinstance(session, scoped_session):
        session = session()
    if session.info.get("writing"):
        yield session
        return
    if session.in_transaction():
        # Only reads can have happened outside a write transaction: end them.
        session.commit()
    session.info["writing"] = True
    session.info["after_commit"] = []
    try:
        with session.begin():
            session.connection(execution_options={"tessera_write": True})
            yield session
    except BaseException:
        session.info.pop("after_commit", None)
        raise
    finally:
        session.info["writing"] = False
    for callback in session.info.pop("after_commit", []):
        callback()


def after_commit(session: Session, callback) -> None:
    """Run `callback` once the current write transaction has committed (never if it fails)."""
    if session.info.get("writing"):
        session.info["after_commit"].append(callback)
    else:
        callback()


def is_unavailable(exc: BaseException) -> bool:
    """Whether a database error means the database could not be reached or talked to (a
    restart, a network cut, a pool with no connection free, SQLite's lock wait running
    out): worth a retry, unlike a bug. SQLite also reports a missing table as an
    OperationalError, which stays a bug."""
    if isinstance(exc, DisconnectionError | PoolTimeout):
        return True
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    if exc.connection_invalidated:
        return True
    if type(exc.orig).__module__.startswith("sqlite3"):
        reason = str(exc.orig).lower()
        return "locked" in reason or "busy" in reason or "unable to open" in reason
    # PostgreSQL: a failed connection has no SQLSTATE, or one of class 08; a server shutting
    # down or starting, or out of connections, says so. Deadlocks, serialization failures
    # and statement timeouts are OperationalErrors too, but they are our bugs to see.
    state = getattr(exc.orig, "sqlstate", None)
    return state is None or state.startswith("08") or state in _PG_UNAVAILABLE


# admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections
_PG_UNAVAILABLE = frozenset({"57P01", "57P02", "57P03", "53300"})
