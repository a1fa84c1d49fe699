"""findings without a foreign key on question_id

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 04:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_findings_question_id_questions"), type_="foreignkey"
        )


def downgrade() -> None:
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_findings_question_id_questions"), "questions", ["question_id"], ["id"]
        )
