"""factories keep their own fields encoded as JSON, the object every read of them starts from

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 17:30:00
"""

from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from alembic import op

import src.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
# As `src.models.factories.ITEM_FIELDS` and `encode_item` have them at this revision.
ITEM_FIELDS = (
    "id", "programme_code", "name", "country", "address", "os_id", "sector", "workers_total",
    "workers_women", "status", "enrolled_on", "created_at", "updated_at",
)  # fmt: skip
FACTORIES = sa.table(
    "factories",
    sa.column("id", sa.String),
    sa.column("programme_code", sa.String),
    sa.column("name", sa.String),
    sa.column("country", sa.String),
    sa.column("address", sa.String),
    sa.column("os_id", sa.String),
    sa.column("sector", sa.String),
    sa.column("workers_total", sa.Integer),
    sa.column("workers_women", sa.Integer),
    sa.column("status", sa.String),
    sa.column("enrolled_on", sa.Date),
    sa.column("created_at", src.db.UTCDateTime),
    sa.column("updated_at", src.db.UTCDateTime),
    sa.column("item_json", sa.LargeBinary),
)


def upgrade() -> None:
    with op.batch_alter_table("factories", schema=None) as batch_op:
        batch_op.add_column(sa.Column("item_json", sa.LargeBinary(), nullable=True))
    connection = op.get_bind()
    update = (
        FACTORIES.update()
        .where(FACTORIES.c.id == sa.bindparam("factory_id"))
        .values(item_json=sa.bindparam("encoded"))
    )
    after = ""
    while True:
        rows = connection.execute(
            sa.select(*(FACTORIES.c[name] for name in ITEM_FIELDS))
            .where(FACTORIES.c.id > after)
            .order_by(FACTORIES.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        connection.execute(
            update,
            [
                {
                    "factory_id": row.id,
                    "encoded": orjson.dumps(dict(row._mapping), option=orjson.OPT_UTC_Z),
                }
                for row in rows
            ],
        )
        after = rows[-1].id
    with op.batch_alter_table("factories", schema=None) as batch_op:
        batch_op.alter_column("item_json", existing_type=sa.LargeBinary(), nullable=False)
    _analyse()


def downgrade() -> None:
    with op.batch_alter_table("factories", schema=None) as batch_op:
        batch_op.drop_column("item_json")
    _analyse()


def _analyse() -> None:
    # SQLite rebuilds the table to alter it, and the rebuilt table has no statistics.
    op.execute("ANALYZE factories")
