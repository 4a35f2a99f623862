"""Codes the edges (member and admin pages) map; the message is for people."""
from __future__ import annotations

from enum import StrEnum


class StudentErrorCode(StrEnum):
    INVALID = "invalid"
    PENDING = "pending"               # a request already waits for review
    ALREADY_DECIDED = "already_decided"
    NOT_FOUND = "not_found"
    GRADUATED = "graduated"           # the graduation date has passed: cannot approve


class StudentError(Exception):
    """A student ID rule refused the request; `details["errors"]` (when given) says what
    is wrong by field."""

    def __init__(self, code: StudentErrorCode, message: str, **details):
        super().__init__(message)
        self.code = code
        self.details = details
