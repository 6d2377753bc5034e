"""Helpers for migrations that change indexes on tables that are written all the time."""

from __future__ import annotations

from collections.abc import Callable

from alembic import op


def without_blocking_writes(steps: Callable[[bool], None]) -> None:
    """Run index steps; `steps(concurrently)` passes `postgresql_concurrently=concurrently`.

    On PostgreSQL they run CONCURRENTLY, outside the migration's transaction (which
    CONCURRENTLY requires): building an index over a large deliveries table must not stop
    publishing and recording meanwhile. SQLite has no such option and needs none.
    """
    if op.get_bind().dialect.name != "postgresql":
        steps(False)
        return
    with op.get_context().autocommit_block():
        steps(True)
