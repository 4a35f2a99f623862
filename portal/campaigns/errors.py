from __future__ import annotations

from enum import StrEnum


class CampaignErrorCode(StrEnum):
    NOT_FOUND = "not_found"
    NOT_RUNNING = "not_running"
    OUT_OF_SCOPE = "out_of_scope"
    INCOMPLETE = "incomplete"
    ALREADY_CLAIMED = "already_claimed"
    INVALID = "invalid"


class CampaignError(Exception):
    def __init__(self, code: CampaignErrorCode, message: str, **details):
        super().__init__(message)
        self.code = code
        self.details = details
