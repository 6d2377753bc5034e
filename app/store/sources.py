"""Source rows: a tenant's inbound provider connections (read side used by publishing)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.tables import sources


@dataclass(frozen=True)
class SourceRef:
    id: str
    provider: str


async def find_source(conn: AsyncConnection, tenant_id: str, source_id: str) -> SourceRef | None:
    query = sa.select(sources.c.id, sources.c.provider).where(
        sources.c.tenant_id == tenant_id,
        sources.c.id == source_id,
        sources.c.deleted_at.is_(None),
    )
    row = (await conn.execute(query)).first()
    return SourceRef(id=row.id, provider=row.provider) if row else None
