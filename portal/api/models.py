"""API clients: tills and online shops, each with a hashed bearer key."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal import clock
from portal.db import Base, UTCDateTime
from portal.members.models import Store


class Channel(StrEnum):
    POS = "POS"
    ONLINE = "ONLINE"


class ApiClient(Base):
    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    channel: Mapped[str] = mapped_column(String(8))
    # The key's first characters, to find the row; then its SHA-256 is compared.
    key_prefix: Mapped[str] = mapped_column(String(12), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    store: Mapped[Store] = relationship()
