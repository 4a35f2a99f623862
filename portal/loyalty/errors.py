from __future__ import annotations

from enum import StrEnum


class LoyaltyErrorCode(StrEnum):
    UNKNOWN_CARD = "unknown_card"
    UNKNOWN_ORDER = "unknown_order"
    UNKNOWN_LINE = "unknown_line"
    REFUND_TOO_LARGE = "refund_too_large"
    WRONG_CURRENCY = "wrong_currency"
    INVALID = "invalid"
    INSUFFICIENT_POINTS = "insufficient_points"
    ALREADY_MEMBER = "already_member"
    CARD_INACTIVE = "card_inactive"
    MEMBER_ABNORMAL = "member_abnormal"
    UNKNOWN_EVENT = "unknown_event"
    REFERENCE_USED = "reference_used"
    MEMBER_CLOSED = "member_closed"


class LoyaltyError(Exception):
    def __init__(self, code: LoyaltyErrorCode, message: str, **details):
        super().__init__(message)
        self.code = code
        self.details = details
