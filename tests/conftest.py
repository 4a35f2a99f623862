"""Test set-up: one database per run (SQLite by default, PostgreSQL with TEST_DATABASE_URL),
built by the Alembic migrations, emptied after every test."""
from __future__ import annotations

import contextvars
import os
import tempfile

os.environ["TESSERA_ENV"] = "test"  # before portal.jobs is imported: immediate queue

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

from portal import clock, create_app
from portal.db import db
from portal.extensions import limiter
from portal.models import metadata

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    if TEST_DATABASE_URL:
        return TEST_DATABASE_URL
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


class IsolatedClient(FlaskClient):
    """Each request runs in a fresh context, as on a real server: the test's own app context
    (and its `g`, where Flask-Login caches the user) must not leak into requests."""

    def open(self, *args, **kwargs):
        # End the test's own read transaction: on SQLite it would pin an old snapshot.
        db.session.commit()
        return contextvars.Context().run(super().open, *args, **kwargs)


@pytest.fixture(scope="session")
def app(database_url):
    upload_dir = tempfile.mkdtemp(prefix="tessera-uploads-")
    app = create_app({"ENV": "test", "DATABASE_URL": database_url, "WTF_CSRF_ENABLED": False,
                      "UPLOAD_DIR": upload_dir})
    app.test_client_class = IsolatedClient
    from alembic import command

    from portal.cli import alembic_config

    with app.app_context():
        if database_url.startswith("postgresql"):
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        command.upgrade(alembic_config(database_url), "head")
    return app


@pytest.fixture(autouse=True)
def _clean(request, app):
    ctx = app.app_context()
    ctx.push()
    limiter.reset()
    yield
    clock.unfreeze()
    # Tests that set another zone would leak it into the next one otherwise.
    clock.set_timezone(app.config["TIMEZONE"])
    db.session.remove()
    _empty_tables()
    ctx.pop()


def _empty_tables() -> None:
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
def session(app):
    return db.session


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def csrf_on(app):
    app.config["WTF_CSRF_ENABLED"] = True
    yield
    app.config["WTF_CSRF_ENABLED"] = False


def is_postgres() -> bool:
    return bool(TEST_DATABASE_URL and TEST_DATABASE_URL.startswith("postgresql"))


from tests.fixtures import *  # noqa: E402,F401,F403 - shared fixtures
