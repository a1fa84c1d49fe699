"""factories keep their compliance summary's risk band, so that reads of them join no summary

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("factories", sa.Column("risk_band", sa.String(length=20), nullable=True))
    op.execute(
        "UPDATE factories SET risk_band = (SELECT compliance_summaries.risk_band"
        " FROM compliance_summaries WHERE compliance_summaries.factory_id = factories.id)"
    )
    op.create_index("ix_factories_risk_band", "factories", ["risk_band"])
    # The list's `risk_band` filter was this index's only reader.
    op.drop_index("ix_compliance_summaries_risk_band", table_name="compliance_summaries")
    op.execute("ANALYZE factories")


def downgrade() -> None:
    op.create_index(
        "ix_compliance_summaries_risk_band", "compliance_summaries", ["risk_band"], unique=False
    )
    op.drop_index("ix_factories_risk_band", table_name="factories")
    with op.batch_alter_table("factories", schema=None) as batch_op:
        batch_op.drop_column("risk_band")
    # SQLite rebuilds the table to alter it, and the rebuilt table has no statistics.
    op.execute("ANALYZE factories")
