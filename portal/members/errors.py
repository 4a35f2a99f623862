from __future__ import annotations

from enum import StrEnum


class MemberErrorCode(StrEnum):
    INVALID_MOBILE = "invalid_mobile"
    MOBILE_TAKEN = "mobile_taken"
    INVALID_EMAIL = "invalid_email"
    INVALID_BIRTH_DATE = "invalid_birth_date"
    INVALID_VALUE = "invalid_value"
    REQUIRED = "required"
    TOO_LONG = "too_long"
    CODE_TOO_SOON = "code_too_soon"
    CODE_INVALID = "code_invalid"
    CODE_EXPIRED = "code_expired"
    CODE_BURNT = "code_burnt"
    ALREADY_MEMBER = "already_member"
    PAGE_NOT_PUBLISHED = "page_not_published"
    SLUG_TAKEN = "slug_taken"
    NOT_FOUND = "not_found"
    PLAN_REQUIRED = "plan_required"
    IN_USE = "in_use"
    CODES_UNAVAILABLE = "codes_unavailable"


class MemberError(Exception):
    """A member rule refused the request. `field` names the form field it concerns."""

    def __init__(self, code: MemberErrorCode, message: str, field: str | None = None,
                 **details):
        super().__init__(message)
        self.code = code
        self.field = field
        self.details = details
