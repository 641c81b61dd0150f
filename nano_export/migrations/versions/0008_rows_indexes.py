"""rows indexes: the Rows page sorted by cost walks an index on (cost_usd, execution_id)

Revision ID: 0008_rows_indexes
Revises: 0006_workers

A page of rows sorted by cost reads ``execution_metrics`` in this index's order and looks each
execution up by its key, instead of sorting the whole join.
"""

from __future__ import annotations

from alembic import op

revision = "0008_rows_indexes"
down_revision = "0006_workers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("execution_metrics", schema=None) as batch_op:
        batch_op.create_index(
            "ix_execution_metrics_cost_usd_id", ["cost_usd", "execution_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("execution_metrics", schema=None) as batch_op:
        batch_op.drop_index("ix_execution_metrics_cost_usd_id")
