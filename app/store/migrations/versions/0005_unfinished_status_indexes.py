"""The deliveries' status indexes hold unfinished deliveries only.

`(tenant_id, status, id)` and `(subscription_id, status, id)` serve the lookups by status:
the log filtered by status, a replay's selection, cancelling a subscription's pending work.
Almost every delivery ends `succeeded`, and recording that outcome gave each of them an
entry in both. Now both are partial, `WHERE status <> 'succeeded'`: a success gets no entry,
and the indexes stay as small as the deliveries still pending, failed or cancelled. The log
filtered on `succeeded` walks `(tenant_id, id)` or `(subscription_id, id)` instead, where
nearly every row matches.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 21:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.store.migration_steps import without_blocking_writes

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNFINISHED = sa.text("status <> 'succeeded'")
SCOPES = ("tenant_id", "subscription_id")


def upgrade() -> None:
    without_blocking_writes(_upgrade)


def _upgrade(concurrently: bool) -> None:
    for scope in SCOPES:
        op.create_index(
            f"ix_deliveries_unfinished_{scope}_status_id",
            "deliveries",
            [scope, "status", "id"],
            unique=False,
            postgresql_where=UNFINISHED,
            sqlite_where=UNFINISHED,
            postgresql_concurrently=concurrently,
        )
        op.drop_index(
            f"ix_deliveries_{scope}_status_id",
            table_name="deliveries",
            postgresql_concurrently=concurrently,
        )


def downgrade() -> None:
    for scope in SCOPES:
        op.create_index(
            f"ix_deliveries_{scope}_status_id", "deliveries", [scope, "status", "id"], unique=False
        )
        op.drop_index(f"ix_deliveries_unfinished_{scope}_status_id", table_name="deliveries")
