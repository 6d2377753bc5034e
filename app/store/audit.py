"""Audit-log writes: every change a tenant or operator makes leaves one row."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app.clock import utcnow
from app.ids import new_id
from app.store.tables import audit_log


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
