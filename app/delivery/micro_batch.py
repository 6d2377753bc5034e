"""Group commit: concurrent callers' items are handled together in one batch call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Collects items submitted at about the same time and hands them over as one list.

    The SQL work of a delivery attempt (claim, then record) costs a transaction; many
    attempts run at once in a worker, so sharing one transaction between them is what lets
    a worker keep up with its HTTP client. A lone item waits at most `max_wait_s`.
    """

    def __init__(
        self,
        handle: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        max_size: int = 64,
        max_wait_s: float = 0.002,
    ) -> None:
        self._handle = handle
        self._max_size = max_size
        self._max_wait_s = max_wait_s
        # Groups of items submitted together, each with the future of their results.
        self._pending: list[tuple[Sequence[T], asyncio.Future[Sequence[R]]]] = []
        self._count = 0
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        return (await self.submit_many((item,)))[0]

    async def submit_many(self, items: Sequence[T]) -> Sequence[R]:
        """Several items (a job's attempts, say) with one future between them."""
        future: asyncio.Future[Sequence[R]] = asyncio.get_running_loop().create_future()
        self._pending.append((items, future))
        self._count += len(items)
        if self._count >= self._max_size:
            self._flush_now()
        elif self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later())
        return await future

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._max_wait_s)
        self._flusher = None
        await self._run(self._take())

    def _flush_now(self) -> None:
        batch = self._take()
        asyncio.create_task(self._run(batch))  # noqa: RUF006 - futures carry the outcome

    def _take(self) -> list[tuple[Sequence[T], asyncio.Future[Sequence[R]]]]:
        batch, self._pending, self._count = self._pending, [], 0
        return batch

    async def _run(self, batch: list[tuple[Sequence[T], asyncio.Future[Sequence[R]]]]) -> None:
        if not batch:
            return
        try:
            results = await self._handle([item for items, _ in batch for item in items])
        except BaseException as exc:  # every waiter must hear about the failure
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        start = 0
        for items, future in batch:
            end = start + len(items)
            if not future.done():
                future.set_result(results[start:end])
            start = end


class GroupCommit(Generic[T, R]):
    """Items that arrive while earlier batches are being written go together in the next one.

    Unlike MicroBatcher there is no timer: a lone item is handled at once, and under load each
    batch carries whatever queued during the previous one, so the number of transactions
    stays roughly flat as the request rate grows. At most `max_concurrent` batches run at a
    time; their transactions overlap their round trips.
    """

    def __init__(
        self,
        handle: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        max_size: int = 200,
        max_concurrent: int = 2,
    ) -> None:
        self._handle = handle
        self._max_size = max_size
        self._max_concurrent = max_concurrent
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._running: set[asyncio.Task[None]] = set()
        self._not_yet_taken = 0  # tasks started that have not taken their batch yet

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._start()
        return await future

    def _start(self) -> None:
        # The batch is taken when the task first runs, so whatever else arrives in this
        # turn of the event loop joins it; no more tasks than the pending items need.
        while self._needs_another_task():
            self._not_yet_taken += 1
            task = asyncio.create_task(self._run())
            self._running.add(task)
            task.add_done_callback(self._finished)

    def _needs_another_task(self) -> bool:
        if len(self._running) >= self._max_concurrent:
            return False
        return self._not_yet_taken * self._max_size < len(self._pending)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._start()

    async def _run(self) -> None:
        self._not_yet_taken -= 1
        batch = self._pending[: self._max_size]
        del self._pending[: self._max_size]
        batch = [(item, future) for item, future in batch if not future.done()]
        if not batch:
            return
        try:
            results = await self._handle([item for item, _ in batch])
        except Exception as exc:  # every waiter must hear about the failure
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def drain(self) -> None:
        """Wait until every submitted item has been handled."""
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)
