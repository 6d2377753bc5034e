"""A short-lived, per-process memory of which tenants are enabled.

Every authenticated request needs to know its tenant is enabled; asking SQL each time costs
three round trips on the hot path. A disabled tenant is refused within `ttl_s` on every
process (GATEWAY_TENANT_CACHE_S, at most a second: disabling a tenant is how an operator
revokes its tokens, and that must take effect now; 0 asks SQL every time). Even at half a
second the cache keeps SQL to a couple of lookups a second per tenant and process. When an
entry runs out under load, the requests that find it gone share one lookup instead of each
asking SQL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TenantCache:
    def __init__(self, ttl_s: float, *, max_entries: int = 10_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: dict[str, tuple[bool, float]] = {}
        self._lookups: dict[str, asyncio.Future[bool]] = {}

    async def is_enabled(self, tenant_id: str, lookup: Callable[[str], Awaitable[bool]]) -> bool:
        now = time.monotonic()
        cached = self._entries.get(tenant_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        if self._ttl_s <= 0:
            return await lookup(tenant_id)
        task = self._lookups.get(tenant_id)
        if task is None:
            # A task of its own: a request that gives up (client gone) does not fail the
            # others waiting for the same answer.
            task = asyncio.ensure_future(self._look_up(tenant_id, lookup))
            self._lookups[tenant_id] = task
            task.add_done_callback(lambda done: self._finished(tenant_id, done))
        return await asyncio.shield(task)

    async def _look_up(self, tenant_id: str, lookup: Callable[[str], Awaitable[bool]]) -> bool:
        enabled = await lookup(tenant_id)
        if len(self._entries) >= self._max_entries:
            self._entries.clear()  # bounded memory; refilling costs one lookup each
        self._entries[tenant_id] = (enabled, time.monotonic() + self._ttl_s)
        return enabled

    def _finished(self, tenant_id: str, task: asyncio.Future[bool]) -> None:
        self._lookups.pop(tenant_id, None)
        if not task.cancelled():
            task.exception()  # seen by its waiters; marked retrieved should none be left
