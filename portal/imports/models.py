"""Customer and member imports: one row per upload, and the rows that failed."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal import clock
from portal.db import Base, UTCDateTime


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"      # the file as a whole could not be imported; `message` says why


class CustomerImport(Base):
    """One upload of customers and members, processed in the background chunk by chunk.
    `progress` counts the data rows done, committed with each chunk's rows: a run that
    stopped is resumed from there."""

    __tablename__ = "customer_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(200))
    # The upload under UPLOAD_DIR/imports, a random name; removed when the run ends.
    stored_name: Mapped[str | None] = mapped_column(String(64))
    policy: Mapped[str] = mapped_column(String(8))             # skip, update
    status: Mapped[str] = mapped_column(String(8), default=RunStatus.QUEUED, index=True)
    message: Mapped[str | None] = mapped_column(Text)
    # The header as uploaded: the failed-rows file repeats it.
    columns: Mapped[list] = mapped_column(JSON, default=list)
    rows_total: Mapped[int] = mapped_column(default=0)
    progress: Mapped[int] = mapped_column(default=0)
    imported: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now, index=True)
    # Bumped with every chunk: a running import whose heartbeat stops is resumed.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def is_finished(self) -> bool:
        return self.status in (RunStatus.DONE, RunStatus.FAILED)

    @property
    def percent(self) -> int:
        if self.is_finished:
            return 100
        return min(99, self.progress * 100 // self.rows_total) if self.rows_total else 0


class CustomerImportFailure(Base):
    """A row that was not imported: its values as given and why."""

    __tablename__ = "customer_import_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(
        ForeignKey("customer_imports.id", ondelete="CASCADE"), index=True)
    row: Mapped[int]
    values: Mapped[list] = mapped_column(JSON, default=list)
    error: Mapped[str] = mapped_column(Text)
