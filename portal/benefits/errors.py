"""Codes the edges (admin pages, member pages) map; the message is for people."""
from __future__ import annotations

from enum import StrEnum


class BenefitErrorCode(StrEnum):
    INVALID = "invalid"
    NOT_FOUND = "not_found"


class BenefitError(Exception):
    """A benefit rule refused the request; `code` is stable, the message is for people,
    `details["errors"]` (when given) says what is wrong by field."""

    def __init__(self, code: BenefitErrorCode | str, message: str, **details):
        super().__init__(message)
        self.code = code
        self.details = details
