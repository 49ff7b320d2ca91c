"""The model catalogue: which provider and deployment made each image, after how many attempts, and the
provider of each usage row; and each webhook delivery's tenant, so its fair share of the delivery slots
holds after a restart and on every replica.

Each column is added only where it is missing, so a run cut short (MySQL commits each ALTER on its own)
finishes on the next start.

Revision ID: 0002
Revises: 0001
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS: dict[str, dict[str, Any]] = {
    "images": {"provider": sa.String(64), "deployment": sa.String(255), "attempts": sa.Integer()},
    "usage_events": {"provider": sa.String(64)},
    "webhook_deliveries": {"tenant": sa.String(255)},
}


def _present(table: str) -> set[str]:
    return {column["name"] for column in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    for table, columns in COLUMNS.items():
        present = _present(table)
        for name, kind in columns.items():
            if name not in present:
                op.add_column(table, sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    for table, columns in COLUMNS.items():
        present = _present(table)
        for name in columns:
            if name in present:
                op.drop_column(table, name)
