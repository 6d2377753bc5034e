"""Audit-log writes: every change a tenant or operator makes leaves one row."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.clock import utcnow
from app.ids import new_id
from app.store.tables import audit_log
from contracts.api import AuditEntry


async def record_audit(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    actor: str,
    action: str,
    target: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Write inside the caller's transaction, so the change and its audit row commit together."""
    await conn.execute(
        audit_log.insert().values(
            id=new_id("aud"),
            tenant_id=tenant_id,
            actor=actor,
            action=action,
            target=target,
            details=details,
            created_at=utcnow(),
        )
    )


async def list_audit_entries(
    conn: AsyncConnection, tenant_id: str, *, limit: int, before_id: str | None
) -> list[AuditEntry]:
    query = (
        sa.select(
            audit_log.c.id,
            audit_log.c.actor,
            audit_log.c.action,
            audit_log.c.target,
            audit_log.c.details,
            audit_log.c.created_at,
        )
        .where(audit_log.c.tenant_id == tenant_id)
        .order_by(audit_log.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(audit_log.c.id < before_id)
    return [AuditEntry(**row._asdict()) for row in await conn.execute(query)]
