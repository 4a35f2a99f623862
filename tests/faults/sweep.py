"""The grant-delivery sweep in a process of its own, as a consumer's minute tick runs it,
made to hang just before its Nth transaction commits so that a test can kill it there:
`python -m tests.faults.sweep N` (database from TESSERA_DATABASE_URL).

When it hangs it prints one line: the coupons its open transaction can see, and on
PostgreSQL its server process id (the test waits for the server to roll it back)."""
from __future__ import annotations

import sys
import time

from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from portal import create_app
from portal.campaigns import services as campaigns
from portal.coupons.models import Coupon
from portal.db import db

if __name__ == "__main__":
    hang_at = int(sys.argv[1])
    commits = 0

    @event.listens_for(Session, "before_commit")
    def _hang(session: Session) -> None:
        global commits
        if session.in_nested_transaction():
            return  # a savepoint released, not a delivery committed
        commits += 1
        if commits == hang_at:
            session.flush()
            seen = session.scalar(select(func.count(Coupon.id)))
            pid = session.scalar(text("SELECT pg_backend_pid()")) \
                if session.bind.dialect.name == "postgresql" else 0
            print(seen, pid, flush=True)
            time.sleep(600)

    app = create_app()
    with app.app_context():
        campaigns.deliver_due(db.session)
    print("finished", flush=True)
