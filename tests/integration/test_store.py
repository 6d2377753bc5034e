"""The SQL store on both backends: migrations match the tables, times stay UTC-aware."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.ids import new_id
from app.store.bulk import insert_rows
from app.store.deliveries import list_deliveries_query
from app.store.driver_sql import DriverStatement, HeldConnections
from app.store.engine import create_engine
from app.store.migrate import alembic_config
from app.store.tables import events, metadata
from app.store.tenants import create_tenant, get_tenant
from tests import backends
from workers.sweeper import oldest_due_query, overdue_query


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


def _event_row(tenant_id: str, n: int, at: datetime) -> dict[str, object]:
    return {
        "id": new_id("evt"),
        "tenant_id": tenant_id,
        "type": "order.created",
        "source_id": None if n % 2 else f"src_{n}",
        "provider": None,
        "occurred_at": at,
        "received_at": at + timedelta(seconds=n),
        "dedupe_key": None,
        "aggregate_key": None,
        "sequence": n if n % 2 else None,
        "payload": '{"n": ' + str(n) + ', "text": "Nasi goreng \u00e9 \'quoted\'"}',
    }


async def test_many_rows_in_one_insert_come_back_as_written(engine: AsyncEngine) -> None:
    jakarta = timezone(timedelta(hours=7))
    at = datetime(2026, 3, 1, 9, 30, tzinfo=jakarta)
    async with engine.begin() as conn:
        tenant = await create_tenant(conn, "Warung Bulk", actor="test")
        rows = [_event_row(tenant.id, n, at) for n in range(5)]
        await insert_rows(conn, events, rows)
    async with engine.connect() as conn:
        stored = (
            await conn.execute(sa.select(events).where(events.c.tenant_id == tenant.id))
        ).mappings()
        by_id = {row["id"]: dict(row) for row in stored}
    assert by_id == {row["id"]: row for row in rows}


async def test_a_bad_row_in_a_bulk_insert_writes_none_of_them(engine: AsyncEngine) -> None:
    at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    async with engine.begin() as conn:
        tenant = await create_tenant(conn, "Warung Naive", actor="test")
    rows = [_event_row(tenant.id, n, at) for n in range(3)]
    rows[2]["received_at"] = datetime(2026, 3, 1, 9, 30)  # naive: refused
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        async with engine.begin() as conn:
            await insert_rows(conn, events, rows)
    async with engine.connect() as conn:
        count = (
            await conn.execute(sa.select(sa.func.count()).where(events.c.tenant_id == tenant.id))
        ).scalar_one()
    assert count == 0


def test_migrations_downgrade_to_nothing_and_back(tmp_path: object) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/roundtrip.db"
    config = alembic_config(url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    command.upgrade(config, "head")


def test_migrations_downgrade_to_nothing_and_back_on_postgresql() -> None:
    """Also the steps that run outside a transaction there (indexes built CONCURRENTLY)."""
    with backends.throwaway_postgres_database() as url:
        config = alembic_config(url)
        command.upgrade(config, "head")
        command.downgrade(config, "base")
        command.upgrade(config, "head")


async def test_a_statement_on_the_driver_connection_takes_its_parameters_by_name(
    engine: AsyncEngine, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("the driver path is asyncpg's")
    tenants = metadata.tables["tenants"]
    statement = DriverStatement.compile(
        sa.select(tenants.c.id, tenants.c.name, sa.literal("fixed"))
        .where(tenants.c.id == sa.any_(sa.bindparam("ids", type_=ARRAY(sa.String()))))
        .order_by(tenants.c.name)
    )
    async with engine.begin() as conn:
        first = await create_tenant(conn, "Warung A", actor="test")
        await create_tenant(conn, "Warung B", actor="test")
    held = HeldConnections(engine, size=1)
    try:
        rows = await held.fetch(statement, {"ids": [first.id, "ten_missing"]})
        assert [tuple(r) for r in rows] == [(first.id, "Warung A", "fixed")]
        # A parameter the caller forgot is an error, never a silent NULL.
        with pytest.raises(KeyError):
            await held.fetch(statement, {})
        # A statement PostgreSQL refuses leaves the connection usable; one that is cut off
        # (cancelled mid-statement) is replaced; both answer the next caller.
        with pytest.raises(asyncpg.PostgresError):
            await held.execute(DriverStatement.compile(sa.text("SELECT 1 / 0")), {})
        sleeper = asyncio.create_task(
            held.execute(DriverStatement.compile(sa.text("SELECT pg_sleep(5)")), {})
        )
        queued = asyncio.create_task(held.fetch(statement, {"ids": [first.id]}))
        await asyncio.sleep(0.2)
        sleeper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sleeper
        assert len(await asyncio.wait_for(queued, 5)) == 1
        # The server ends the session mid-statement (a restart, an operator): that caller
        # hears of it, the next one is served on a new connection.
        [[pid]] = await held.fetch(DriverStatement.compile(sa.select(sa.func.pg_backend_pid())), {})
        sleeping = asyncio.create_task(
            held.execute(DriverStatement.compile(sa.text("SELECT pg_sleep(5)")), {})
        )
        await asyncio.sleep(0.3)
        async with engine.connect() as other:
            await other.execute(sa.text(f"SELECT pg_terminate_backend({int(pid)})"))
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):
            await sleeping
        assert len(await held.fetch(statement, {"ids": [first.id]})) == 1
    finally:
        await held.close()


async def test_held_connections_keep_their_session_settings_out_of_the_pool(
    database_url: str, backend: str
) -> None:
    """Settings for the hot statements hold on every held connection, and a connection
    given back to the pool (at shutdown) serves its next user with the defaults again."""
    if backend != "postgresql":
        pytest.skip("the driver path is asyncpg's")
    engine = create_engine(database_url, pool_size=1)
    other = create_engine(database_url, pool_size=1)
    show = DriverStatement.compile(sa.text("SELECT current_setting('enable_seqscan')"))
    try:
        held = HeldConnections(engine, size=1, session_settings={"enable_seqscan": "off"})
        assert [tuple(r) for r in await held.fetch(show, {})] == [("off",)]
        # The connection that replaces a lost one has them too.
        backend_pid = DriverStatement.compile(sa.select(sa.func.pg_backend_pid()))
        [[pid]] = await held.fetch(backend_pid, {})
        async with other.connect() as conn:
            await conn.execute(sa.text(f"SELECT pg_terminate_backend({int(pid)})"))
        await asyncio.sleep(0.5)  # the driver hears of it
        assert [tuple(r) for r in await held.fetch(show, {})] == [("off",)]
        assert (await held.fetch(backend_pid, {}))[0][0] != pid
        await held.close()
        async with engine.connect() as conn:  # the pool's only connection: the held one
            setting = (await conn.execute(sa.text("SHOW enable_seqscan"))).scalar_one()
        assert setting == "on"
    finally:
        await engine.dispose()
        await other.dispose()


async def _plan(conn: AsyncConnection, query: sa.Select[Any]) -> str:
    """The backend's plan for the query as the application sends it (bound parameters)."""
    compiled = query.compile(dialect=conn.dialect)
    params = compiled.construct_params()
    args = tuple(params[name] for name in compiled.positiontup or ())
    explain = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
    rows = await conn.exec_driver_sql(explain + compiled.string, args)
    return "\n".join(" ".join(str(value) for value in row) for row in rows)


def _failed_of_tenant(_: datetime) -> sa.Select[Any]:
    return list_deliveries_query("ten_x", limit=50, status="failed")


def _failed_of_subscription(_: datetime) -> sa.Select[Any]:
    return list_deliveries_query("ten_x", limit=50, subscription_id="sub_x", status="cancelled")


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (overdue_query, "ix_unfinished_deliveries_pending_next_attempt_at"),
        (oldest_due_query, "ix_unfinished_deliveries_pending_next_attempt_at"),
        (_failed_of_tenant, "ix_unfinished_deliveries_tenant_id_status_delivery_id"),
        (_failed_of_subscription, "ix_unfinished_deliveries_"),
    ],
)
async def test_queries_for_unfinished_deliveries_read_the_unfinished_deliveries_indexes(
    engine: AsyncEngine, backend: str, query: Callable[[datetime], sa.Select[Any]], index: str
) -> None:
    """The sweeper's, and the log's by a status other than succeeded."""
    async with engine.connect() as conn:
        if backend == "postgresql":
            # An empty table is cheapest to scan whole; what matters is that the index can
            # serve the query, so the planner is told to prefer it when it can.
            await conn.exec_driver_sql("SET enable_seqscan = off")
        try:
            plan = await _plan(conn, query(datetime.now(UTC)))
        finally:
            if backend == "postgresql":
                await conn.exec_driver_sql("RESET enable_seqscan")
    assert index in plan, plan
