"""explore indexes: covering indexes for the dashboard's aggregate scans

Revision ID: 0003
Revises: 0002

``ix_executions_explore`` holds every executions column the Explore aggregates read, in id order,
so one scan of it (instead of the wide table) merge-joins with ``ix_execution_metrics_cost``.
``ix_executions_execution_time_s`` lets the exact median walk an index instead of sorting.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

EXPLORE_COLUMNS = ["id", "provider", "model", "started_at", "success", "execution_time_s"]


def upgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.create_index("ix_executions_explore", EXPLORE_COLUMNS, unique=False)
        batch_op.create_index("ix_executions_execution_time_s", ["execution_time_s"], unique=False)
    with op.batch_alter_table("execution_metrics", schema=None) as batch_op:
        batch_op.create_index(
            "ix_execution_metrics_cost", ["execution_id", "cost_usd"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("execution_metrics", schema=None) as batch_op:
        batch_op.drop_index("ix_execution_metrics_cost")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_execution_time_s")
        batch_op.drop_index("ix_executions_explore")
