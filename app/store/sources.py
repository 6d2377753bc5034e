"""Source rows: a tenant's inbound provider connections and their sealed credentials."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.clock import utcnow
from app.ids import new_id
from app.ingest.credentials import endpoints
from app.security.secret_box import SecretBox
from app.store.audit import record_audit
from app.store.tables import sources
from contracts.api import Source


@dataclass(frozen=True)
class SourceRef:
    id: str
    provider: str


@dataclass(frozen=True)
class IngestSource:
    """What the ingest path needs: whose source, which provider, and its credentials."""

    id: str
    tenant_id: str
    provider: str
    status: str
    credentials: dict[str, str]
    settings: dict[str, Any] = field(default_factory=dict)


_PUBLIC = (
    sources.c.id,
    sources.c.provider,
    sources.c.name,
    sources.c.external_store_id,
    sources.c.status,
    sources.c.created_at,
    sources.c.updated_at,
)


def _source(row: Any, base_url: str) -> Source:
    ingest_url = f"{base_url}/v1/ingest/{row.id}"
    return Source(
        id=row.id,
        provider=row.provider,
        name=row.name,
        external_store_id=row.external_store_id,
        status=row.status,
        ingest_url=ingest_url,
        endpoints=endpoints(row.provider, ingest_url),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _live(tenant_id: str, source_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        sources.c.tenant_id == tenant_id, sources.c.id == source_id, sources.c.deleted_at.is_(None)
    )


async def find_source(conn: AsyncConnection, tenant_id: str, source_id: str) -> SourceRef | None:
    query = sa.select(sources.c.id, sources.c.provider).where(_live(tenant_id, source_id))
    row = (await conn.execute(query)).first()
    return SourceRef(id=row.id, provider=row.provider) if row else None


async def create_source(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    provider: str,
    name: str,
    external_store_id: str | None,
    credentials: dict[str, str],
    settings: dict[str, Any],
    box: SecretBox,
    actor: str,
    base_url: str,
) -> Source:
    now = utcnow()
    source_id = new_id("src")
    await conn.execute(
        sources.insert().values(
            id=source_id,
            tenant_id=tenant_id,
            provider=provider,
            name=name,
            external_store_id=external_store_id,
            credentials=box.seal(json.dumps(credentials)),
            settings=settings,
            status="enabled",
            created_at=now,
            updated_at=now,
        )
    )
    await record_audit(
        conn,
        tenant_id=tenant_id,
        actor=actor,
        action="source.created",
        target=source_id,
        details={"provider": provider},
    )
    found = await get_source(conn, tenant_id, source_id, base_url)
    assert found is not None
    return found


async def get_source(
    conn: AsyncConnection, tenant_id: str, source_id: str, base_url: str
) -> Source | None:
    row = (await conn.execute(sa.select(*_PUBLIC).where(_live(tenant_id, source_id)))).first()
    return _source(row, base_url) if row else None


async def list_sources(
    conn: AsyncConnection, tenant_id: str, *, limit: int, before_id: str | None, base_url: str
) -> list[Source]:
    query = (
        sa.select(*_PUBLIC)
        .where(sources.c.tenant_id == tenant_id, sources.c.deleted_at.is_(None))
        .order_by(sources.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(sources.c.id < before_id)
    return [_source(r, base_url) for r in await conn.execute(query)]


async def update_source(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    source_id: str,
    changes: dict[str, Any],
    actor: str,
    base_url: str,
) -> Source | None:
    if changes:
        result = await conn.execute(
            sources.update()
            .where(_live(tenant_id, source_id))
            .values(**changes, updated_at=utcnow())
        )
        if result.rowcount == 0:
            return None
        await record_audit(
            conn,
            tenant_id=tenant_id,
            actor=actor,
            action="source.updated",
            target=source_id,
            details={"fields": sorted(changes)},
        )
    return await get_source(conn, tenant_id, source_id, base_url)


async def replace_credentials(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    source_id: str,
    credentials: dict[str, str],
    box: SecretBox,
    actor: str,
) -> bool:
    result = await conn.execute(
        sources.update()
        .where(_live(tenant_id, source_id))
        .values(credentials=box.seal(json.dumps(credentials)), updated_at=utcnow())
    )
    if result.rowcount == 0:
        return False
    await record_audit(
        conn,
        tenant_id=tenant_id,
        actor=actor,
        action="source.credentials_rotated",
        target=source_id,
    )
    return True


async def delete_source(
    conn: AsyncConnection, *, tenant_id: str, source_id: str, actor: str
) -> bool:
    now = utcnow()
    result = await conn.execute(
        sources.update()
        .where(_live(tenant_id, source_id))
        .values(deleted_at=now, status="disabled", updated_at=now)
    )
    if result.rowcount == 0:
        return False
    await record_audit(
        conn, tenant_id=tenant_id, actor=actor, action="source.deleted", target=source_id
    )
    return True


async def load_ingest_source(
    conn: AsyncConnection, source_id: str, box: SecretBox
) -> IngestSource | None:
    """By id alone: the provider does not know the tenant; the source id names it."""
    query = sa.select(
        sources.c.id,
        sources.c.tenant_id,
        sources.c.provider,
        sources.c.status,
        sources.c.credentials,
        sources.c.settings,
    ).where(sources.c.id == source_id, sources.c.deleted_at.is_(None))
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return IngestSource(
        id=row.id,
        tenant_id=row.tenant_id,
        provider=row.provider,
        status=row.status,
        credentials=json.loads(box.open(row.credentials)),
        settings=dict(row.settings or {}),
    )


async def polled_source_ids(conn: AsyncConnection, provider: str) -> list[str]:
    query = sa.select(sources.c.id).where(
        sources.c.provider == provider,
        sources.c.status == "enabled",
        sources.c.deleted_at.is_(None),
    )
    return list((await conn.execute(query)).scalars())


async def save_poll_state(
    conn: AsyncConnection,
    source_id: str,
    *,
    box: SecretBox,
    credentials: dict[str, str] | None = None,
    settings: dict[str, Any] | None = None,
) -> None:
    """Refreshed tokens and the poll cursor, kept beside the source."""
    values: dict[str, Any] = {"updated_at": utcnow()}
    if credentials is not None:
        values["credentials"] = box.seal(json.dumps(credentials))
    if settings is not None:
        values["settings"] = settings
    await conn.execute(sources.update().where(sources.c.id == source_id).values(**values))
