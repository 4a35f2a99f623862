"""`make bench`: figures as ratios measured in one run, one `name: value` line each.

- page_cost_ratio.<page>: requests/s of the page divided by requests/s of a bare route in
  the same app (1.0 would be free; lower is more expensive).
- queries.<page>: SQL statements one request of the page runs.
Also written to bench/results.json.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TESSERA_ENV", "test")

from sqlalchemy import event  # noqa: E402

from portal import create_app  # noqa: E402
from portal.db import db, transaction  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "400"))


def _setup():
    tmp = tempfile.mkdtemp(prefix="tessera-bench-")
    url = f"sqlite:///{tmp}/bench.db"
    app = create_app({"ENV": "test", "DATABASE_URL": url, "WTF_CSRF_ENABLED": False,
                      "UPLOAD_DIR": tmp})
    app.add_url_rule("/__bench/bare", "bench_bare", lambda: "ok")
    from alembic import command

    from portal.cli import alembic_config
    from portal.seed import seed_demo

    with app.app_context():
        command.upgrade(alembic_config(url), "head")
        seed_demo(db.session)
        from portal.members.models import Member, MemberCard, Store
        from portal.staff.models import StaffUser

        member = db.session.query(Member).join(MemberCard).first()
        owner = db.session.query(StaffUser).filter_by(role="owner").one()
        with transaction(db.session):
            member.locale = "en"
        ids = {"member": (member.id, member.session_version),
               "card": member.cards[0].id,
               "owner": (owner.id, owner.session_version),
               "store": db.session.query(Store.id).first()[0]}
    return app, ids


def _client(app, prefix, ident):
    client = app.test_client()
    with client.session_transaction() as s:
        s["_user_id"] = f"{prefix}:{ident[0]}:{ident[1]}"
        s["_fresh"] = True
    return client


def _rate(client, url, rounds=ROUNDS):
    for _ in range(20):  # warm caches and templates
        client.get(url)
    start = time.perf_counter()
    for _ in range(rounds):
        r = client.get(url)
        assert r.status_code == 200, (url, r.status_code)
    return rounds / (time.perf_counter() - start)


def _queries(app, client, url):
    count = 0

    def on_execute(*_args):
        nonlocal count
        count += 1

    event.listen(db.engine, "before_cursor_execute", on_execute)
    try:
        client.get(url)
    finally:
        event.remove(db.engine, "before_cursor_execute", on_execute)
    return count


def main() -> dict[str, float]:
    app, ids = _setup()
    member = _client(app, "m", ids["member"])
    owner = _client(app, "s", ids["owner"])
    results: dict[str, float] = {}
    bare = _rate(member, "/__bench/bare")
    results["page_cost_ratio.member_home"] = round(_rate(member, "/card") / bare, 3)
    results["page_cost_ratio.registration_page"] = round(_rate(app.test_client(), "/r/join")
                                                         / bare, 3)
    results["page_cost_ratio.admin_members"] = round(
        _rate(owner, "/admin/members", rounds=ROUNDS // 4) / bare, 3)
    member_pages = {"member_home": "/card", "card_detail": f"/cards/{ids['card']}",
                    "profile": "/me", "profile_edit": "/me/edit",
                    "mobile_change": "/me/mobile"}
    for name, url in member_pages.items():
        results[f"queries.{name}"] = _queries(app, member, url)
    results["queries.registration_page"] = _queries(app, app.test_client(), "/r/join")
    for name, url in {"admin_members": "/admin/members", "admin_pages": "/admin/pages",
                      "admin_page_edit": "/admin/pages/1",
                      "admin_member_detail": "/admin/members/1"}.items():
        results[f"queries.{name}"] = _queries(app, owner, url)
    return results


if __name__ == "__main__":
    figures = main()
    for name, value in figures.items():
        print(f"{name}: {value}")
    Path(__file__).with_name("results.json").write_text(json.dumps(figures, indent=2) + "\n")
