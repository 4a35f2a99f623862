"""Log lines with the request's or job's id: JSON in production, text for people.

Kept apart from the metrics (portal.observability) so that gunicorn's master can format
its own lines without creating any metric (portal.gunicorn_hooks).
"""
from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

# The current request's id (or a job's, `<job>:<hex>`); set by portal.observability.
context_id: ContextVar[str | None] = ContextVar("tessera_request_id", default=None)


def request_id() -> str | None:
    """The current request's or job's id (None outside both)."""
    return context_id.get()


class ContextFilter(logging.Filter):
    """Puts the request's or job's id on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = context_id.get()
        return True


_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "request_id", "taskName", "rid"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, request_id, the
    record's `extra` fields, and the exception's traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        entry.update((k, v) for k, v in vars(record).items() if k not in _RECORD_FIELDS)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(rid)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.rid = getattr(record, "request_id", None) or "-"
        return super().format(record)


def make_handler(log_format: str) -> logging.Handler:
    """A stderr handler in `log_format` ("json" or "text") that adds the id."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.tessera = True
    return handler


def configure(app) -> None:
    """One handler on the root logger, replaced (not added to) when create_app runs again."""
    from flask.logging import default_handler

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "tessera", False)]:
        root.removeHandler(old)
    root.addHandler(make_handler(app.config["LOG_FORMAT"]))
    root.setLevel(app.config["LOG_LEVEL"])
    app.logger.removeHandler(default_handler)
