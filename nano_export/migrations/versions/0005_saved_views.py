"""saved views: named filter specs, private or shared with the team

Revision ID: 0005_saved_views
Revises: 0004_users_sessions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_saved_views"
down_revision = "0004_users_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saved_views",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_views")),
        sa.UniqueConstraint("owner", "name", name="uq_saved_views_owner_name"),
    )
    with op.batch_alter_table("saved_views", schema=None) as batch_op:
        batch_op.create_index("ix_saved_views_shared", ["shared"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("saved_views", schema=None) as batch_op:
        batch_op.drop_index("ix_saved_views_shared")
    op.drop_table("saved_views")
