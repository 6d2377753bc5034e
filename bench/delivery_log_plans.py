"""PostgreSQL query plans of the delivery-log endpoints over 1M attempt rows.

Fills a throwaway database (250k events, 250k deliveries, 1M attempts, one tenant with
20 subscriptions) through COPY, then runs EXPLAIN (ANALYZE, BUFFERS) on the exact queries
the API builds, and prints them as Markdown for docs/performance.md.

    .venv/bin/python -m bench.delivery_log_plans [--deliveries 250000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import time
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy.dialects import postgresql

from app.ids import _encode, id_floor
from app.store.deliveries import attempts_query, list_deliveries_query
from app.store.migrate import upgrade_to_head

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TENANT = "ten_01BENCHTENANT0000000000000"
STATUSES = ("succeeded",) * 90 + ("failed",) * 6 + ("pending",) * 3 + ("cancelled",)


def _id(prefix: str, at: datetime) -> str:
    millis = _encode(int(at.timestamp() * 1000), 10)
    return f"{prefix}_{millis}{_encode(random.getrandbits(80), 16)}"


def _sql(query: object) -> str:
    return str(
        query.compile(  # type: ignore[attr-defined]
            dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
        )
    )


async def fill(conn: asyncpg.Connection, deliveries_n: int) -> dict[str, str]:
    now = datetime.now(UTC)
    start = now - timedelta(days=30)
    step = timedelta(days=30) / deliveries_n
    await conn.execute("INSERT INTO tenants VALUES ($1, 'bench', 'enabled', $2, $2)", TENANT, now)
    subs = [_id("sub", start) for _ in range(20)]
    await conn.copy_records_to_table(
        "subscriptions",
        records=[
            (
                s,
                TENANT,
                "https://93.184.216.34/h",
                None,
                '["*"]',
                None,
                "{}",
                None,
                10,
                15,
                "enabled",
                None,
                None,
                "plain:x",
                None,
                None,
                None,
                0,
                now,
                now,
                None,
            )
            for s in subs
        ],
    )
    events, deliveries, attempts = [], [], []
    for i in range(deliveries_n):
        at = start + step * i
        event_id, delivery_id = _id("evt", at), _id("dlv", at)
        status = random.choice(STATUSES)
        events.append(
            (event_id, TENANT, "order.created", None, None, at, at, None, None, None, "{}")
        )
        deliveries.append(
            (
                delivery_id,
                TENANT,
                event_id,
                subs[i % 20],
                status,
                4,
                None,
                at,
                200,
                None,
                None,
                at,
                at,
            )
        )
        for n in range(1, 5):
            attempts.append(
                (_id("att", at), delivery_id, TENANT, n, at, 12, 500 if n < 4 else 200, None, "ok")
            )
    started = time.monotonic()
    await conn.copy_records_to_table("events", records=events)
    await conn.copy_records_to_table("deliveries", records=deliveries)
    await conn.copy_records_to_table("attempts", records=attempts)
    await conn.execute(
        "INSERT INTO unfinished_deliveries "
        "SELECT id, tenant_id, subscription_id, status, next_attempt_at FROM deliveries "
        "WHERE status <> 'succeeded'"
    )
    await conn.execute("ANALYZE")
    print(f"<!-- filled {len(attempts)} attempts in {time.monotonic() - started:.0f} s -->")
    middle = deliveries[deliveries_n // 2]
    return {"subscription": subs[3], "event": middle[2], "delivery": middle[0]}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=250_000)
    args = parser.parse_args()
    name = f"pwbi_plans_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0]
    try:
        await asyncio.to_thread(
            upgrade_to_head, f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
        )
        conn = await asyncpg.connect(f"{base}/{name}")
        try:
            ids = await fill(conn, args.deliveries)
            week_ago = datetime.now(UTC) - timedelta(days=7)
            cases = {
                "newest first (no filter)": list_deliveries_query(TENANT, limit=50),
                "status=failed": list_deliveries_query(TENANT, limit=50, status="failed"),
                "status=succeeded": list_deliveries_query(TENANT, limit=50, status="succeeded"),
                "subscription_id": list_deliveries_query(
                    TENANT, limit=50, subscription_id=ids["subscription"]
                ),
                "subscription_id + status=failed": list_deliveries_query(
                    TENANT, limit=50, subscription_id=ids["subscription"], status="failed"
                ),
                "subscription_id + status=succeeded": list_deliveries_query(
                    TENANT, limit=50, subscription_id=ids["subscription"], status="succeeded"
                ),
                "event_id": list_deliveries_query(TENANT, limit=50, event_id=ids["event"]),
                "since 7 days + until 6 days": list_deliveries_query(
                    TENANT, limit=50, since=week_ago, until=week_ago + timedelta(days=1)
                ),
                "page 2 (cursor)": list_deliveries_query(
                    TENANT, limit=50, before_id=id_floor("dlv", week_ago)
                ),
                "attempts of one delivery": attempts_query(ids["delivery"]),
            }
            for title, query in cases.items():
                plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + _sql(query))
                print(f"\n#### {title}\n\n```")
                print("\n".join(r[0] for r in plan))
                print("```")
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
