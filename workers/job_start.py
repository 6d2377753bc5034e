"""arq's Worker, taking the jobs it starts with one script call per poll.

arq reads up to 500 due job ids from the head of the queue, then starts each with a WATCH
transaction: WATCH, EXISTS and ZSCORE, then MULTI/PSETEX/EXEC, four round trips, tried in
turn until one starts. Jobs in progress stay in the queue, so with several workers busy each
start paid for about three tries (3.1 WATCH per started job in the delivery benchmark), a
tenth of a worker's CPU. Here one script reads the due jobs and takes, atomically and in
queue order, as many as the worker has room for that no worker has in progress. The keys
and what a job sees are arq's own, so these workers and plain arq ones can share a queue.
"""

from __future__ import annotations

from typing import Any

from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker

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

    async def _poll_iteration(self) -> None:
        if self.burst:
            await super()._poll_iteration()  # arq's own count of burst jobs
            return
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # errors in run_job surface here, as in arq
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
