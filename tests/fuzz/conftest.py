"""Fixtures for the API fuzz tests: the seeded merchant, and the app as Schemathesis calls it."""
from __future__ import annotations

import contextvars

import pytest

from portal.db import db
from tests.fuzz.world import seed


@pytest.fixture
def world(plan):
    return seed(plan)


@pytest.fixture
def fuzz_app(app, monkeypatch):
    """The app, each request in a fresh context as on a real server (what IsolatedClient
    does for the test client): Schemathesis calls the WSGI app itself, including the
    probes its checks send, and these must not share the test's session or `g`."""
    inner = app.wsgi_app

    def isolated(environ, start_response):
        db.session.commit()  # end the test's read transaction: SQLite would pin a snapshot
        return contextvars.Context().run(inner, environ, start_response)

    monkeypatch.setattr(app, "wsgi_app", isolated)
    return app
