"""supply-chain links keep themselves encoded as a factory read lists them

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 21:00:00
"""

from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
PAGE_INDEX = "ix_supply_chain_links_page"
PAGE_INDEX_LEADING = ["supply_chain_id", "factory_updated_at", "factory_id", "starts_on", "ends_on"]
LINKS = sa.table(
    "supply_chain_links",
    sa.column("id", sa.String),
    sa.column("supply_chain_id", sa.String),
    sa.column("supplier_code", sa.String),
    sa.column("code_json", sa.LargeBinary),
)


def upgrade() -> None:
    with op.batch_alter_table("supply_chain_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("code_json", sa.LargeBinary(), nullable=True))
    connection = op.get_bind()
    update = (
        LINKS.update()
        .where(LINKS.c.id == sa.bindparam("link_id"))
        .values(code_json=sa.bindparam("encoded"))
    )
    after = ""
    while True:
        rows = connection.execute(
            sa.select(LINKS.c.id, LINKS.c.supply_chain_id, LINKS.c.supplier_code)
            .where(LINKS.c.id > after)
            .order_by(LINKS.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        # As `src.models.supply_chains.encode_code` has it at this revision.
        connection.execute(
            update,
            [
                {
                    "link_id": row.id,
                    "encoded": orjson.dumps(
                        {"supply_chain_id": row.supply_chain_id, "supplier_code": row.supplier_code}
                    ),
                }
                for row in rows
            ],
        )
        after = rows[-1].id
    with op.batch_alter_table("supply_chain_links", schema=None) as batch_op:
        batch_op.alter_column("code_json", existing_type=sa.LargeBinary(), nullable=False)
        # The page's walk reads the encoded link from the index, instead of its supplier code.
        batch_op.drop_index(PAGE_INDEX)
        batch_op.create_index(PAGE_INDEX, [*PAGE_INDEX_LEADING, "code_json"], unique=False)
    _analyse()


def downgrade() -> None:
    with op.batch_alter_table("supply_chain_links", schema=None) as batch_op:
        batch_op.drop_index(PAGE_INDEX)
        batch_op.create_index(PAGE_INDEX, [*PAGE_INDEX_LEADING, "supplier_code"], unique=False)
        batch_op.drop_column("code_json")
    _analyse()


def _analyse() -> None:
    # SQLite rebuilds the table to alter it, and the rebuilt table has no statistics.
    op.execute("ANALYZE supply_chain_links")
