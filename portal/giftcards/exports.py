"""Exports of the sold cards and of the transactions (spec 2.5.4–2.5.5): every row the
list's filters match, not only its first page, read in id chunks through the same queries
as the lists (a fixed number of queries per chunk, memory flat), and audited."""
from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy.orm import Session

from portal.db import transaction
from portal.giftcards import staff as giftcard_staff
from portal.giftcards.staff import SoldCard, TransactionRow

CHUNK = 1_000


def record(session: Session, operator_id: int | None, what: str, filters: dict) -> None:
    """Who took which list out, with which filters ("giftcard.export")."""
    from portal.staff import services as staff

    with transaction(session):
        staff.record(session, operator_id, "giftcard.export", ("giftcards", what),
                     after={k: v for k, v in filters.items() if v})


def sold_cards(session: Session, *, number: str | None = None, phone: str | None = None,
               status: str | None = None, chunk: int = CHUNK) -> Iterator[SoldCard]:
    """Every card the sold list shows for these filters, newest first."""
    before = None
    while True:
        found = giftcard_staff.sold_cards(session, number=number, phone=phone, status=status,
                                          before_id=before, limit=chunk)
        yield from found
        if len(found) < chunk:
            return
        before = found[-1].card.id


def transactions(session: Session, *, kind: str | None = None, number: str | None = None,
                 chunk: int = CHUNK, **dates) -> Iterator[TransactionRow]:
    """Every transaction the list shows for these filters (`since`, `until` as there),
    newest first."""
    before = None
    while True:
        found = giftcard_staff.transactions(session, kind=kind, number=number,
                                            before_id=before, limit=chunk, **dates)
        yield from found
        if len(found) < chunk:
            return
        before = found[-1].tx.id


def history(session: Session, limit: int = 50):
    """The latest exports (their audit entries, with the operator), newest first."""
    from portal.staff import services as staff

    return staff.audit_page(session, action="giftcard.export", limit=limit)
