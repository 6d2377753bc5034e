"""API publishes share transactions: group commit of events and their outbox rows."""

from __future__ import annotations

import asyncio

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.delivery.fanout import (
    EventDraft,
    Published,
    count_published,
    enqueue_published_batch,
    write_events,
)
from app.delivery.micro_batch import GroupCommit

# Batches stay small enough that one transaction is short (a few ms on PostgreSQL) and
# large enough to carry every request of a busy moment.
MAX_EVENTS_PER_COMMIT = 200
# Committed events wait this long for company before their first attempts are enqueued:
# a job costs a worker about as much as several attempts, so jobs should carry several.
ENQUEUE_LINGER_S = 0.005


class EventPublisher:
    """Writes events that arrive together in one transaction, answers each after the commit.

    Per event, a transaction of its own costs four SQL round trips and a job enqueue; under
    concurrent load those dominate a publish. Here a batch costs the same round trips once
    (matching per distinct tenant/type/source, one INSERT of events, one of deliveries), and
    its first attempts go to the queue in shared jobs after the commit.
    """

    def __init__(self, engine: AsyncEngine, queue: ArqRedis) -> None:
        self._engine = engine
        self._queue = queue
        self._commits: GroupCommit[EventDraft, Published] = GroupCommit(
            self._write, max_size=MAX_EVENTS_PER_COMMIT, max_concurrent=8
        )
        # Committed, first attempts not yet queued; one task hands them over after the linger.
        self._to_enqueue: list[Published] = []
        self._enqueues: set[asyncio.Task[None]] = set()

    async def publish(self, draft: EventDraft) -> Published:
        """Returns once the event and its deliveries are committed; the enqueue follows."""
        return await self._commits.submit(draft)

    async def _write(self, drafts: list[EventDraft]) -> list[Published]:
        async with self._engine.begin() as conn:
            published = await write_events(conn, drafts)
        count_published(published)
        # After the commit and off the requests' path; should it never happen (process
        # stopped, Redis down), the sweeper finds the deliveries due and enqueues them.
        lingering = bool(self._to_enqueue)
        self._to_enqueue.extend(published)
        if len(self._to_enqueue) >= MAX_EVENTS_PER_COMMIT:
            self._start_enqueue(0.0)
        elif not lingering:
            self._start_enqueue(ENQUEUE_LINGER_S)
        return published

    def _start_enqueue(self, linger_s: float) -> None:
        task = asyncio.create_task(self._enqueue_after(linger_s))
        self._enqueues.add(task)
        task.add_done_callback(self._enqueues.discard)

    async def _enqueue_after(self, linger_s: float) -> None:
        if linger_s:
            await asyncio.sleep(linger_s)
        batch, self._to_enqueue = self._to_enqueue, []
        if batch:
            await enqueue_published_batch(self._queue, batch)

    @property
    def enqueues_pending(self) -> int:
        """Batches committed whose first attempts are not yet handed to the queue."""
        return len(self._enqueues)

    async def enqueued(self) -> None:
        """Wait until every committed event's first attempts have been handed to the queue."""
        while self._enqueues:
            await asyncio.gather(*list(self._enqueues), return_exceptions=True)

    async def aclose(self) -> None:
        await self._commits.drain()
        await self.enqueued()
