"""Codes the edges (member and admin pages) map; the message is for people."""
from __future__ import annotations

from enum import StrEnum


class RightsErrorCode(StrEnum):
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    ALREADY_REQUESTED = "already_requested"   # a closure request already waits
    ALREADY_DECIDED = "already_decided"
    CLOSED = "closed"                         # the account is closed already
    BALANCE_LEFT = "balance_left"             # prepaid money must go back first
    PAYMENT_UNDER_WAY = "payment_under_way"   # a checkout may still bring money in


class RightsError(Exception):
    """A data-rights rule refused the request; `details["errors"]` (when given) says what
    is wrong by field."""

    def __init__(self, code: RightsErrorCode, message: str, **details):
        super().__init__(message)
        self.code = code
        self.details = details
