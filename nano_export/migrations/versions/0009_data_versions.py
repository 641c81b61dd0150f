"""data versions: a token that every write to the executions or their metrics replaces

Revision ID: 0009_data_versions
Revises: 0008_rows_indexes

Explore keeps the non-text columns of the executions in memory (``columnar.py``). Before it uses
them it reads one small row, ``data_versions`` named ``executions``: triggers replace its
``appended`` token on every INSERT into ``executions`` or ``execution_metrics`` and its ``changed``
token on every UPDATE, DELETE or TRUNCATE, in the writing transaction. The tokens are random, so a
value never comes back (not after a TRUNCATE of everything either, when the row is gone until the
next write). On PostgreSQL the triggers are per statement and fire ``ALWAYS``, so the seeder's
bulk COPY (with ``session_replication_role = replica``) still replaces the token.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_data_versions"
down_revision = "0008_rows_indexes"
branch_labels = None
depends_on = None

TABLES = ("executions", "execution_metrics")
_PG_TOKEN = "md5(random()::text || clock_timestamp()::text)"
_SQLITE_TOKEN = "lower(hex(randomblob(16)))"


def _pg_function(name: str, column: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO data_versions (name, appended, changed)
    VALUES ('executions', {_PG_TOKEN}, {_PG_TOKEN})
    ON CONFLICT (name) DO UPDATE SET {column} = EXCLUDED.{column};
    RETURN NULL;
END $$"""


def _sqlite_trigger(table: str, event: str, column: str) -> str:
    return f"""
CREATE TRIGGER tr_{table}_{event.lower()}_version AFTER {event} ON {table}
BEGIN
    INSERT INTO data_versions (name, appended, changed)
    VALUES ('executions', {_SQLITE_TOKEN}, {_SQLITE_TOKEN})
    ON CONFLICT (name) DO UPDATE SET {column} = excluded.{column};
END"""


def upgrade() -> None:
    op.create_table(
        "data_versions",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("appended", sa.String(32), nullable=False),
        sa.Column("changed", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_data_versions")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_pg_function("nx_executions_appended", "appended"))
        op.execute(_pg_function("nx_executions_changed", "changed"))
        for table in TABLES:
            for suffix, events, fn in (
                ("appended", "INSERT", "nx_executions_appended"),
                ("changed", "UPDATE OR DELETE OR TRUNCATE", "nx_executions_changed"),
            ):
                trigger = f"tr_{table}_{suffix}"
                op.execute(
                    f"CREATE TRIGGER {trigger} AFTER {events} ON {table} "
                    f"FOR EACH STATEMENT EXECUTE FUNCTION {fn}()"
                )
                op.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger}")
        token = _PG_TOKEN
    else:
        for table in TABLES:
            op.execute(_sqlite_trigger(table, "INSERT", "appended"))
            op.execute(_sqlite_trigger(table, "UPDATE", "changed"))
            op.execute(_sqlite_trigger(table, "DELETE", "changed"))
        token = _SQLITE_TOKEN
    op.execute(
        f"INSERT INTO data_versions (name, appended, changed) "
        f"VALUES ('executions', {token}, {token})"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            for suffix in ("appended", "changed"):
                op.execute(f"DROP TRIGGER IF EXISTS tr_{table}_{suffix} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS nx_executions_appended()")
        op.execute("DROP FUNCTION IF EXISTS nx_executions_changed()")
    else:
        for table in TABLES:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS tr_{table}_{event}_version")
    op.drop_table("data_versions")
