"""supplier codes unique within a supply chain; one active consent per factory and buyer

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 05:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = sa.text("revoked_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("supply_chain_links", schema=None) as batch_op:
        batch_op.drop_index("ix_supply_chain_links_supplier_code")
        batch_op.create_unique_constraint(
            batch_op.f("uq_supply_chain_links_supply_chain_id_supplier_code"),
            ["supply_chain_id", "supplier_code"],
        )
    op.create_index(
        "uq_consents_active",
        "consents",
        ["factory_id", "org_id"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("uq_consents_active", table_name="consents")
    with op.batch_alter_table("supply_chain_links", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_supply_chain_links_supply_chain_id_supplier_code"), type_="unique"
        )
        batch_op.create_index(
            "ix_supply_chain_links_supplier_code", ["supply_chain_id", "supplier_code"]
        )
