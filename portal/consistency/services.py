"""Run the consistency check, keep the run, tell the owners when something disagrees.

Nothing here changes a balance or a counter: a mismatch means a bug or a hand edit
somewhere, and a silent correction would hide it and the money it moved. Owners decide,
with the rows in front of them (docs/operations.md, "Consistency check").
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from flask_babel import force_locale, ngettext
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import clock, jobs
from portal.consistency.checks import CHECKS, Mismatch
from portal.consistency.models import CheckRun
from portal.db import transaction

# Per check, the mismatches kept with the run and shown; all of them are counted.
LISTED_PER_CHECK = 100
# In the owners' e-mail, a few lines: the admin page has the rest.
MAILED_LINES = 20


@dataclass
class CheckResult:
    """What one run found. `by_check` is {check: {"table": its table, "rows": rows looked
    at, "mismatches": n}}; `mismatches` lists at most LISTED_PER_CHECK of each check."""

    started_at: datetime
    duration_ms: int
    by_check: dict[str, dict[str, int]]
    mismatches: list[Mismatch] = field(default_factory=list)
    run_id: int | None = None
    reported_to: int = 0

    @property
    def mismatch_count(self) -> int:
        return sum(c["mismatches"] for c in self.by_check.values())

    @property
    def ok(self) -> bool:
        return self.mismatch_count == 0


def check(session: Session, *, now: datetime | None = None) -> CheckResult:
    """Look at every invariant, read-only; a fixed number of queries."""
    started_at = now or clock.now()
    began = time.perf_counter()
    by_check: dict[str, dict[str, int]] = {}
    listed: list[Mismatch] = []
    for c in CHECKS:
        rows, found = c.run(session)
        by_check.update({name: {"table": c.table, "rows": rows, "mismatches": 0}
                         for name in c.names})
        for mismatch in found:
            counts = by_check[mismatch.check]
            counts["mismatches"] += 1
            if counts["mismatches"] <= LISTED_PER_CHECK:
                listed.append(mismatch)
    # End the read transaction: on SQLite it would pin this snapshot for later writes.
    session.commit()
    return CheckResult(started_at=started_at,
                       duration_ms=round((time.perf_counter() - began) * 1000),
                       by_check=by_check, mismatches=listed)


def run_check(session: Session, *, now: datetime | None = None, trigger: str = "manual",
              operator_id: int | None = None) -> CheckResult:
    """Check, keep the run, and mail the owners if anything disagrees. `trigger`: "manual"
    (the command line) or "staff" (an owner's button, who is then `operator_id`)."""
    from portal.staff.services import record

    result = check(session, now=now)
    with transaction(session):
        run = _record(session, result, trigger=trigger, daily_on=None)
        if operator_id is not None:
            record(session, operator_id, "consistency.check", ("consistency_run", run.id),
                   after={"mismatches": result.mismatch_count})
    return result


@jobs.on_daily("consistency_check")
def nightly(session: Session) -> int | None:
    """The nightly run, once per merchant day: a second start (another consumer, a
    retry) finds the day's run and records nothing. Returns the mismatch count."""
    today = clock.today()
    if session.scalar(select(CheckRun.id).where(CheckRun.daily_on == today)):
        return None
    result = check(session)
    try:
        with transaction(session):
            _record(session, result, trigger="daily", daily_on=today)
    except IntegrityError:
        return None  # the other starter recorded (and reported) it
    return result.mismatch_count


def _record(session: Session, result: CheckResult, *, trigger: str, daily_on) -> CheckRun:
    run = CheckRun(trigger=trigger, daily_on=daily_on, started_at=result.started_at,
                   duration_ms=result.duration_ms, checked=result.by_check,
                   mismatch_count=result.mismatch_count,
                   mismatches=[m.as_dict() for m in result.mismatches])
    session.add(run)
    session.flush()
    if not result.ok:
        run.reported_to = _report(session, result, run)
    result.run_id, result.reported_to = run.id, run.reported_to
    return run


def _report(session: Session, result: CheckResult, run: CheckRun) -> int:
    """An e-mail to every active owner, in their language; the outbox delivers it."""
    from portal.notifications import services as notifications
    from portal.notifications.models import Channel
    from portal.staff.models import Role, StaffUser

    owners = session.execute(select(StaffUser.email, StaffUser.locale).where(
        StaffUser.role == Role.OWNER, StaffUser.is_active.is_(True))
        .order_by(StaffUser.id)).all()
    default = current_app.config["BABEL_DEFAULT_LOCALE"]
    for email, locale in owners:
        with force_locale(locale or default):
            subject, body = _wording(result, run)
        notifications.queue(session, channel=Channel.EMAIL, recipient=email,
                            template="consistency", subject=subject, body=body)
    return len(owners)


def _wording(result: CheckResult, run: CheckRun) -> tuple[str, str]:
    subject = ngettext("Consistency check: %(num)d mismatch found",
                       "Consistency check: %(num)d mismatches found", result.mismatch_count)
    lines = [_("The check of %(at)s found cached balances or stock counters that disagree "
               "with the rows they count. Nothing was changed: please have them looked "
               "into.", at=result.started_at.strftime("%Y-%m-%d %H:%M UTC")), ""]
    for name, counts in result.by_check.items():
        if counts["mismatches"]:
            lines.append(f"- {label(name)}: {counts['mismatches']}")
    lines.append("")
    for m in result.mismatches[:MAILED_LINES]:
        lines.append(_("%(what)s, %(table)s #%(row)s: expected %(expected)s, found "
                       "%(actual)s", what=label(m.check), table=m.table, row=m.row_id,
                       expected=m.expected, actual=m.actual))
    if result.mismatch_count > MAILED_LINES:
        lines.append(_("… and %(n)d more.", n=result.mismatch_count - MAILED_LINES))
    public = current_app.config.get("PUBLIC_URL")
    lines += ["", _("All of them: %(url)s", url=f"{public or ''}/admin/consistency/{run.id}")]
    return subject, "\n".join(lines)


def label(check_name: str) -> str:
    """What a check looks at, for people."""
    labels = {
        "ledger_balance": _("Balance against the sum of its entries"),
        "ledger_last_entry": _("Balance against its newest entry"),
        "ledger_lots": _("Balance against what its credits have left"),
        "coupon_inventory": _("Coupon inventory against coupons issued"),
        "coupon_member_count": _("Coupons per member against coupons issued"),
        "topup_plan_stock": _("Top-up plan stock against top-ups holding it"),
        "smart_plan_stock": _("Smart top-up stock against top-ups holding it"),
        "gift_card_history": _("Gift card balance against its history"),
        "gift_card_charge_refunded": _("Gift card charge refunds"),
        "prepaid_charge_refunded": _("Prepaid charge refunds"),
        "payment_refunded": _("Payment refunds"),
    }
    return labels.get(check_name, check_name)


def runs(session: Session, *, before_id: int | None = None, limit: int = 50) -> list[CheckRun]:
    query = select(CheckRun).order_by(CheckRun.id.desc()).limit(limit)
    if before_id:
        query = query.where(CheckRun.id < before_id)
    return list(session.scalars(query))


def get_run(session: Session, run_id: int) -> CheckRun | None:
    return session.get(CheckRun, run_id)


def latest(session: Session) -> CheckRun | None:
    """The newest run: the dashboard warns while it found mismatches."""
    return session.scalar(select(CheckRun).order_by(CheckRun.id.desc()).limit(1))
