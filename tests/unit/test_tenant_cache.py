"""The tenant cache answers from memory for its TTL, then asks again."""

from __future__ import annotations

import asyncio

import pytest

from app.http.tenant_cache import TenantCache
from app.settings import SettingsError, load_settings


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


class PendingLookup:
    """A lookup that answers when the test says so, and counts how often it was asked."""

    def __init__(self) -> None:
        self.calls = 0
        self.answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def __call__(self, _: str) -> bool:
        self.calls += 1
        return await self.answer


async def ask_together(
    cache: TenantCache, lookup: PendingLookup, n: int
) -> list[asyncio.Task[bool]]:
    asking = [asyncio.create_task(cache.is_enabled("ten_1", lookup)) for _ in range(n)]
    await asyncio.sleep(0)
    return asking


async def test_requests_arriving_while_an_entry_is_looked_up_share_the_lookup() -> None:
    lookup = PendingLookup()
    cache = TenantCache(ttl_s=60)
    asking = await ask_together(cache, lookup, 20)
    lookup.answer.set_result(True)
    assert await asyncio.gather(*asking) == [True] * 20
    assert lookup.calls == 1


async def test_a_failed_lookup_fails_every_request_waiting_for_it_and_is_not_kept() -> None:
    lookup = PendingLookup()
    cache = TenantCache(ttl_s=60)
    asking = await ask_together(cache, lookup, 3)
    lookup.answer.set_exception(ConnectionError("database down"))
    results = await asyncio.gather(*asking, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert lookup.calls == 1

    healthy = PendingLookup()
    healthy.answer.set_result(False)
    assert not await cache.is_enabled("ten_1", healthy)  # asked again, not a cached failure
    assert healthy.calls == 1


async def test_a_request_that_gives_up_does_not_fail_the_others_waiting_with_it() -> None:
    lookup = PendingLookup()
    cache = TenantCache(ttl_s=60)
    [first, second] = await ask_together(cache, lookup, 2)
    first.cancel()  # its client went away
    lookup.answer.set_result(True)
    assert await second
    assert first.cancelled()


def test_by_default_a_disabled_tenant_is_refused_within_a_second() -> None:
    assert 0 < load_settings({}).tenant_cache_s < 1
    assert load_settings({"GATEWAY_TENANT_CACHE_S": "0"}).tenant_cache_s == 0


@pytest.mark.parametrize("raw", ["5", "1.5", "-0.1", "soon"])
def test_a_cache_that_would_keep_a_disabled_tenant_past_a_second_is_refused(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"^GATEWAY_TENANT_CACHE_S: "):
        load_settings({"GATEWAY_TENANT_CACHE_S": raw})
