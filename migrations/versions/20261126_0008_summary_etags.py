"""compliance summaries keep the entity tags of their two encoded answers

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 16:20:00
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
SUMMARIES = sa.table(
    "compliance_summaries",
    sa.column("factory_id", sa.String),
    sa.column("full_json", sa.LargeBinary),
    sa.column("public_json", sa.LargeBinary),
    sa.column("full_etag", sa.String),
    sa.column("public_etag", sa.String),
)


def _etag(body: bytes) -> str:
    # As `src.etags.etag_for` computes it at this revision, so that clients' tags stay valid.
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def upgrade() -> None:
    with op.batch_alter_table("compliance_summaries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("full_etag", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("public_etag", sa.String(length=40), nullable=True))
    connection = op.get_bind()
    update = (
        SUMMARIES.update()
        .where(SUMMARIES.c.factory_id == sa.bindparam("id"))
        .values(full_etag=sa.bindparam("full"), public_etag=sa.bindparam("public"))
    )
    after = ""
    while True:
        rows = connection.execute(
            sa.select(SUMMARIES.c.factory_id, SUMMARIES.c.full_json, SUMMARIES.c.public_json)
            .where(SUMMARIES.c.factory_id > after)
            .order_by(SUMMARIES.c.factory_id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        connection.execute(
            update,
            [
                {"id": factory_id, "full": _etag(full), "public": _etag(public)}
                for factory_id, full, public in rows
            ],
        )
        after = rows[-1][0]
    with op.batch_alter_table("compliance_summaries", schema=None) as batch_op:
        batch_op.alter_column("full_etag", existing_type=sa.String(length=40), nullable=False)
        batch_op.alter_column("public_etag", existing_type=sa.String(length=40), nullable=False)
    _analyse()


def downgrade() -> None:
    with op.batch_alter_table("compliance_summaries", schema=None) as batch_op:
        batch_op.drop_column("public_etag")
        batch_op.drop_column("full_etag")
    _analyse()


def _analyse() -> None:
    # SQLite rebuilds the table to alter it, and the rebuilt table has no statistics; 0007
    # analysed it so that the planner would take its covering index.
    op.execute("ANALYZE compliance_summaries")
