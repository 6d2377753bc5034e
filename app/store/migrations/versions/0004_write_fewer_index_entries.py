"""Fewer index entries per delivery attempt.

* `ix_attempts_started_at` served no query (attempts are read by delivery, and retention
  deletes them by delivery): every attempt row paid for an entry in it.
* The sweeper's index held every delivery, `(status, next_attempt_at)`. It only ever looks
  for pending ones, so the index is now partial: `(next_attempt_at) WHERE status =
  'pending'`. Recording a delivery's outcome writes a new row version, which gets entries
  in every index whose condition it meets; a succeeded or failed delivery no longer gets
  one here, and the index stays as small as the backlog.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 20:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.store.migration_steps import without_blocking_writes

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    without_blocking_writes(_upgrade)


def _upgrade(concurrently: bool) -> None:
    op.create_index(
        "ix_deliveries_pending_next_attempt_at",
        "deliveries",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=PENDING,
        sqlite_where=PENDING,
        postgresql_concurrently=concurrently,
    )
    op.drop_index(
        "ix_deliveries_status_next_attempt_at",
        table_name="deliveries",
        postgresql_concurrently=concurrently,
    )
    op.drop_index(
        "ix_attempts_started_at", table_name="attempts", postgresql_concurrently=concurrently
    )


def downgrade() -> None:
    op.create_index("ix_attempts_started_at", "attempts", ["started_at"], unique=False)
    op.create_index(
        "ix_deliveries_status_next_attempt_at",
        "deliveries",
        ["status", "next_attempt_at"],
        unique=False,
    )
    op.drop_index("ix_deliveries_pending_next_attempt_at", table_name="deliveries")
