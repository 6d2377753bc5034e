"""Group commit: what arrives during a write joins the next one; failures reach every caller."""

from __future__ import annotations

import asyncio

import pytest

from app.delivery.micro_batch import GroupCommit


async def test_a_lone_item_is_handled_at_once_and_later_arrivals_share_batches() -> None:
    batches: list[list[int]] = []
    release = asyncio.Event()

    async def handle(items: list[int]) -> list[int]:
        batches.append(items)
        await release.wait()
        return [item * 10 for item in items]

    commit: GroupCommit[int, int] = GroupCommit(handle, max_concurrent=1)
    first = asyncio.create_task(commit.submit(0))
    await asyncio.sleep(0.01)
    assert batches == [[0]]  # not held back waiting for company
    rest = [asyncio.create_task(commit.submit(i)) for i in range(1, 6)]
    await asyncio.sleep(0.01)
    assert batches == [[0]]  # one write at a time; the others queue
    release.set()
    assert await first == 0
    assert [await task for task in rest] == [10, 20, 30, 40, 50]
    assert batches == [[0], [1, 2, 3, 4, 5]]


async def test_batches_are_capped_and_run_side_by_side() -> None:
    batches: list[list[int]] = []
    running = 0
    most = 0

    async def handle(items: list[int]) -> list[int]:
        nonlocal running, most
        batches.append(items)
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        return items

    commit: GroupCommit[int, int] = GroupCommit(handle, max_size=4, max_concurrent=2)
    results = await asyncio.gather(*(commit.submit(i) for i in range(20)))
    assert results == list(range(20))
    assert max(len(b) for b in batches) <= 4
    assert most == 2
    assert sorted(i for b in batches for i in b) == list(range(20))


async def test_a_failed_write_fails_every_caller_in_it_and_the_next_batch_still_runs() -> None:
    calls = 0

    async def handle(items: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls == 1:
            raise RuntimeError("database went away")
        return items

    commit: GroupCommit[str, str] = GroupCommit(handle, max_concurrent=1)
    together = [asyncio.create_task(commit.submit(x)) for x in ("a", "b")]
    await asyncio.sleep(0)
    later = asyncio.create_task(commit.submit("c"))
    for task in together:
        with pytest.raises(RuntimeError, match="went away"):
            await task
    assert await later == "c"
    assert calls == 2
    await commit.drain()
