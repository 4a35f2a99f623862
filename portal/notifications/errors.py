from __future__ import annotations

from enum import StrEnum


class NotificationErrorCode(StrEnum):
    INVALID = "invalid"


class NotificationError(Exception):
    """A message rule refused the request; `details["errors"]` maps fields to messages."""

    def __init__(self, code: NotificationErrorCode, message: str, **details):
        super().__init__(message)
        self.code = code
        self.details = details
