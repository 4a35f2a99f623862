"""One run of the consistency check, kept with what it found."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from portal import clock
from portal.db import Base, UTCDateTime


class CheckRun(Base):
    __tablename__ = "consistency_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    # "daily" (the nightly job), "manual" (`flask consistency check`) or "staff" (an
    # owner's "Check now").
    trigger: Mapped[str] = mapped_column(String(10))
    # The merchant's day a nightly run covers: unique, so the night runs once even when
    # two consumers or a retry start it.
    daily_on: Mapped[date | None] = mapped_column(unique=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    duration_ms: Mapped[int] = mapped_column(default=0)
    # {check name: {"table", "rows" looked at, "mismatches" found}}.
    checked: Mapped[dict] = mapped_column(JSON, default=dict)
    mismatch_count: Mapped[int] = mapped_column(default=0)
    # The first mismatches of each check: [{"check", "table", "row_id", "field",
    # "expected", "actual", "owner"}]; `mismatch_count` counts them all.
    mismatches: Mapped[list] = mapped_column(JSON, default=list)
    # How many owners were mailed about it.
    reported_to: Mapped[int] = mapped_column(default=0)

    @property
    def rows_checked(self) -> int:
        """Rows read, each table once (the ledger's three checks read the same accounts)."""
        return sum({c["table"]: c["rows"] for c in self.checked.values()}.values())
