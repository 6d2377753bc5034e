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
