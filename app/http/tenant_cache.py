"""A short-lived, per-process memory of which tenants are enabled.

Every authenticated request needs to know its tenant is enabled; asking SQL each time costs
three round trips on the hot path. A disabled tenant is refused within `ttl_s` on every
process (GATEWAY_TENANT_CACHE_S; 0 asks SQL every time).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable


class TenantCache:
    def __init__(self, ttl_s: float, *, max_entries: int = 10_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: dict[str, tuple[bool, float]] = {}

    async def is_enabled(self, tenant_id: str, lookup: Callable[[str], Awaitable[bool]]) -> bool:
        now = time.monotonic()
        cached = self._entries.get(tenant_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        enabled = await lookup(tenant_id)
        if self._ttl_s > 0:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()  # bounded memory; refilling costs one lookup each
            self._entries[tenant_id] = (enabled, now + self._ttl_s)
        return enabled
