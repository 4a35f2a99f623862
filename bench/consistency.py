"""The consistency check over a large generated book: `python -m bench.consistency [URL]`.

50,000 members, each with a points account of 4 entries (200,000 ledger entries, lots
partly spent) and 2 coupons of one of 20 limited templates (100,000 coupons and their
per-member counters). The data is consistent; the check must find nothing. Prints the
rows and the check's time (best of 3). URL: a database to fill (emptied first), by
default a fresh SQLite file.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

os.environ.setdefault("TESSERA_ENV", "test")

from sqlalchemy import insert, text  # noqa: E402

from portal import clock, create_app  # noqa: E402
from portal.db import db  # noqa: E402

MEMBERS = 50_000
TEMPLATES = 20


def _fill(session) -> None:
    from portal.coupons.models import (
        Coupon,
        CouponTemplate,
        IssueBatch,
        MemberTemplateCount,
    )
    from portal.ledger import Account, Entry
    from portal.members.models import Member

    now = clock.now()
    session.execute(insert(Member), [{"id": i, "mobile": f"+86139{i:08d}", "created_at": now}
                                     for i in range(1, MEMBERS + 1)])
    session.execute(insert(Account), [
        {"id": i, "kind": "points", "owner_type": "member", "owner_id": i, "currency": "",
         "balance": 100, "created_at": now} for i in range(1, MEMBERS + 1)])
    # +100 expiring, +50, -60 (spent from the expiring lot), +10: balance 100, lots 40+50+10.
    steps = ((100, 100, 40), (50, 150, 50), (-60, 90, 0), (10, 100, 10))
    session.execute(insert(Entry), [
        {"account_id": i, "delta": d, "balance_after": after, "open_amount": open_,
         "reason": "bench", "idempotency_key": f"k{n}", "created_at": now}
        for i in range(1, MEMBERS + 1) for n, (d, after, open_) in enumerate(steps)])
    per_template = MEMBERS * 2 // TEMPLATES
    session.execute(insert(CouponTemplate), [
        {"id": t, "kind": "cash", "internal_name": f"T{t}", "title": f"T{t}",
         "currency": "CNY", "amount_minor": 1000, "validity_kind": "relative",
         "starts_after_days": 0, "valid_days": 30, "inventory_total": per_template + 100,
         "inventory_left": 100, "status": "active", "product_ids": [], "extra_fields": {},
         "channels": ["POS"], "created_at": now, "updated_at": now}
        for t in range(1, TEMPLATES + 1)])
    session.execute(insert(IssueBatch), [
        {"id": i, "key": f"b{i}", "member_id": i, "template_id": 1 + i % TEMPLATES,
         "quantity": 2, "source": "bench", "created_at": now} for i in range(1, MEMBERS + 1)])
    session.execute(insert(MemberTemplateCount), [
        {"member_id": i, "template_id": 1 + i % TEMPLATES, "issued": 2}
        for i in range(1, MEMBERS + 1)])
    session.execute(insert(Coupon), [
        {"code": f"C{i:09d}{n}", "template_id": 1 + i % TEMPLATES, "member_id": i,
         "batch_id": i, "status": "available", "valid_from": now, "valid_until": now,
         "issued_at": now} for i in range(1, MEMBERS + 1) for n in range(2)])
    session.commit()


def main(url: str | None = None) -> None:
    url = url or f"sqlite:///{tempfile.mkdtemp(prefix='tessera-bench-')}/consistency.db"
    app = create_app({"ENV": "test", "DATABASE_URL": url})
    from alembic import command

    from portal.cli import alembic_config
    from portal.consistency import services as consistency

    with app.app_context():
        if url.startswith("postgresql"):
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        command.upgrade(alembic_config(url), "head")
        _fill(db.session)
        if url.startswith("postgresql"):
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(text("ANALYZE"))
        best = None
        for _ in range(3):
            started = time.perf_counter()
            result = consistency.check(db.session)
            seconds = time.perf_counter() - started
            best = seconds if best is None else min(best, seconds)
        assert result.ok, result.mismatches[:5]
        for name, counts in result.by_check.items():
            print(f"rows.{name}: {counts['rows']}")
        print(f"check_seconds: {best:.2f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
