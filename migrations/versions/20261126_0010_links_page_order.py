"""supply-chain links carry their factory's updated_at, indexed in page order per chain

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import src.db

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAGE_INDEX = "ix_supply_chain_links_page"


def upgrade() -> None:
    with op.batch_alter_table("supply_chain_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("factory_updated_at", src.db.UTCDateTime(), nullable=True))
    op.execute(
        "UPDATE supply_chain_links SET factory_updated_at = "
        "(SELECT updated_at FROM factories WHERE factories.id = supply_chain_links.factory_id)"
    )
    with op.batch_alter_table("supply_chain_links", schema=None) as batch_op:
        batch_op.alter_column(
            "factory_updated_at", existing_type=src.db.UTCDateTime(), nullable=False
        )
        batch_op.create_index(
            PAGE_INDEX,
            ["supply_chain_id", "factory_updated_at", "factory_id", "starts_on", "ends_on",
             "supplier_code"],
            unique=False,
        )  # fmt: skip
    _analyse()


def downgrade() -> None:
    with op.batch_alter_table("supply_chain_links", schema=None) as batch_op:
        batch_op.drop_index(PAGE_INDEX)
        batch_op.drop_column("factory_updated_at")
    _analyse()


def _analyse() -> None:
    # SQLite rebuilds the table to alter it, and the rebuilt table has no statistics.
    op.execute("ANALYZE supply_chain_links")
