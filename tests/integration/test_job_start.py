"""The worker's job start: one script call per poll, with arq's guarantees kept."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from arq import func
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix

from workers.job_start import DeliveryWorker
from workers.queue import QUEUE_NAME, deserialize_job, serialize_job


def _worker(queue: ArqRedis, runs: Counter[str], peaks: list[int], max_jobs: int) -> DeliveryWorker:
    running = 0
    peaks.append(0)
    index = len(peaks) - 1

    async def note(ctx: dict[str, Any], name: str) -> None:
        nonlocal running
        runs[name] += 1
        running += 1
        peaks[index] = max(peaks[index], running)
        await asyncio.sleep(0.02)  # still running when the other worker polls
        running -= 1

    return DeliveryWorker(
        functions=[func(note, name="note", keep_result=0)],
        redis_pool=queue,
        queue_name=QUEUE_NAME,
        max_jobs=max_jobs,
        poll_delay=0.005,
        handle_signals=False,
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        keep_result=0,
    )


async def _until(condition: Any, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel until they end: a cancellation that lands inside a Redis call can be lost
    there (seen with arq's own Worker as with this one), so once is not always enough."""
    deadline = time.monotonic() + 10
    while pending := [task for task in tasks if not task.done()]:
        assert time.monotonic() < deadline, "workers did not stop"
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.1)
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_two_workers_run_each_due_job_once_and_skip_what_is_not_theirs(
    queue: ArqRedis,
) -> None:
    for n in range(30):
        await queue.enqueue_job("note", f"job{n}", _job_id=f"job{n}")
    # One is in progress in some other worker; one is not due for a minute.
    await queue.enqueue_job("note", "elsewhere", _job_id="elsewhere")
    await queue.psetex(in_progress_key_prefix + "elsewhere", 60_000, b"1")
    later = datetime.now(UTC) + timedelta(minutes=1)
    await queue.enqueue_job("note", "later", _job_id="later", _defer_until=later)

    runs: Counter[str] = Counter()
    peaks: list[int] = []
    workers = [_worker(queue, runs, peaks, max_jobs=4) for _ in range(2)]
    tasks = [asyncio.create_task(w.main()) for w in workers]
    try:
        await _until(lambda: len(runs) >= 30)
        await asyncio.sleep(0.2)  # time enough for a second run of anything
    finally:
        await _stop(tasks)
    assert runs == Counter({f"job{n}": 1 for n in range(30)})
    # Both took jobs, neither more at a time than its max_jobs.
    assert all(0 < peak <= 4 for peak in peaks)
    assert sum(w.jobs_complete for w in workers) == 30
    assert await queue.zscore(QUEUE_NAME, "elsewhere") is not None
    assert await queue.zscore(QUEUE_NAME, "later") is not None
