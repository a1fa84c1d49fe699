"""scorecards keep their overall score's change and benchmark, as each category's

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-27 09:30:00

Scorecards computed before have none of the three until their period is computed again (an
import of survey responses into it, or its publication): their categories' figures came from
survey tallies that a migration should not recompute.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("overall_change", "overall_benchmark_median", "overall_percentile")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("scorecards", sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scorecards", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.drop_column(name)
