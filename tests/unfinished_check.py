"""The invariant between deliveries and unfinished_deliveries, checked after every test.

A delivery that has not succeeded has exactly one unfinished row, with its status and due
time; one that has succeeded (or is gone) has none.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.tables import deliveries, unfinished_deliveries


async def unfinished_out_of_step(conn: AsyncConnection) -> list[str]:
    """A description of every delivery whose unfinished row is missing, extra or differs."""
    u = unfinished_deliveries
    problems: list[str] = []
    rows = await conn.execute(
        sa.select(
            deliveries.c.id,
            deliveries.c.tenant_id,
            deliveries.c.subscription_id,
            deliveries.c.status,
            deliveries.c.next_attempt_at,
            u.c.delivery_id,
            u.c.tenant_id.label("u_tenant_id"),
            u.c.subscription_id.label("u_subscription_id"),
            u.c.status.label("u_status"),
            u.c.next_attempt_at.label("u_next_attempt_at"),
        ).select_from(deliveries.outerjoin(u, u.c.delivery_id == deliveries.c.id))
    )
    for row in rows:
        unfinished = row.status != "succeeded"
        if unfinished and row.delivery_id is None:
            problems.append(f"{row.id} is {row.status} but has no unfinished row")
        elif not unfinished and row.delivery_id is not None:
            problems.append(f"{row.id} succeeded but still has an unfinished row")
        elif unfinished and (
            (row.u_status, row.u_next_attempt_at, row.u_tenant_id, row.u_subscription_id)
            != (row.status, row.next_attempt_at, row.tenant_id, row.subscription_id)
        ):
            problems.append(
                f"{row.id}: delivery {row.status} due {row.next_attempt_at}, "
                f"unfinished row {row.u_status} due {row.u_next_attempt_at}"
            )
    orphans = await conn.execute(
        sa.select(u.c.delivery_id).where(u.c.delivery_id.not_in(sa.select(deliveries.c.id)))
    )
    problems.extend(f"{r.delivery_id} has an unfinished row but no delivery" for r in orphans)
    return problems
