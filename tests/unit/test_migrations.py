from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from portal.db import db
from portal.models import metadata


def test_models_and_migrations_agree():
    """The schema comes only from migrations: a model change needs a migration."""
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    assert diff == []
