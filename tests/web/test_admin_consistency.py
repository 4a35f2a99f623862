"""The owners' view of the consistency check: the runs, one run's mismatches, the
dashboard warning, "Check now", and `flask consistency check` for scripts."""
from __future__ import annotations

import pytest
from sqlalchemy import select, text

from portal import ledger
from portal.consistency import services as consistency
from portal.consistency.models import CheckRun
from portal.db import db, transaction
from portal.ledger import AccountKind
from portal.staff.models import AuditEntry
from tests.fixtures import sign_in_as


@pytest.fixture
def points(member):
    with transaction(db.session):
        acc = ledger.account(db.session, AccountKind.POINTS, "member", member.id)
        ledger.post(db.session, acc, 100, reason="order", key="earn:1")
    return acc.id


def break_points(account_id: int) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE ledger_accounts SET balance = 999 WHERE id = :id"),
                     {"id": account_id})


def test_the_runs_and_a_runs_mismatches_are_listed(owner_client, points):
    clean = consistency.run_check(db.session)
    break_points(points)
    broken = consistency.run_check(db.session)
    page = owner_client.get("/admin/consistency").get_data(as_text=True)
    assert f"/admin/consistency/{clean.run_id}" in page
    assert f"/admin/consistency/{broken.run_id}" in page
    detail = owner_client.get(f"/admin/consistency/{broken.run_id}").get_data(as_text=True)
    assert f"ledger_accounts #{points}.balance" in detail
    assert "999" in detail and "100" in detail
    assert "Balance against the sum of its entries" in detail


@pytest.mark.parametrize("role", ["manager", "clerk"])
def test_only_owners_see_the_check(client, request, role, points):
    run = consistency.run_check(db.session)
    sign_in_as(client, request.getfixturevalue(role))
    assert client.get("/admin/consistency").status_code == 403
    assert client.get(f"/admin/consistency/{run.run_id}").status_code == 403
    assert client.post("/admin/consistency").status_code == 403


def test_an_unknown_run_is_not_found(owner_client):
    assert owner_client.get("/admin/consistency/999").status_code == 404


def test_the_dashboard_warns_owners_until_a_run_is_clean(client, owner, manager, points):
    break_points(points)
    consistency.run_check(db.session)
    sign_in_as(client, owner)
    assert "See the mismatches" in client.get("/admin/").get_data(as_text=True)
    sign_in_as(client, manager)
    assert "See the mismatches" not in client.get("/admin/").get_data(as_text=True)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE ledger_accounts SET balance = 100"))
    consistency.run_check(db.session)
    sign_in_as(client, owner)
    assert "See the mismatches" not in client.get("/admin/").get_data(as_text=True)


def test_check_now_records_a_run_and_its_owner(owner_client, owner, points):
    break_points(points)
    r = owner_client.post("/admin/consistency")
    assert r.status_code == 303
    db.session.commit()
    run = db.session.scalar(select(CheckRun))
    assert r.headers["Location"].endswith(f"/admin/consistency/{run.id}")
    assert (run.trigger, run.mismatch_count) == ("staff", 3)   # sum, newest entry, lots
    assert db.session.scalar(select(AuditEntry.staff_id).where(
        AuditEntry.action == "consistency.check")) == owner.id


def test_the_pages_run_a_fixed_number_of_queries(owner_client, points):
    from tests.fixtures import count_queries

    break_points(points)
    run = consistency.run_check(db.session)
    few = count_queries(owner_client, f"/admin/consistency/{run.run_id}")
    listing = count_queries(owner_client, "/admin/consistency")
    for _ in range(3):
        consistency.run_check(db.session)
    assert count_queries(owner_client, "/admin/consistency") == listing
    assert count_queries(owner_client, f"/admin/consistency/{run.run_id}") == few


def test_the_command_exits_0_when_consistent_and_1_on_a_mismatch(app, points):
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["consistency", "check"])
    assert ok.exit_code == 0, ok.output
    assert "consistent" in ok.output
    break_points(points)
    bad = runner.invoke(args=["consistency", "check"])
    assert bad.exit_code == 1
    assert "3 MISMATCHES" in bad.output
    assert f"ledger_accounts #{points} balance expected 100, found 999" in bad.output
