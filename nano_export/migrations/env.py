"""Alembic environment: runs migrations on the engine handed over by ``nano_export.db.upgrade``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from nano_export.schema import is_ours, metadata

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # plain `alembic` command line: use the URL of the ini file
    engine = create_engine(
        config.get_main_option("sqlalchemy.url") or "sqlite:///data/nano-export.db"
    )

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=False,
        include_name=is_ours,
    )
    if connection.dialect.name == "postgresql":
        # Several processes may run `init` at once on a shared server: serialise them.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(727274)")
    context.run_migrations()
