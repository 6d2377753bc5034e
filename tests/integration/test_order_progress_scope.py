"""A provider's order ids are unique within one source, so order sequence and staleness are
per source.

Two outlets of one tenant each number their orders from 1; each outlet's order 1001 gets
its own sequence, and one outlet's progress never makes the other's events stale.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.delivery.signing import webhook_headers
from app.ingest.filing import file_events
from app.store.engine import create_engine
from app.store.migrate import alembic_config
from app.store.sources import IngestSource
from app.store.tables import events, order_progress, tenants
from contracts.canonical import EXAMPLES, OrderStatusChangedData
from contracts.providers.base import NormalizedEvent
from tests import backends
from tests.integration.test_ingest_api import create_source, path_of, stored_events

Client = AsyncTestClient[Litestar]


def created(order_id: str) -> dict[str, Any]:
    example = EXAMPLES["order.created"]
    return {
        **example,
        "data": {**example["data"], "order_id": order_id, "status": "awaiting_acceptance"},
    }


def accepted(order_id: str) -> dict[str, Any]:
    return {
        "type": "order.status_changed",
        "data": {"order_id": order_id, "from": "awaiting_acceptance", "to": "accepted"},
    }


async def test_two_custom_pos_sources_reusing_an_order_id_each_sequence_their_own_order(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    first, second = [await create_source(client, auth, "custom_pos") for _ in range(2)]

    async def send(source: dict[str, Any], msg_id: str, event: dict[str, Any]) -> None:
        body = json.dumps(event).encode()
        headers = webhook_headers(
            msg_id=msg_id,
            timestamp=int(time.time()),
            body=body,
            secrets=[source["credentials"]["secret"]],
            user_agent="pos/1",
        )
        response = await client.post(path_of(source["ingest_url"]), content=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "accepted"

    # The first outlet's order is accepted before the second outlet's order 1001 arrives.
    await send(first, "msg_1", created("1001"))
    await send(first, "msg_2", accepted("1001"))
    await send(second, "msg_1", created("1001"))
    await send(second, "msg_2", accepted("1001"))
    # A late creation on the first outlet is behind that order's status: still stale.
    await send(first, "msg_3", created("1001"))

    def progress(source: dict[str, Any]) -> list[tuple[str, int, bool]]:
        return [
            (e["type"], e["sequence"], e.get("stale", False))
            for e in stored
            if e["source"]["source_id"] == source["id"]
        ]

    stored = await stored_events(engine)
    assert progress(second) == [("order.created", 1, False), ("order.status_changed", 2, False)]
    assert progress(first) == [
        ("order.created", 1, False),
        ("order.status_changed", 2, False),
        ("order.created", 3, True),
    ]


# --- the migration that moved the key ------------------------------------------------------

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _event(event_id: str, source_id: str, order_key: str, minute: int) -> dict[str, Any]:
    at = NOW.replace(minute=minute)
    return {
        "id": event_id,
        "tenant_id": "ten_1",
        "type": "order.status_changed",
        "source_id": source_id,
        "occurred_at": at,
        "received_at": at,
        "dedupe_key": f"pos:{event_id}",
        "aggregate_key": order_key,
        "sequence": 1,
        "payload": "{}",
    }


def _upgrade_keeps_orders_in_progress(url: str) -> None:
    config = alembic_config(url)
    command.upgrade(config, "0007")

    async def before_upgrade() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    tenants.insert(),
                    [
                        {
                            "id": "ten_1",
                            "name": "t",
                            "status": "enabled",
                            "created_at": NOW,
                            "updated_at": NOW,
                        }
                    ],
                )
                await conn.execute(
                    events.insert(),
                    [
                        _event("evt_1", "src_a", "1001", 0),
                        # An older event of another source with that order id: the newest
                        # event tells whose progress the row is.
                        _event("evt_0", "src_b", "2002", 0),
                        _event("evt_2", "src_a", "2002", 5),
                    ],
                )
                # The table as 0007 left it: keyed by tenant, without a source.
                await conn.execute(
                    sa.text(
                        "INSERT INTO order_progress"
                        " (tenant_id, order_key, last_sequence, max_rank, updated_at)"
                        " VALUES (:tenant, :order, :sequence, 1, :at)"
                    ),
                    [
                        {"tenant": "ten_1", "order": "1001", "sequence": 4, "at": NOW},
                        {"tenant": "ten_1", "order": "2002", "sequence": 2, "at": NOW},
                        # No event names this order: nothing is known of it.
                        {"tenant": "ten_1", "order": "3003", "sequence": 9, "at": NOW},
                    ],
                )
        finally:
            await engine.dispose()

    asyncio.run(before_upgrade())
    command.upgrade(config, "head")

    async def after_upgrade() -> tuple[list[tuple[str, str, int]], list[int]]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(
                    sa.select(
                        order_progress.c.source_id,
                        order_progress.c.order_key,
                        order_progress.c.last_sequence,
                    ).order_by(order_progress.c.order_key)
                )
                attributed = [(r.source_id, r.order_key, r.last_sequence) for r in rows]
            sequences: list[int] = []
            for source_id, order_key in (("src_a", "1001"), ("src_b", "1001")):
                source = IngestSource(
                    id=source_id,
                    tenant_id="ten_1",
                    provider="custom_pos",
                    status="enabled",
                    credentials={},
                )
                step = NormalizedEvent(
                    type="order.status_changed",
                    data=OrderStatusChangedData(order_id=order_key, to="preparing"),
                    dedupe_key=f"pos:next-{source_id}",
                    order_key=order_key,
                    order_status="preparing",
                )
                filed = await file_events(engine, source, [step])
                sequences.extend(json.loads(p.payload)["sequence"] for p in filed.published)
            return attributed, sequences
        finally:
            await engine.dispose()

    attributed, sequences = asyncio.run(after_upgrade())
    assert attributed == [("src_a", "1001", 4), ("src_a", "2002", 2)]
    # src_a's order 1001 continues where it was; src_b's order 1001 is a different order.
    assert sequences == [5, 1]


def test_the_upgrade_keeps_orders_in_progress_and_keys_them_per_source(tmp_path: Path) -> None:
    _upgrade_keeps_orders_in_progress(f"sqlite+aiosqlite:///{tmp_path}/upgrade.db")


def test_the_upgrade_keeps_orders_in_progress_and_keys_them_per_source_on_postgresql() -> None:
    with backends.throwaway_postgres_database() as url:
        _upgrade_keeps_orders_in_progress(url)
