"""Error pages in the viewer's language; HTMX requests get the message block only."""
from __future__ import annotations

from flask import jsonify, make_response, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError

from portal import logs
from portal.web.render import render

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
}


def _error_page(status: int, detail: str | None = None):
    title, message = MESSAGES[status]
    if detail == "preview":
        message = _l("This is a preview: nothing can be changed.")
    if request.path.startswith("/api/"):
        from portal.api.errors import ApiProblem

        return ApiProblem(status, {404: "not_found", 405: "method_not_allowed",
                                   429: "too_many_requests"}.get(status, f"http_{status}"),
                          str(title)).response()
    if request.accept_mimetypes.best == "application/json":
        return jsonify(error={"status": status, "message": str(message),
                              "request_id": logs.request_id()}), status
    return render("errors/error.html", block="content", status=status, code=status,
                  title=title, message=message, request_id=logs.request_id())


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
