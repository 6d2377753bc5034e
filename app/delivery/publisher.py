"""API publishes share transactions: group commit of events and their outbox rows."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.delivery.fanout import (
    EventDraft,
    Published,
    count_published,
    enqueue_published_batch,
    write_events,
    write_events_held,
)
from app.delivery.jobs import FIRST_ATTEMPTS_PER_JOB
from app.delivery.micro_batch import GroupCommit
from app.store.driver_sql import HeldConnections

# Under load requests arrive in waves: a batch that ended answers its requests together, and
# their clients' next requests reach the batcher together. A batch that takes a whole wave
# makes the next wave wait for all of it, and the process idles while PostgreSQL writes it
# (measured with 50-200 clients: batches of ~100 events, the process ~20 % idle). Batches of
# at most 32 keep several in flight, so the process works on requests while PostgreSQL
# writes earlier ones.
MAX_EVENTS_PER_COMMIT = 32
# Batches written at the same time (each on a connection of its own).
CONCURRENT_COMMITS = 8
# Committed events whose first attempts wait for an enqueue, at most (events that matched
# no subscription add nothing to a job, but still wait in the list).
MAX_EVENTS_PER_ENQUEUE = 200
# Committed events wait up to this long for company before their first attempts are
# enqueued (at once when a full job's worth of deliveries is waiting): a job costs a worker
# about as much as several attempts, and measured at 1,300 events/s, jobs of ~31 attempts
# (this linger) instead of ~11 (5 ms) gave 15 % more deliveries per second.
ENQUEUE_LINGER_S = 0.015


class EventPublisher:
    """Writes events that arrive together in one transaction, answers each after the commit.

    Per event, a transaction of its own costs four SQL round trips and a job enqueue; under
    concurrent load those dominate a publish. Here a batch costs the same round trips once
    (matching per distinct tenant/type/source, one INSERT of events, one of deliveries), and
    its first attempts go to the queue in shared jobs after the commit. On PostgreSQL a
    batch is one statement (`app.store.publish_sql`) on a connection kept for publishing.
    """

    def __init__(self, engine: AsyncEngine, queue: ArqRedis) -> None:
        self._engine = engine
        self._queue = queue
        self._held = (
            HeldConnections(engine, size=CONCURRENT_COMMITS)
            if engine.dialect.name == "postgresql"
            else None
        )
        self._commits: GroupCommit[EventDraft, Published] = GroupCommit(
            self._write, max_size=MAX_EVENTS_PER_COMMIT, max_concurrent=CONCURRENT_COMMITS
        )
        # Committed, first attempts not yet queued, and how many deliveries that is.
        self._to_enqueue: list[Published] = []
        self._waiting_deliveries = 0
        self._lingering = False
        # Bumped by every take, so a linger timer started before it takes nothing.
        self._generation = 0
        self._enqueues: set[asyncio.Task[None]] = set()

    async def publish(self, draft: EventDraft) -> Published:
        """Returns once the event and its deliveries are committed; the enqueue follows."""
        return await self._commits.submit(draft)

    async def _write(self, drafts: list[EventDraft]) -> list[Published]:
        if self._held is not None:
            published = await write_events_held(self._held, drafts)
        else:
            async with self._engine.begin() as conn:
                published = await write_events(conn, drafts)
        count_published(published)
        # After the commit and off the requests' path; should it never happen (process
        # stopped, Redis down), the sweeper finds the deliveries due and enqueues them.
        self._to_enqueue.extend(published)
        self._waiting_deliveries += sum(len(p.delivery_ids) for p in published)
        if (
            self._waiting_deliveries >= FIRST_ATTEMPTS_PER_JOB
            or len(self._to_enqueue) >= MAX_EVENTS_PER_ENQUEUE
        ):
            self._track(self._enqueue(self._take()))
        elif not self._lingering:
            self._lingering = True
            self._track(self._enqueue_after_linger(self._generation))
        return published

    def _take(self) -> list[Published]:
        batch, self._to_enqueue, self._waiting_deliveries = self._to_enqueue, [], 0
        self._generation += 1
        self._lingering = False
        return batch

    def _track(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.create_task(work)
        self._enqueues.add(task)
        task.add_done_callback(self._enqueues.discard)

    async def _enqueue_after_linger(self, generation: int) -> None:
        await asyncio.sleep(ENQUEUE_LINGER_S)
        # Else a full batch went meanwhile with what this timer waited for; what came after
        # it started a timer of its own (instead of leaving this one a remainder to send).
        if generation == self._generation:
            await self._enqueue(self._take())

    async def _enqueue(self, batch: list[Published]) -> None:
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
        if self._held is not None:
            await self._held.close()
