"""Delivery jobs on the queue: names, ids that make duplicate enqueues harmless, enqueueing."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from datetime import datetime

from arq.connections import ArqRedis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

DELIVER_JOB = "deliver_attempts"
# First attempts are enqueued in jobs of up to this many: arq's per-job cost (several Redis
# round trips) is then shared, and a job's attempts run concurrently and are recorded as
# each finishes, so a slow endpoint in a job holds back only its own attempts.
FIRST_ATTEMPTS_PER_JOB = 64

AttemptRef = tuple[str, int]  # (delivery id, attempt number)


def attempt_job_id(delivery_id: str, attempt: int) -> str:
    """One job id per attempt: enqueueing the same attempt twice is a no-op in arq."""
    return f"{delivery_id}:{attempt}"


async def enqueue_first_attempts(queue: ArqRedis, delivery_ids: Sequence[str]) -> None:
    for index in range(0, len(delivery_ids), FIRST_ATTEMPTS_PER_JOB):
        chunk = delivery_ids[index : index + FIRST_ATTEMPTS_PER_JOB]
        # Delivery ids are unique, so the first one names the chunk: a repeat is a no-op.
        job_id = attempt_job_id(chunk[0], 1) if len(chunk) == 1 else f"{chunk[0]}:first"
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


async def enqueue_after_commit(enqueue: Awaitable[None], *, what: str) -> None:
    """Queue work already committed to SQL; should Redis be unreachable, leave it to the sweeper.

    The committed rows are the work (due deliveries, a running replay); the job only starts
    it sooner. Failing the request would tell the client nothing was done when it was, and
    invite a second copy, so the request succeeds and the sweeper finds the rows due.
    """
    try:
        await enqueue
    except (RedisError, OSError) as exc:
        logger.warning(
            "enqueue failed; the sweeper will pick the work up",
            extra={"work": what, "error": type(exc).__name__},
        )
