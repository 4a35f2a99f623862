"""Command-line tasks: `flask db upgrade`, `flask seed`, `flask jobs run`, `flask staff create`."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from portal.config import ROOT

db_cli = AppGroup("db", help="Database schema (Alembic migrations).")
jobs_cli = AppGroup("jobs", help="The job queue.")
staff_cli = AppGroup("staff", help="Staff accounts.")


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
    click.echo("Demo data: " + (", ".join(f"{k} {v}" for k, v in created.items())
                                if created else "already present, nothing added"))
    click.echo("Demo sign-ins at http://127.0.0.1:5000/admin (password: tessera-demo):")
    for email, role in (("owner@demo.tessera", "owner"), ("manager@demo.tessera", "manager"),
                        ("clerk@demo.tessera", "clerk")):
        click.echo(f"  {role:8} {email}")
    click.echo("Members sign in at http://127.0.0.1:5000/sign-in with any demo mobile;"
               " the code shows in a banner.")


@jobs_cli.command("run")
@click.option("--workers", default=2, show_default=True)
@click.option("--no-periodic", is_flag=True, help="Leave the schedule to another consumer.")
def run_jobs(workers: int, no_periodic: bool) -> None:
    """Run a Huey consumer (only one consumer should run the periodic schedule)."""
    from huey.consumer import Consumer

    from portal import jobs
    from portal.notifications import services  # noqa: F401 - registers tasks

    jobs._app = current_app._get_current_object()
    Consumer(jobs.huey, workers=workers, worker_type="thread",
             periodic=not no_periodic, check_worker_health=True).run()


@jobs_cli.command("tick")
def tick() -> None:
    """Run the minute tick's sweeps once, now."""
    from portal import jobs

    click.echo(jobs.run_tick())


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


def register(app) -> None:
    app.cli.add_command(db_cli)
    app.cli.add_command(jobs_cli)
    app.cli.add_command(staff_cli)
    app.cli.add_command(seed)
