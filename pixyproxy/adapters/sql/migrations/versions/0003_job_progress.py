"""A job's progress (0..1) while it runs, kept in its row so every replica's readers see it; null for
the jobs made before.

Added only where it is missing, so a run cut short finishes on the next start.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _present() -> set[str]:
    return {column["name"] for column in sa.inspect(op.get_bind()).get_columns("jobs")}


def upgrade() -> None:
    if "progress" not in _present():
        op.add_column("jobs", sa.Column("progress", sa.Double(), nullable=True))


def downgrade() -> None:
    if "progress" in _present():
        op.drop_column("jobs", "progress")
