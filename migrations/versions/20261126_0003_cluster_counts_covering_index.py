"""an index covering summary_cluster_counts' figures

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 02:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("summary_cluster_counts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_summary_cluster_counts_figures",
            ["factory_id", "cluster_code", "asked", "non_compliant"],
            unique=False,
        )
    # Fresh statistics, so the planner knows the new index (SQLite kept using the primary key's
    # where the table had been analysed before).
    op.execute("ANALYZE summary_cluster_counts")


def downgrade() -> None:
    with op.batch_alter_table("summary_cluster_counts", schema=None) as batch_op:
        batch_op.drop_index("ix_summary_cluster_counts_figures")
