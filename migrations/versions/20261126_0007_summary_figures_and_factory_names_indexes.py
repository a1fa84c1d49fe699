"""indexes covering the supply-chain aggregate's reads of summaries and factory names

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 07:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUMMARY_FIGURES = [
    "factory_id", "risk_band", "previous_risk_band", "open_critical_count", "assessment_id",
]  # fmt: skip


def upgrade() -> None:
    op.create_index("ix_compliance_summaries_figures", "compliance_summaries", SUMMARY_FIGURES)
    op.create_index("ix_factories_id_name", "factories", ["id", "name"])
    # Fresh statistics, so the planner knows the new indexes (SQLite keeps using the primary
    # key's where the table was analysed before).
    op.execute("ANALYZE compliance_summaries")
    op.execute("ANALYZE factories")


def downgrade() -> None:
    op.drop_index("ix_factories_id_name", table_name="factories")
    op.drop_index("ix_compliance_summaries_figures", table_name="compliance_summaries")
