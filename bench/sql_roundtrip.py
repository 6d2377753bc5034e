"""What one round trip costs on this machine: the unit the publish and delivery paths spend.

Measures, in this process, CPU and wall time per operation for

* raw asyncpg ``SELECT 1`` on one connection,
* SQLAlchemy Core (async, asyncpg) through ``app.store.engine.create_engine`` (pool_pre_ping,
  as the gateway and workers use it): ``engine.connect()`` + one SELECT, and
  ``engine.begin()`` + one INSERT (the shape of every hot-path transaction),
* redis-py (asyncio) ``PING`` and an arq ``enqueue_job`` (the publish path's Redis work),

each at concurrency 1 and 20 (tasks in one event loop). Uses its own throwaway database and
Redis db 12, both cleaned up at the end.

    .venv/bin/python bench/sql_roundtrip.py [--ops 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import sqlalchemy as sa

from app.store.engine import create_engine
from bench.common import (
    PG_ADMIN_DSN,
    REDIS_URL,
    flush_redis,
    machine_info,
    measure_ops,
    write_result,
)
from workers.queue import queue_connection

Op = Callable[[], Awaitable[Any]]


async def run(ops: int) -> dict[str, Any]:
    database = f"pwbi_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}"
    flush_redis()
    results: dict[str, Any] = {}
    try:
        raw = await asyncpg.create_pool(dsn, min_size=20, max_size=20)
        engine = create_engine("postgresql+asyncpg://" + dsn.removeprefix("postgresql://"))
        table = sa.Table(
            "t",
            sa.MetaData(),
            sa.Column("id", sa.String(40), primary_key=True),
            sa.Column("payload", sa.Text()),
        )
        async with engine.begin() as conn:
            await conn.run_sync(table.metadata.create_all)
        queue = queue_connection(REDIS_URL)
        counter = iter(range(10**9))

        async def asyncpg_select() -> None:
            async with raw.acquire() as conn:
                await conn.fetchval("SELECT 1")

        async def sa_connect_select() -> None:
            async with engine.connect() as conn:
                await conn.execute(sa.select(sa.literal(1)))

        async def sa_begin_insert() -> None:
            async with engine.begin() as conn:
                await conn.execute(table.insert().values(id=f"r{next(counter)}", payload="x" * 600))

        async def redis_ping() -> None:
            await queue.ping()

        async def arq_enqueue() -> None:
            await queue.enqueue_job("noop", [["d", 1]], _job_id=f"j{next(counter)}")

        cases: dict[str, Op] = {
            "asyncpg_select_1": asyncpg_select,
            "sqlalchemy_connect_select": sa_connect_select,
            "sqlalchemy_begin_insert_commit": sa_begin_insert,
            "redis_ping": redis_ping,
            "arq_enqueue_job": arq_enqueue,
        }
        for name, op in cases.items():
            for concurrency in (1, 20):
                results[f"{name}@c{concurrency}"] = await measure_ops(op, ops, concurrency)
                print(name, concurrency, results[f"{name}@c{concurrency}"], file=sys.stderr)
        await queue.aclose()
        await engine.dispose()
        await raw.close()
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
        flush_redis()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000)
    args = parser.parse_args()
    info = machine_info()
    results = asyncio.run(run(args.ops))
    result = {"benchmark": "sql_roundtrip", "machine": info, "params": vars(args), **results}
    path = write_result("sql_roundtrip", result)
    print(json.dumps(results, indent=2))
    print(f"results: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
