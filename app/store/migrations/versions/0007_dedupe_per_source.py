"""Provider redelivery dedupe is per source: `(source_id, dedupe_key)` is unique, not
`(tenant_id, dedupe_key)`.

Providers number their events per account: a custom POS its `webhook-id`s, a Qasir store
its receipts, Moka its payments. Two sources of one tenant could reuse such an id, and the
second source's event was then taken for a redelivery and dropped. Keys that were unique
per tenant are unique per source too, so existing rows satisfy the new index.

The index is partial (`WHERE dedupe_key IS NOT NULL`): events published through the API
carry no dedupe key and no longer pay for an entry.

Downgrading fails if two sources of one tenant have since filed the same key: going back
would mean deleting one of those events.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 21:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.store.migration_steps import without_blocking_writes

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HAS_DEDUPE_KEY = sa.text("dedupe_key IS NOT NULL")
OLD = "uq_events_tenant_id_dedupe_key"
NEW = "uq_events_source_id_dedupe_key"


def upgrade() -> None:
    # The new index exists before the old constraint goes: no moment without dedupe.
    without_blocking_writes(_create_index)
    if op.get_bind().dialect.name == "sqlite":
        # SQLite cannot drop a table constraint in place; batch mode rebuilds the table.
        with op.batch_alter_table("events") as batch:
            batch.drop_constraint(OLD, type_="unique")
    else:
        op.drop_constraint(OLD, "events", type_="unique")


def _create_index(concurrently: bool) -> None:
    op.create_index(
        NEW,
        "events",
        ["source_id", "dedupe_key"],
        unique=True,
        postgresql_where=HAS_DEDUPE_KEY,
        sqlite_where=HAS_DEDUPE_KEY,
        postgresql_concurrently=concurrently,
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("events") as batch:
            batch.create_unique_constraint(OLD, ["tenant_id", "dedupe_key"])
    else:
        op.create_unique_constraint(OLD, "events", ["tenant_id", "dedupe_key"])
    op.drop_index(NEW, table_name="events")
