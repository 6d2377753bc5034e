"""The SQL store on both backends: migrations match the tables, times stay UTC-aware."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.migrate import alembic_config
from app.store.tables import metadata
from app.store.tenants import create_tenant, get_tenant


async def test_migrations_produce_exactly_the_declared_tables(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), metadata
            )
        )
    assert diff == []


async def test_deliveries_leave_room_for_in_place_lease_updates_on_postgresql(
    engine: AsyncEngine, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("a PostgreSQL storage parameter; SQLite has no such thing")
    async with engine.connect() as conn:
        options = (
            await conn.execute(
                sa.text("SELECT reloptions FROM pg_class WHERE relname = 'deliveries'")
            )
        ).scalar_one()
    assert "fillfactor=70" in (options or [])


async def test_times_come_back_as_the_same_instant_in_utc(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        tenant = await create_tenant(conn, "Warung Jakarta", actor="test")
        jakarta = timezone(timedelta(hours=7))
        moment = datetime(2026, 3, 1, 9, 30, tzinfo=jakarta)
        await conn.execute(
            sa.text("UPDATE tenants SET created_at = :t WHERE id = :id").bindparams(
                sa.bindparam("t", type_=metadata.tables["tenants"].c.created_at.type)
            ),
            {"t": moment, "id": tenant.id},
        )
    async with engine.connect() as conn:
        found = await get_tenant(conn, tenant.id)
    assert found is not None
    assert found.created_at == moment
    assert found.created_at.tzinfo is not None
    assert found.created_at.utcoffset() == UTC.utcoffset(None)


def test_migrations_downgrade_to_nothing_and_back(tmp_path: object) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/roundtrip.db"
    config = alembic_config(url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    command.upgrade(config, "head")
