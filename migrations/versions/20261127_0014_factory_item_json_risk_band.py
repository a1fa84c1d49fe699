"""factories' encoded fields carry their risk band, so that a read of them selects one column less

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27 04:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The band closes the object, as `src.models.factories.encode_item` writes it at this revision;
# a key cannot appear inside an encoded string value, whose quotes are escaped.
KEY = ',"risk_band":'
BAND = "coalesce('\"' || risk_band || '\"', 'null')"
# Each database's spelling of the same byte operations on `item_json`.
UPGRADE = {
    "postgresql": "substring(item_json from 1 for length(item_json) - 1)"
    f" || convert_to('{KEY}' || {BAND} || '}}', 'UTF8')",
    "sqlite": f"CAST(substr(item_json, 1, length(item_json) - 1) || '{KEY}' || {BAND} || '}}' AS BLOB)",
}
DOWNGRADE = {
    "postgresql": "substring(item_json from 1 for"
    f" position(convert_to('{KEY}', 'UTF8') in item_json) - 1) || convert_to('}}', 'UTF8')",
    "sqlite": f"CAST(substr(item_json, 1, instr(item_json, CAST('{KEY}' AS BLOB)) - 1) || '}}' AS BLOB)",
}


def upgrade() -> None:
    op.execute(f"UPDATE factories SET item_json = {UPGRADE[op.get_bind().dialect.name]}")


def downgrade() -> None:
    op.execute(f"UPDATE factories SET item_json = {DOWNGRADE[op.get_bind().dialect.name]}")
