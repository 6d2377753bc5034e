"""A provider's event ids are unique within one source, so redelivery dedupe is per source.

Two sources of one tenant (two outlets, two POS installations) may reuse an id; each must
still get its event, and a repeat on the same source must still be a duplicate.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.delivery.signing import webhook_headers
from app.store.engine import create_engine
from app.store.migrate import alembic_config
from app.store.tables import events, tenants
from contracts.canonical import EXAMPLES
from tests import backends
from tests.fixtures import PROVIDER_FIXTURES
from tests.integration.test_ingest_api import (
    create_source,
    fixture,
    gofood_headers,
    grab_token,
    path_of,
    stored_events,
)

Client = AsyncTestClient[Litestar]


def by_source(stored: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in stored:
        source_id = event["source"]["source_id"]
        counts[source_id] = counts.get(source_id, 0) + 1
    return counts


async def test_two_custom_pos_sources_reusing_a_webhook_id_each_get_their_event(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    first, second = [await create_source(client, auth, "custom_pos") for _ in range(2)]
    body = json.dumps(EXAMPLES["sale.completed"]).encode()

    async def send(source: dict[str, Any]) -> dict[str, Any]:
        headers = webhook_headers(
            msg_id="msg_1",  # each POS numbers its own messages: both start at 1
            timestamp=int(time.time()),
            body=body,
            secrets=[source["credentials"]["secret"]],
            user_agent="pos/1",
        )
        response = await client.post(path_of(source["ingest_url"]), content=body, headers=headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    assert (await send(first))["status"] == "accepted"
    assert (await send(second))["status"] == "accepted"
    repeated = await send(second)
    assert repeated["status"] == "duplicate"
    assert (await send(first))["status"] == "duplicate"
    stored = await stored_events(engine)
    assert by_source(stored) == {first["id"]: 1, second["id"]: 1}
    assert repeated["events"] == [
        e["id"] for e in stored if e["source"]["source_id"] == second["id"]
    ]


async def test_every_webhook_provider_dedupes_per_source(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    gofood = [await create_source(client, auth, "gofood") for _ in range(2)]
    shopee = [await create_source(client, auth, "shopeefood") for _ in range(2)]
    grab = [await create_source(client, auth, "grabfood") for _ in range(2)]
    gofood_body = fixture("gofood_order_completed.json")
    shopee_body = json.dumps(
        {"order_id": "SF-1", "status": "COMPLETED", "event_id": "e-1"}
    ).encode()
    grab_body = fixture("grabfood_submit_order.json")

    async def send_all() -> list[str]:
        statuses = []
        for source in gofood:
            headers = gofood_headers(source["credentials"]["notification_secret"], gofood_body)
            response = await client.post(
                path_of(source["ingest_url"]), content=gofood_body, headers=headers
            )
            statuses.append(response.json()["status"])
        for source in shopee:
            base = source["ingest_url"].encode() + b"|" + shopee_body
            key = source["credentials"]["partner_key"].encode()
            headers = {
                "content-type": "application/json",
                "Authorization": hmac.new(key, base, hashlib.sha256).hexdigest(),
            }
            response = await client.post(
                path_of(source["ingest_url"]), content=shopee_body, headers=headers
            )
            statuses.append(response.json()["status"])
        for source in grab:
            headers = {
                "Authorization": f"Bearer {await grab_token(client, source)}",
                "content-type": "application/json",
            }
            response = await client.post(
                path_of(source["endpoints"]["submit_order"]), content=grab_body, headers=headers
            )
            statuses.append(response.json()["status"])
        return statuses

    assert await send_all() == ["accepted"] * 6
    counts = by_source(await stored_events(engine))
    assert set(counts) == {s["id"] for s in (*gofood, *shopee, *grab)}
    assert counts[gofood[0]["id"]] == counts[gofood[1]["id"]]
    assert await send_all() == ["duplicate"] * 6
    assert by_source(await stored_events(engine)) == counts


async def test_two_qasir_stores_with_the_same_receipt_numbers_each_import_their_sales(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    csv = (PROVIDER_FIXTURES / "qasir_sales_export.csv").read_bytes()
    headers = {**auth, "content-type": "text/csv"}
    stores = [
        (
            await client.post("/v1/sources", json={"provider": "qasir", "name": n}, headers=auth)
        ).json()
        for n in ("Qasir Senayan", "Qasir Kemang")
    ]
    for store in stores:
        response = await client.post(
            f"/v1/sources/{store['id']}/imports", content=csv, headers=headers
        )
        assert response.json()["imported"] == 2, response.text
    again = await client.post(
        f"/v1/sources/{stores[1]['id']}/imports", content=csv, headers=headers
    )
    assert again.json()["duplicates"] == 2
    # Moka's polled sales are filed by the same code, keyed by payment number.
    assert by_source(await stored_events(engine)) == {s["id"]: 2 for s in stores}


# --- the migration that moved the key ------------------------------------------------------


def _upgrade_keeps_filed_events(url: str) -> None:
    config = alembic_config(url)
    command.upgrade(config, "0006")
    now = datetime(2026, 12, 1, tzinfo=UTC)

    def event(event_id: str, source_id: str, tenant_id: str = "ten_1") -> dict[str, Any]:
        return {
            "id": event_id,
            "tenant_id": tenant_id,
            "type": "sale.completed",
            "source_id": source_id,
            "occurred_at": now,
            "received_at": now,
            "dedupe_key": "pos:msg_1",
            "payload": "{}",
        }

    async def write(table: sa.Table, rows: list[dict[str, Any]]) -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(table.insert(), rows)
        finally:
            await engine.dispose()

    asyncio.run(
        write(
            tenants,
            [
                {"id": t, "name": t, "status": "enabled", "created_at": now, "updated_at": now}
                for t in ("ten_1", "ten_2")
            ],
        )
    )
    asyncio.run(write(events, [event("evt_1", "src_a"), event("evt_2", "src_c", "ten_2")]))
    command.upgrade(config, "head")
    asyncio.run(write(events, [event("evt_3", "src_b")]))  # another source of ten_1, same key
    with pytest.raises(sa.exc.IntegrityError):
        asyncio.run(write(events, [event("evt_4", "src_a")]))  # a repeat on the same source

    async def ids() -> list[str]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(sa.select(events.c.id).order_by("id"))).scalars())
        finally:
            await engine.dispose()

    assert asyncio.run(ids()) == ["evt_1", "evt_2", "evt_3"]


def test_the_upgrade_keeps_filed_events_and_dedupes_per_source(tmp_path: Path) -> None:
    _upgrade_keeps_filed_events(f"sqlite+aiosqlite:///{tmp_path}/upgrade.db")


def test_the_upgrade_keeps_filed_events_and_dedupes_per_source_on_postgresql() -> None:
    with backends.throwaway_postgres_database() as url:
        _upgrade_keeps_filed_events(url)
