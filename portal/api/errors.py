from __future__ import annotations

from flask import jsonify

from portal import logs


class ApiProblem(Exception):
    """An RFC 9457 problem: `code` is stable for programs, `detail` is for people."""

    def __init__(self, status: int, code: str, title: str, detail: str = "", **extra):
        super().__init__(detail or title)
        self.status, self.code, self.title, self.detail, self.extra = (status, code, title,
                                                                       detail, extra)

    def response(self):
        body = {"type": f"https://tessera.dev/problems/{self.code}", "title": self.title,
                "status": self.status, "code": self.code, **self.extra}
        if self.detail:
            body["detail"] = self.detail
        # Quoted to support, it leads to this request's log lines.
        body["request_id"] = logs.request_id()
        response = jsonify(body)
        response.status_code = self.status
        response.mimetype = "application/problem+json"
        return response


def service_unavailable():
    """The database went away mid-request (portal.web.errors sets Retry-After)."""
    return ApiProblem(
        503, "service_unavailable", "Service unavailable",
        "The database could not be reached. A write was either completed or not started; "
        "retry after Retry-After seconds with the same idempotency key or order id."
    ).response()
