from __future__ import annotations

from enum import StrEnum


class CouponErrorCode(StrEnum):
    INACTIVE = "inactive"
    OUT_OF_STOCK = "out_of_stock"
    LIMIT_REACHED = "limit_reached"
    BAD_QUANTITY = "bad_quantity"
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    NOT_A_MEMBER = "not_a_member"
    LOCKED = "locked"
    MEMBER_CLOSED = "member_closed"


class CouponError(Exception):
    """A coupon rule refused the request; `code` is stable, the message is for people."""

    def __init__(self, code: CouponErrorCode, message: str, **details):
        super().__init__(message)
        self.code = code
        self.details = details
