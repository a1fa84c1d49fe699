"""summaries keep their per-cluster counts encoded, in the index the supply-chain aggregate
reads, in place of the summary_cluster_counts table

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-27 04:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIGURES = ["factory_id", "risk_band", "previous_risk_band", "open_critical_count", "assessment_id"]
# `{"CODE": [asked, non_compliant], ...}` of a factory's rows, and the rows of such an object,
# in each database's JSON functions.
ENCODED = {
    "postgresql": "convert_to(coalesce((SELECT json_object_agg(c.cluster_code,"
    " json_build_array(c.asked, c.non_compliant))::text FROM summary_cluster_counts c"
    " WHERE c.factory_id = compliance_summaries.factory_id), '{}'), 'UTF8')",
    "sqlite": "CAST((SELECT json_group_object(c.cluster_code, json_array(c.asked,"
    " c.non_compliant)) FROM summary_cluster_counts c"
    " WHERE c.factory_id = compliance_summaries.factory_id) AS BLOB)",
}
ROWS = {
    "postgresql": "SELECT s.factory_id, e.key, (e.value->>0)::integer, (e.value->>1)::integer"
    " FROM compliance_summaries s, json_each(convert_from(s.cluster_counts, 'UTF8')::json) e",
    "sqlite": "SELECT s.factory_id, e.key, json_extract(e.value, '$[0]'),"
    " json_extract(e.value, '$[1]') FROM compliance_summaries s,"
    " json_each(CAST(s.cluster_counts AS TEXT)) e",
}


def upgrade() -> None:
    with op.batch_alter_table("compliance_summaries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cluster_counts", sa.LargeBinary(), nullable=True))
    dialect = op.get_bind().dialect.name
    op.execute(f"UPDATE compliance_summaries SET cluster_counts = {ENCODED[dialect]}")
    with op.batch_alter_table("compliance_summaries", schema=None) as batch_op:
        batch_op.alter_column("cluster_counts", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_index("ix_compliance_summaries_figures")
        batch_op.create_index("ix_compliance_summaries_figures", [*FIGURES, "cluster_counts"])
    op.drop_table("summary_cluster_counts")
    op.execute("ANALYZE compliance_summaries")


def downgrade() -> None:
    op.create_table(
        "summary_cluster_counts",
        sa.Column("factory_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("cluster_code", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("asked", sa.Integer(), nullable=False),
        sa.Column("non_compliant", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["factory_id"],
            ["factories.id"],
            name=op.f("fk_summary_cluster_counts_factory_id_factories"),
        ),
        sa.PrimaryKeyConstraint(
            "factory_id", "cluster_code", name=op.f("pk_summary_cluster_counts")
        ),
    )
    op.create_index(
        "ix_summary_cluster_counts_figures",
        "summary_cluster_counts",
        ["factory_id", "cluster_code", "asked", "non_compliant"],
    )
    op.execute(f"INSERT INTO summary_cluster_counts {ROWS[op.get_bind().dialect.name]}")
    with op.batch_alter_table("compliance_summaries", schema=None) as batch_op:
        batch_op.drop_index("ix_compliance_summaries_figures")
        batch_op.create_index("ix_compliance_summaries_figures", FIGURES)
        batch_op.drop_column("cluster_counts")
    op.execute("ANALYZE compliance_summaries")
    op.execute("ANALYZE summary_cluster_counts")
