"""remediation items keep whether their question is critical, indexed for a chain's open
critical issues

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CRITICAL = sa.column("critical").is_(True)


def upgrade() -> None:
    op.add_column(
        "remediation_items",
        sa.Column("critical", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.execute(
        "UPDATE remediation_items SET critical = TRUE WHERE question_id IN"
        " (SELECT questions.id FROM questions WHERE questions.critical = TRUE)"
    )
    op.create_index(
        "ix_remediation_items_critical_assessment_id",
        "remediation_items",
        ["assessment_id"],
        sqlite_where=CRITICAL,
        postgresql_where=CRITICAL,
    )
    op.execute("ANALYZE remediation_items")


def downgrade() -> None:
    op.drop_index("ix_remediation_items_critical_assessment_id", table_name="remediation_items")
    with op.batch_alter_table("remediation_items", schema=None) as batch_op:
        batch_op.drop_column("critical")
    # SQLite rebuilds the table to alter it, and the rebuilt table has no statistics.
    op.execute("ANALYZE remediation_items")
