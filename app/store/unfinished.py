"""unfinished_deliveries: the deliveries that have not succeeded, kept in step with them.

`deliveries` has no index on its status or due time, so that recording an attempt (which
changes both) writes no index entry on PostgreSQL (a heap-only update). The lookups by
status use this table instead, which holds a row for each delivery whose status is not
`succeeded`, with that status and, while pending, when it is due.

The hot paths write it in their own statements: publishing inserts a pending row with each
delivery (`unfinished_row`, `app.store.publish_sql`), and recording a success deletes it
(`app.store.attempt_sql`). Every other change of a delivery's status or due time (retries,
give-ups, throttling, cancelling, replays) is followed, in the same transaction, by
`sync_unfinished` for the deliveries it touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.tables import deliveries, unfinished_deliveries

# Ids per statement: well under SQLite's limit on bound parameters.
SYNC_CHUNK = 500


def unfinished_row(delivery: dict[str, Any]) -> dict[str, Any]:
    """The unfinished_deliveries row of a new (pending) delivery row."""
    return {
        "delivery_id": delivery["id"],
        "tenant_id": delivery["tenant_id"],
        "subscription_id": delivery["subscription_id"],
        "status": delivery["status"],
        "next_attempt_at": delivery["next_attempt_at"],
    }


async def sync_unfinished(conn: AsyncConnection, delivery_ids: Iterable[str]) -> None:
    """Make these deliveries' rows match them: present with their status and due time while
    they have not succeeded, absent once they have (or when the delivery is gone).

    Call in the transaction that changed the deliveries, after the change: their row locks
    then order concurrent syncs of one delivery, and each sync reads the state it leaves.
    """
    ids = sorted(set(delivery_ids))
    upsert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    for start in range(0, len(ids), SYNC_CHUNK):
        chunk = ids[start : start + SYNC_CHUNK]
        current = sa.select(
            deliveries.c.id,
            deliveries.c.tenant_id,
            deliveries.c.subscription_id,
            deliveries.c.status,
            deliveries.c.next_attempt_at,
        ).where(deliveries.c.id.in_(chunk), deliveries.c.status != "succeeded")
        statement = upsert(unfinished_deliveries).from_select(
            ["delivery_id", "tenant_id", "subscription_id", "status", "next_attempt_at"], current
        )
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[unfinished_deliveries.c.delivery_id],
                set_={
                    "status": statement.excluded.status,
                    "next_attempt_at": statement.excluded.next_attempt_at,
                },
            )
        )
        await conn.execute(
            unfinished_deliveries.delete().where(
                unfinished_deliveries.c.delivery_id.in_(chunk),
                unfinished_deliveries.c.delivery_id.not_in(
                    current.with_only_columns(deliveries.c.id)
                ),
            )
        )


def walk_unfinished(
    query: sa.Select[Any],
    statuses: Iterable[str],
    *,
    tenant_id: str | None = None,
    subscription_id: str | None = None,
) -> tuple[sa.Select[Any], sa.ColumnElement[str]]:
    """A query over `deliveries` narrowed to those in these statuses (none of them
    `succeeded`), by tenant or subscription, and the id column to order and page by.

    They are walked in the unfinished rows' (tenant or subscription, status, id) index. The
    conditions go on those rows' columns only (the same values as the deliveries'):
    repeated on `deliveries`, they make PostgreSQL expect almost no rows, read every match
    and sort.
    """
    key = unfinished_deliveries.c.delivery_id
    wanted = list(statuses)
    status = unfinished_deliveries.c.status
    query = query.join(unfinished_deliveries, key == deliveries.c.id).where(
        status == wanted[0] if len(wanted) == 1 else status.in_(wanted)
    )
    if tenant_id is not None:
        query = query.where(unfinished_deliveries.c.tenant_id == tenant_id)
    if subscription_id is not None:
        query = query.where(unfinished_deliveries.c.subscription_id == subscription_id)
    return query, key
