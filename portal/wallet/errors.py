"""Codes the edges (API, member pages) map; the message is for people."""
from __future__ import annotations

from enum import StrEnum


class WalletErrorCode(StrEnum):
    UNKNOWN_CARD = "unknown_card"
    UNKNOWN_CHARGE = "unknown_charge"
    CARD_INACTIVE = "card_inactive"
    WRONG_CURRENCY = "wrong_currency"
    INVALID = "invalid"
    INVALID_AMOUNT = "invalid_amount"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    REFUND_TOO_LARGE = "refund_too_large"
    MEMBER_CLOSED = "member_closed"


class WalletError(Exception):
    """A prepaid-balance rule refused the request; `code` is stable, `details` carry the
    numbers an edge may show (e.g. what can be spent now)."""

    def __init__(self, code: WalletErrorCode | str, message: str, **details):
        super().__init__(message)
        self.code = code
        self.details = details
