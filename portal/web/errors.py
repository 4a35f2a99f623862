"""Error pages in the viewer's language; HTMX requests get the message block only."""
from __future__ import annotations

import logging

from flask import g, jsonify, make_response, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import (
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from portal import logs
from portal.db import db, is_unavailable
from portal.web.render import render

log = logging.getLogger(__name__)
# Seconds a client is asked to wait when the database is away: a restart or fail-over
# takes about this long, and a till retrying sooner only adds to the queue.
RETRY_AFTER = 5

MESSAGES = {
    400: (_l("Something in the request was wrong"),
          _l("The form may have expired. Go back, reload the page and try again.")),
    403: (_l("Not allowed"), _l("You do not have access to this page.")),
    404: (_l("Page not found"), _l("We could not find what you were looking for.")),
    405: (_l("Not allowed"), _l("This page cannot be used that way.")),
    413: (_l("File too large"), _l("Choose a smaller file and try again.")),
    429: (_l("Too many requests"), _l("Please wait a moment before trying again.")),
    500: (_l("Something went wrong"),
          _l("We have been told about it. Please try again in a moment.")),
    503: (_l("Temporarily unavailable"),
          _l("We cannot reach our records just now. Please try again in a moment.")),
}


def _error_page(status: int, detail: str | None = None):
    title, message = MESSAGES[status]
    if detail == "preview":
        message = _l("This is a preview: nothing can be changed.")
    if request.path.startswith("/api/"):
        from portal.api.errors import ApiProblem

        return ApiProblem(status, {404: "not_found", 405: "method_not_allowed",
                                   429: "too_many_requests", 503: "service_unavailable"}
                          .get(status, f"http_{status}"), str(title)).response()
    if request.accept_mimetypes.best == "application/json":
        return jsonify(error={"status": status, "message": str(message),
                              "request_id": logs.request_id()}), status
    return render("errors/error.html", block="content", status=status, code=status,
                  title=title, message=message, request_id=logs.request_id())


def _database_unavailable(e: SQLAlchemyError):
    """The database went away mid-request (a restart, a fail-over, a full pool). Its
    transaction is gone with the connection, so nothing half-written stays; the caller
    gets a 503 to retry, not a 500 that pages someone for every request of an outage."""
    if not is_unavailable(e):
        raise e  # a bug: the ordinary 500, logged with its traceback
    log.warning("database unavailable: %s", str(e).splitlines()[0][:300],
                extra={"error": type(e).__name__})
    try:
        db.session.rollback()
    except SQLAlchemyError:
        pass
    _render_without_database()
    if request.path.startswith("/api/"):
        from portal.api.errors import service_unavailable

        response = service_unavailable()
    else:
        response = make_response(_error_page(503))
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


def _render_without_database() -> None:
    """The page is drawn as for a visitor: the signed-in user (expired by the rollback),
    their language or their unread count would ask the database again, and fail inside
    the error page."""
    from portal.extensions import login_manager

    g._login_user = login_manager.anonymous_user()
    g.member, g.previewing = None, False


def _method_not_allowed(e):
    response = make_response(_error_page(405))
    # RFC 9110 makes Allow mandatory on a 405: a client learns what the resource takes.
    if getattr(e, "valid_methods", None):
        response.headers["Allow"] = ", ".join(sorted(e.valid_methods))
    return response


def register(app) -> None:
    for status in (400, 403, 404, 413, 429, 500):
        app.register_error_handler(
            status, lambda e, s=status: _error_page(s, getattr(e, "description", None)
                                                    if s == 403 else None))
    app.register_error_handler(405, _method_not_allowed)

    @app.errorhandler(CSRFError)
    def _csrf(_e):
        return _error_page(400)

    for error in (OperationalError, InterfaceError, DisconnectionError, PoolTimeout):
        app.register_error_handler(error, _database_unavailable)
