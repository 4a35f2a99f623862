"""API clients: created by staff or the CLI; the key is shown once and stored hashed."""
from __future__ import annotations

import hashlib
import hmac
import secrets

from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from portal import clock
from portal.api.models import ApiClient, Channel
from portal.db import transaction
from portal.members.models import Store
from portal.staff.services import record

KEY_PREFIX_LENGTH = 10


class ApiClientError(ValueError):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def _hash(key: str) -> str:
    # Keys carry 240 random bits, so a fast hash is enough (no password stretching).
    return hashlib.sha256(key.encode()).hexdigest()


def create_client(session: Session, *, name: str, store_code: str, channel: str,
                  operator_id: int | None = None) -> tuple[ApiClient, str]:
    """A new client and its key. The key is returned once and never stored."""
    name = " ".join((name or "").split())
    if not name:
        raise ApiClientError(_("Give the client a name."), "name")
    if channel not in {c.value for c in Channel}:
        raise ApiClientError(_("Choose POS or ONLINE."), "channel")
    with transaction(session):
        store = session.scalar(select(Store).where(Store.code == (store_code or "").upper()))
        if store is None:
            raise ApiClientError(_("There is no store with this code."), "store")
        key = "tk_" + secrets.token_urlsafe(30)
        client = ApiClient(name=name, store_id=store.id, channel=channel,
                           key_prefix=key[:KEY_PREFIX_LENGTH], key_hash=_hash(key),
                           created_by=operator_id)
        session.add(client)
        session.flush()
        record(session, operator_id, "api_client.create", client,
               after={"name": name, "store": store.code, "channel": channel})
        return client, key


def authenticate(session: Session, key: str) -> ApiClient | None:
    client = session.scalar(select(ApiClient).options(selectinload(ApiClient.store))
                            .where(ApiClient.key_prefix == key[:KEY_PREFIX_LENGTH]))
    if client is None or client.revoked_at is not None \
            or not hmac.compare_digest(client.key_hash, _hash(key)):
        return None
    return client


def touch(session: Session, client_id: int) -> None:
    with transaction(session):
        session.execute(update(ApiClient).where(ApiClient.id == client_id)
                        .values(last_used_at=clock.now()))


def revoke(session: Session, client_id: int, *, operator_id: int) -> None:
    with transaction(session):
        client = session.get(ApiClient, client_id)
        if client is None or client.revoked_at is not None:
            return
        client.revoked_at = clock.now()
        record(session, operator_id, "api_client.revoke", client)


def clients(session: Session) -> list[ApiClient]:
    return list(session.scalars(select(ApiClient).options(selectinload(ApiClient.store))
                                .order_by(ApiClient.id.desc())))
