"""Order progress is per source: `(source_id, order_key)` is the key, not
`(tenant_id, order_key)`.

Providers number orders per account: two outlets' POSes of one tenant both have an order
1001. Sharing one progress row, the second outlet's events took the first one's sequence
and could be marked stale against the other order's status.

Each existing row goes to the source of the newest event of its tenant for that order
(`events.aggregate_key`), so an order in progress keeps its sequence. A row no event can
be attributed to names an order nothing is known of and is deleted; that order's next
event starts again at sequence 1.

Downgrading fails if two sources of one tenant have since filed the same order id: going
back would mean merging two orders' progress.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = "pk_order_progress"

# One pass over events (a window, then a join), not a lookup per progress row: events has
# no index on aggregate_key. UPDATE ... FROM works on PostgreSQL and on SQLite 3.33+.
ATTRIBUTE = sa.text(
    """
    UPDATE order_progress SET source_id = newest.source_id
    FROM (
        SELECT tenant_id, aggregate_key, source_id,
               ROW_NUMBER() OVER (
                   PARTITION BY tenant_id, aggregate_key
                   ORDER BY received_at DESC, id DESC
               ) AS position
        FROM events
        WHERE aggregate_key IS NOT NULL AND source_id IS NOT NULL
    ) AS newest
    WHERE newest.position = 1
      AND newest.tenant_id = order_progress.tenant_id
      AND newest.aggregate_key = order_progress.order_key
    """
)


def upgrade() -> None:
    op.add_column("order_progress", sa.Column("source_id", sa.String(length=40), nullable=True))
    op.execute(ATTRIBUTE)
    op.execute(sa.text("DELETE FROM order_progress WHERE source_id IS NULL"))
    # SQLite cannot change a primary key in place; batch mode rebuilds the table there and
    # alters it in place on PostgreSQL.
    with op.batch_alter_table("order_progress") as batch:
        batch.alter_column("source_id", existing_type=sa.String(length=40), nullable=False)
        batch.drop_constraint(PK, type_="primary")
        batch.create_primary_key(PK, ["source_id", "order_key"])


def downgrade() -> None:
    with op.batch_alter_table("order_progress") as batch:
        batch.drop_constraint(PK, type_="primary")
        batch.create_primary_key(PK, ["tenant_id", "order_key"])
        batch.drop_column("source_id")
