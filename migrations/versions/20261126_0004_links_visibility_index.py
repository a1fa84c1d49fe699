"""an index answering visibility checks on supply_chain_links

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 03:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("supply_chain_links", schema=None) as batch_op:
        batch_op.create_index(
            "ix_supply_chain_links_visibility",
            ["supply_chain_id", "factory_id", "starts_on", "ends_on"],
            unique=False,
        )
    op.execute("ANALYZE supply_chain_links")


def downgrade() -> None:
    with op.batch_alter_table("supply_chain_links", schema=None) as batch_op:
        batch_op.drop_index("ix_supply_chain_links_visibility")
