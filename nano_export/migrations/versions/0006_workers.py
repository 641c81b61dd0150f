"""workers: export runner and attempt, and procrastinate's queue schema on PostgreSQL

Revision ID: 0006_workers
Revises: 0005_saved_views

``runner`` says who runs an export: ``thread`` (a thread of the process that accepted it, reaped by
heartbeat) or ``queue`` (a procrastinate job on any worker, retried when its worker stalls).
``attempt`` counts the runs of one export, so a run that was given up on cannot finish it.
On PostgreSQL the procrastinate schema (the one ``procrastinate schema --apply`` would write) is
created here, unless it already exists, so ``nano-export init`` sets up everything at once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_workers"
down_revision = "0005_saved_views"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exports", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("runner", sa.String(length=16), nullable=False, server_default="thread")
        )
        batch_op.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        from procrastinate.schema import SchemaManager

        present = bind.exec_driver_sql("SELECT to_regclass('procrastinate_jobs')").scalar()
        if present is None:
            # Straight to the driver: SQLAlchemy would hand psycopg an empty parameter list, and
            # psycopg would then read the script's ``%`` signs as placeholders.
            cursor = bind.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(SchemaManager.get_schema())
            finally:
                cursor.close()


def downgrade() -> None:
    # procrastinate's tables stay: they may hold jobs of another application sharing the database.
    with op.batch_alter_table("exports", schema=None) as batch_op:
        batch_op.drop_column("attempt")
        batch_op.drop_column("runner")
