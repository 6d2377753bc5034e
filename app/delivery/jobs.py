"""Delivery jobs on the queue: names, ids that make duplicate enqueues harmless, enqueueing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from arq.connections import ArqRedis

DELIVER_JOB = "deliver_attempts"
# A fan-out is split into jobs of this many first attempts: fewer, cheaper jobs than one
# per delivery, small enough that one slow endpoint holds back few others.
FANOUT_CHUNK = 16

AttemptRef = tuple[str, int]  # (delivery id, attempt number)


def attempt_job_id(delivery_id: str, attempt: int) -> str:
    """One job id per attempt: enqueueing the same attempt twice is a no-op in arq."""
    return f"{delivery_id}:{attempt}"


async def enqueue_first_attempts(
    queue: ArqRedis, event_id: str, delivery_ids: Sequence[str]
) -> None:
    for index in range(0, len(delivery_ids), FANOUT_CHUNK):
        chunk = delivery_ids[index : index + FANOUT_CHUNK]
        job_id = attempt_job_id(chunk[0], 1) if len(chunk) == 1 else f"{event_id}:fanout:{index}"
        await queue.enqueue_job(DELIVER_JOB, [[d, 1] for d in chunk], _job_id=job_id)


async def enqueue_attempt(
    queue: ArqRedis,
    delivery_id: str,
    attempt: int,
    *,
    defer_until: datetime | None = None,
    job_id: str | None = None,
) -> None:
    await queue.enqueue_job(
        DELIVER_JOB,
        [[delivery_id, attempt]],
        _job_id=job_id or attempt_job_id(delivery_id, attempt),
        _defer_until=defer_until,
    )
