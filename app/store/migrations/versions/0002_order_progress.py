"""Order progress: per-order sequence numbers and furthest status for provider events.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 07:18:41.064369
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "order_progress",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("order_key", sa.String(length=300), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.Column("max_rank", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "order_key", name=op.f("pk_order_progress")),
    )


def downgrade() -> None:
    op.drop_table("order_progress")
