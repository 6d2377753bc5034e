"""Tenant rows: creation, listing, enabling and the lookup every authenticated request makes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.clock import utcnow
from app.ids import new_id
from app.store.audit import record_audit
from app.store.tables import tenants


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    status: str
    created_at: datetime

    @property
    def enabled(self) -> bool:
        return self.status == "enabled"


def _tenant(row: sa.Row[*tuple[Any, ...]]) -> Tenant:
    return Tenant(id=row.id, name=row.name, status=row.status, created_at=row.created_at)


_COLUMNS = (tenants.c.id, tenants.c.name, tenants.c.status, tenants.c.created_at)


async def create_tenant(conn: AsyncConnection, name: str, *, actor: str) -> Tenant:
    now = utcnow()
    tenant = Tenant(id=new_id("ten"), name=name, status="enabled", created_at=now)
    await conn.execute(
        tenants.insert().values(
            id=tenant.id, name=name, status=tenant.status, created_at=now, updated_at=now
        )
    )
    await record_audit(
        conn, tenant_id=tenant.id, actor=actor, action="tenant.created", target=tenant.id
    )
    return tenant


async def get_tenant(conn: AsyncConnection, tenant_id: str) -> Tenant | None:
    row = (await conn.execute(sa.select(*_COLUMNS).where(tenants.c.id == tenant_id))).first()
    return _tenant(row) if row else None


async def find_tenant_by_name(conn: AsyncConnection, name: str) -> Tenant | None:
    query = sa.select(*_COLUMNS).where(tenants.c.name == name).order_by(tenants.c.id).limit(1)
    row = (await conn.execute(query)).first()
    return _tenant(row) if row else None


async def list_tenants(conn: AsyncConnection) -> list[Tenant]:
    rows = await conn.execute(sa.select(*_COLUMNS).order_by(tenants.c.id))
    return [_tenant(r) for r in rows]


async def set_tenant_status(
    conn: AsyncConnection, tenant_id: str, status: str, *, actor: str
) -> bool:
    result = await conn.execute(
        tenants.update().where(tenants.c.id == tenant_id).values(status=status, updated_at=utcnow())
    )
    if result.rowcount == 0:
        return False
    action = "tenant.enabled" if status == "enabled" else "tenant.disabled"
    await record_audit(conn, tenant_id=tenant_id, actor=actor, action=action, target=tenant_id)
    return True
