"""A member's data request: an export (done at once) or an account closure (staff decide)."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal import clock
from portal.db import Base, UTCDateTime
from portal.members.models import Member
from portal.staff.models import StaffUser


class RequestKind(StrEnum):
    EXPORT = "export"
    CLOSURE = "closure"


class RequestStatus(StrEnum):
    REQUESTED = "requested"
    DONE = "done"
    REFUSED = "refused"


class DataRequest(Base):
    __tablename__ = "data_requests"
    __table_args__ = (
        Index("ix_data_requests_status", "status", "kind", "id"),
        Index("ix_data_requests_member", "member_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10), default=RequestStatus.REQUESTED)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    # Set while a closure waits, cleared on the decision: the unique index allows one open
    # closure a member, also when two submissions race.
    open_member_id: Mapped[int | None] = mapped_column(unique=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    processed_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    # What the member wrote when asking, and what staff answered (a refusal's reason).
    note: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    # What processing did, for the record: balances forfeited, rows anonymised.
    outcome: Mapped[dict | None] = mapped_column(JSON)

    member: Mapped[Member] = relationship()
    operator: Mapped[StaffUser | None] = relationship()

    @property
    def is_open(self) -> bool:
        return self.status == RequestStatus.REQUESTED
