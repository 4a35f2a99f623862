from __future__ import annotations

from enum import StrEnum


class StaffErrorCode(StrEnum):
    BAD_CREDENTIALS = "bad_credentials"
    LOCKED = "locked"
    EMAIL_TAKEN = "email_taken"
    STORE_REQUIRED = "store_required"


class StaffError(Exception):
    def __init__(self, code: StaffErrorCode, message: str, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.field = field
