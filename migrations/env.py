"""Alembic environment: the schema comes only from these migrations."""
from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

from portal.models import metadata

config = context.config
url = config.attributes.get("database_url") or os.environ.get(
    "TESSERA_DATABASE_URL", "sqlite:///instance/tessera.db")


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True,
                      render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
