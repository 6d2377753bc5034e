"""A worker in-process against a Redis of its own: started before Redis, and through a restart."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from arq import func
from arq.connections import RedisSettings

from app.embedded_redis import EmbeddedRedis, free_port, start_embedded_redis
from workers.job_start import DeliveryWorker
from workers.queue import QUEUE_NAME, deserialize_job, queue_connection, serialize_job


async def until(condition: Callable[[], bool], limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The outage's own log lines, up to their first semicolon."""
    records = [r for r in caplog.records if r.name == "workers.redis_outage"]
    return [r.getMessage().split(";")[0] for r in records]


async def enqueue(port: int, value: int) -> None:
    queue = queue_connection(f"redis://127.0.0.1:{port}/0")
    try:
        await queue.enqueue_job("note", value)
    finally:
        await queue.aclose()


async def test_a_worker_waits_for_redis_and_carries_on_through_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()  # nothing listens here yet
    ran: list[int] = []
    started = asyncio.Event()

    async def note(ctx: dict[str, Any], value: int) -> None:
        ran.append(value)

    async def on_startup(ctx: dict[str, Any]) -> None:
        started.set()

    worker = DeliveryWorker(
        functions=[func(note, name="note", keep_result=0)],
        redis_settings=RedisSettings(host="127.0.0.1", port=port, conn_timeout=1),
        queue_name=QUEUE_NAME,
        poll_delay=0.01,
        handle_signals=False,
        on_startup=on_startup,
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        keep_result=0,
    )
    running = asyncio.create_task(worker.main())
    server: EmbeddedRedis | None = None
    try:
        await asyncio.sleep(1.2)  # a few retries, one log line for all of them
        assert not running.done()
        assert not started.is_set()
        assert outage_lines(caplog) == ["Redis unreachable"]

        server = start_embedded_redis(tmp_path / "redis", port=port)
        await until(started.is_set)
        await enqueue(port, 1)
        await until(lambda: ran == [1])

        server.stop()  # Redis goes away under a running worker, and comes back empty
        await asyncio.sleep(1.5)
        assert not running.done()
        server = start_embedded_redis(tmp_path / "redis", port=port)
        await enqueue(port, 2)
        await until(lambda: ran == [1, 2], limit_s=15)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.close()
        if server is not None:
            server.stop()
    assert outage_lines(caplog) == ["Redis unreachable", "Redis reachable again"] * 2
    # arq's own connection retries log a line each; the worker does not use them.
    assert not [r for r in caplog.records if r.name == "arq.connections"]
