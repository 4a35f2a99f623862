"""Command-line tasks: `flask db upgrade`, `flask seed`, `flask jobs run`, `flask staff create`,
`flask consistency check`."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from portal.config import ROOT

db_cli = AppGroup("db", help="Database schema (Alembic migrations).")
jobs_cli = AppGroup("jobs", help="The job queue.")
staff_cli = AppGroup("staff", help="Staff accounts.")
plans_cli = AppGroup("plans", help="Card plans.")
stores_cli = AppGroup("stores", help="Stores.")
consistency_cli = AppGroup("consistency", help="Cached balances and stock against their rows.")


def alembic_config(url: str | None = None):
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["database_url"] = url or current_app.config["DATABASE_URL"]
    return cfg


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Migrate the database to REVISION (default: the newest)."""
    from alembic import command

    _ensure_sqlite_dir(current_app.config["DATABASE_URL"])
    command.upgrade(alembic_config(), revision)


@db_cli.command("revision")
@click.option("-m", "--message", required=True)
def revision(message: str) -> None:
    """Autogenerate a migration from the models (review it before committing)."""
    from alembic import command

    command.revision(alembic_config(), message=message, autogenerate=True)


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite:///"):
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


@click.command("seed")
def seed() -> None:
    """Add the demo merchant's data (idempotent: a second run adds nothing)."""
    from portal.db import db
    from portal.seed import seed_demo

    created = seed_demo(db.session)
    key = created.pop("till key", None)
    click.echo("Demo data: " + (", ".join(f"{k} {v}" for k, v in created.items())
                                if created else "already present, nothing added"))
    if key:
        click.echo(f"Demo till API key (store HQ01, POS; shown once): {key}")
    # Where this deployment answers: :5000 for make run, make serve's own bind for it.
    site = (current_app.config["PUBLIC_URL"] or "").rstrip("/")
    click.echo(f"Demo sign-ins at {site}/admin (password: tessera-demo):")
    for email, role in (("owner@demo.tessera", "owner"), ("manager@demo.tessera", "manager"),
                        ("clerk@demo.tessera", "clerk")):
        click.echo(f"  {role:8} {email}")
    click.echo(f"Members sign in at {site}/sign-in with any demo mobile"
               " (e.g. 13800000000); the code shows in a banner.")
    click.echo(f"A claim link: {site}/c/welcome10")


@jobs_cli.command("run")
@click.option("--workers", default=2, show_default=True)
@click.option("--no-periodic", is_flag=True, help="Leave the schedule to another consumer.")
@click.option("--metrics-port", type=int,
              help="Serve this consumer's job metrics for Prometheus on this port.")
@click.option("--metrics-address", default="127.0.0.1", show_default=True)
def run_jobs(workers: int, no_periodic: bool, metrics_port: int | None,
             metrics_address: str) -> None:
    """Run a Huey consumer (only one consumer should run the periodic schedule)."""
    from huey.consumer import Consumer

    from portal import jobs
    from portal.notifications import services  # noqa: F401 - registers tasks

    jobs._app = current_app._get_current_object()
    if metrics_port:
        # Jobs run here, not in the web workers: their counters are this process's.
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=metrics_address)
    Consumer(jobs.huey, workers=workers, worker_type="thread",
             periodic=not no_periodic, check_worker_health=True).run()


@jobs_cli.command("tick")
def tick() -> None:
    """Run the minute tick's sweeps once, now."""
    from portal import jobs

    click.echo(jobs.run_tick())


@jobs_cli.command("daily")
def daily() -> None:
    """Run the daily sweeps once, now."""
    from portal import jobs

    click.echo(jobs.run_daily())


@staff_cli.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["owner", "manager", "clerk"]), default="owner")
@click.option("--store-id", type=int)
@click.password_option()
def create_staff(email, name, role, store_id, password) -> None:
    from portal.db import db
    from portal.staff.models import Role
    from portal.staff.services import create_staff as create

    user = create(db.session, email=email, name=name, password=password, role=Role(role),
                  store_id=store_id)
    click.echo(f"Created {user.role} {user.email}")


@plans_cli.command("create")
@click.option("--name", required=True)
@click.option("--currency", default=None, help="ISO code; default TESSERA_DEFAULT_CURRENCY")
@click.option("--validity-days", type=int, default=None, help="empty: cards never expire")
@click.option("--tier", "tier_name", default="Member", show_default=True,
              help="name of the lowest tier")
@click.option("--default", "is_default", is_flag=True, help="the plan sign-ups get")
def create_plan(name, currency, validity_days, tier_name, is_default) -> None:
    """Create a card plan with its lowest tier."""
    from portal.db import db
    from portal.members.errors import MemberError
    from portal.members.services import create_plan as create

    try:
        plan = create(db.session, name=name,
                      currency=currency or current_app.config["DEFAULT_CURRENCY"],
                      validity_days=validity_days, tier_name=tier_name, is_default=is_default)
    except MemberError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"Created plan {plan.id}: {plan.name} ({plan.currency})")


@stores_cli.command("create")
@click.option("--name", required=True)
@click.option("--code", required=True)
@click.option("--organisation", default="")
@click.option("--group", "store_group", default="")
def create_store(name, code, organisation, store_group) -> None:
    """Create a store."""
    from portal.db import db
    from portal.members.errors import MemberError
    from portal.members.services import create_store as create

    try:
        store = create(db.session, name=name, code=code, organisation=organisation,
                       store_group=store_group)
    except MemberError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"Created store {store.id}: {store.name} ({store.code})")


@consistency_cli.command("check")
def consistency_check() -> None:
    """Check every cached balance and stock counter now; exit 1 on a mismatch.

    Read-only: it records the run and mails the owners what disagrees, fixing nothing."""
    from portal.consistency import services as consistency
    from portal.db import db

    result = consistency.run_check(db.session)
    for name, counts in result.by_check.items():
        click.echo(f"{name:28} {counts['rows']:>10} rows  {counts['mismatches']:>6} mismatches")
    for m in result.mismatches:
        click.echo(f"  {m.check}: {m.table} #{m.row_id} {m.field} expected {m.expected},"
                   f" found {m.actual}" + (f" ({m.owner})" if m.owner else ""))
    verdict = "consistent" if result.ok else f"{result.mismatch_count} MISMATCHES"
    click.echo(f"Run {result.run_id}: {verdict} in {result.duration_ms} ms"
               + (f"; {result.reported_to} owner(s) mailed" if not result.ok else ""))
    if not result.ok:
        raise SystemExit(1)


def register(app) -> None:
    app.cli.add_command(db_cli)
    app.cli.add_command(jobs_cli)
    app.cli.add_command(staff_cli)
    app.cli.add_command(plans_cli)
    app.cli.add_command(stores_cli)
    app.cli.add_command(consistency_cli)
    app.cli.add_command(seed)
    app.cli.add_command(create_api_client)


@click.command("create-api-client")
@click.option("--store", "store_code", required=True, help="the store's code")
@click.option("--name", required=True)
@click.option("--channel", type=click.Choice(["POS", "ONLINE"]), default="POS",
              show_default=True)
def create_api_client(store_code: str, name: str, channel: str) -> None:
    """Create a till or shop client and print its key (shown only this once)."""
    from portal.api.services import ApiClientError
    from portal.api.services import create_client as create
    from portal.db import db

    try:
        client, key = create(db.session, name=name, store_code=store_code, channel=channel)
    except ApiClientError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"Client {client.id} ({name}, {channel}) for store {store_code.upper()}.")
    click.echo(f"Key (shown once, keep it secret): {key}")
