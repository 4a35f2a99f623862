from __future__ import annotations

from enum import StrEnum


class PaymentErrorCode(StrEnum):
    NOT_FOUND = "not_found"
    PROVIDER = "provider_unavailable"
    NOT_REFUNDABLE = "not_refundable"
    BAD_AMOUNT = "bad_amount"
    REFUSED = "refused"


class PaymentError(Exception):
    def __init__(self, code: PaymentErrorCode, message: str, **details):
        super().__init__(message)
        self.code = code
        self.details = details


class FulfilmentRefused(Exception):
    """A purpose cannot deliver what was paid for (e.g. its stock went while the payment
    sat expired): the payment is refunded instead."""
