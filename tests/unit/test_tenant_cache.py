"""The tenant cache answers from memory for its TTL, then asks again."""

from __future__ import annotations

import asyncio

from app.http.tenant_cache import TenantCache


async def test_answers_from_memory_until_the_ttl_runs_out() -> None:
    calls: list[str] = []
    state = {"enabled": True}

    async def lookup(tenant_id: str) -> bool:
        calls.append(tenant_id)
        return state["enabled"]

    cache = TenantCache(ttl_s=0.2)
    assert await cache.is_enabled("ten_1", lookup)
    state["enabled"] = False
    assert await cache.is_enabled("ten_1", lookup)  # still remembered
    assert calls == ["ten_1"]
    await asyncio.sleep(0.25)
    assert not await cache.is_enabled("ten_1", lookup)  # disabled now seen
    assert calls == ["ten_1", "ten_1"]


async def test_ttl_zero_always_asks() -> None:
    calls = 0

    async def lookup(_: str) -> bool:
        nonlocal calls
        calls += 1
        return True

    cache = TenantCache(ttl_s=0)
    for _ in range(3):
        await cache.is_enabled("ten_1", lookup)
    assert calls == 3


async def test_requests_arriving_while_an_entry_is_looked_up_share_the_lookup() -> None:
    calls = 0
    answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def lookup(_: str) -> bool:
        nonlocal calls
        calls += 1
        return await answer

    cache = TenantCache(ttl_s=60)
    asking = [asyncio.create_task(cache.is_enabled("ten_1", lookup)) for _ in range(20)]
    await asyncio.sleep(0)
    answer.set_result(True)
    assert await asyncio.gather(*asking) == [True] * 20
    assert calls == 1


async def test_a_failed_lookup_fails_every_request_waiting_for_it_and_is_not_kept() -> None:
    calls = 0
    answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def lookup(_: str) -> bool:
        nonlocal calls
        calls += 1
        return await answer

    cache = TenantCache(ttl_s=60)
    asking = [asyncio.create_task(cache.is_enabled("ten_1", lookup)) for _ in range(3)]
    await asyncio.sleep(0)
    answer.set_exception(ConnectionError("database down"))
    results = await asyncio.gather(*asking, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)

    async def healthy(_: str) -> bool:
        nonlocal calls
        calls += 1
        return False

    assert not await cache.is_enabled("ten_1", healthy)  # asked again, not a cached failure
    assert calls == 2


async def test_a_request_that_gives_up_does_not_fail_the_others_waiting_with_it() -> None:
    answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def lookup(_: str) -> bool:
        return await answer

    cache = TenantCache(ttl_s=60)
    first = asyncio.create_task(cache.is_enabled("ten_1", lookup))
    await asyncio.sleep(0)
    second = asyncio.create_task(cache.is_enabled("ten_1", lookup))
    await asyncio.sleep(0)
    first.cancel()  # its client went away
    answer.set_result(True)
    assert await second
    assert first.cancelled()
