"""Gift card refusals: a stable code the edges map (HTTP status, API error), and a message
for people; `details` carries more (`errors={field: message}` for bad input)."""
from __future__ import annotations

from enum import StrEnum


class GiftCardErrorCode(StrEnum):
    NOT_FOUND = "not_found"
    INVALID = "invalid"
    NOT_NOW = "not_now"                      # not in a state that allows this now
    INACTIVE = "inactive"                    # the product is not on sale
    FROZEN = "frozen"
    EXPIRED = "expired"
    WRONG_STORE = "wrong_store"
    INSUFFICIENT = "insufficient"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    REFUND_TOO_LARGE = "refund_too_large"
    NOT_RECHARGEABLE = "not_rechargeable"


class GiftCardError(Exception):
    """A gift card rule refused the request; `code` is stable, the message is for people."""

    def __init__(self, code: GiftCardErrorCode | str, message: str, **details):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
