"""arq's Worker, taking the jobs it starts with one script call per poll.

arq reads up to 500 due job ids from the head of the queue, then starts each with a WATCH
transaction: WATCH, EXISTS and ZSCORE, then MULTI/PSETEX/EXEC, four round trips, tried in
turn until one starts. Jobs in progress stay in the queue, so with several workers busy each
start paid for about three tries (3.1 WATCH per started job in the delivery benchmark), a
tenth of a worker's CPU. Here one script reads the due jobs and takes, atomically and in
queue order, as many as the worker has room for that no worker has in progress. The keys
and what a job sees are arq's own, so these workers and plain arq ones can share a queue.

arq's worker exits at the first Redis error out of its poll loop (and cannot start while
Redis is down); this one waits for Redis with backoff and carries on (workers.redis_outage).
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from typing import Any

from arq.connections import create_pool
from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker

from workers.redis_outage import REDIS_DOWN, RedisOutage

# KEYS[1]: the queue. ARGV: now (ms), the in-progress lease (ms), how many jobs to take,
# the in-progress key prefix, how many due jobs to look at. Returns (job id, score) pairs.
# The in-progress keys are named from the job ids, as arq names them: a single Redis, as
# arq requires anyway, not a cluster.
_TAKE_JOBS = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0,
  tonumber(ARGV[5]))
local room = tonumber(ARGV[3])
local taken = {}
for i = 1, #due, 2 do
  if #taken >= room * 2 then break end
  local key = ARGV[4] .. due[i]
  if redis.call('EXISTS', key) == 0 then
    redis.call('PSETEX', key, ARGV[2], '1')
    table.insert(taken, due[i])
    table.insert(taken, due[i + 1])
  end
end
return taken
"""


class DeliveryWorker(Worker):
    """Polls and starts jobs as arq does (same keys, same limits), one round trip a poll."""

    _take_jobs: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.redis_outage = RedisOutage()

    async def main(self) -> None:
        while self._pool is None and self.redis_settings is not None:
            try:
                # No retries of arq's own (each logged): the outage logs once and paces them.
                self._pool = await create_pool(
                    dataclasses.replace(self.redis_settings, conn_retries=0),
                    job_serializer=self.job_serializer,
                    job_deserializer=self.job_deserializer,
                    default_queue_name=self.queue_name,
                    expires_extra_ms=self.expires_extra_ms,
                )
            except REDIS_DOWN as exc:
                await self.redis_outage.wait(exc)
        self.redis_outage.recovered()
        await super().main()

    async def _poll_iteration(self) -> None:
        try:
            await self._poll_once()
        except REDIS_DOWN as exc:
            await self.redis_outage.wait(exc)
        else:
            self.redis_outage.recovered()

    async def _poll_once(self) -> None:
        if self.burst:
            await super()._poll_iteration()  # arq's own count of burst jobs
            return
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                try:
                    task.result()  # errors in run_job surface here, as in arq
                except REDIS_DOWN as exc:
                    # arq could not record the job's end in Redis. Its attempts are
                    # recorded in SQL, and what it left due the sweeper enqueues again.
                    self.redis_outage.noticed(exc)
        room = self.max_jobs - self.job_counter
        if self.allow_pick_jobs and room > 0:
            await self._take(room)
        if self.allow_abort_jobs:
            await self._cancel_aborted_jobs()
        await self.heart_beat()

    async def _take(self, room: int) -> None:
        if self._take_jobs is None:
            self._take_jobs = self.pool.register_script(_TAKE_JOBS)
        taken = await self._take_jobs(
            keys=[self.queue_name],
            args=[
                timestamp_ms(),
                int(self.in_progress_timeout_s * 1000),
                room,
                in_progress_key_prefix,
                self.queue_read_limit,
            ],
        )
        for index in range(0, len(taken), 2):
            job_id = taken[index].decode()
            score = int(float(taken[index + 1]))
            await self.sem.acquire()
            self.job_counter += 1
            task = self.loop.create_task(self.run_job(job_id, score))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task

    async def close(self) -> None:
        """arq's close, except that Redis being away does not skip the shutdown hook."""
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        if self._pool is None:
            return
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        try:
            await self.pool.delete(self.health_check_key)
        except REDIS_DOWN as exc:
            self.redis_outage.noticed(exc)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await self.pool.aclose(close_connection_pool=True)
        self._pool = None
