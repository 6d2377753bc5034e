"""Per-subscription in-flight cap and rate limit, shared by every worker through Redis.

One Lua script does both checks atomically in one round trip per attempt, on Redis's own
clock (workers' clocks may differ). In-flight slots are leases: a worker that dies
holding one loses it when the lease runs out, so a crash never shrinks a subscriber's cap.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from redis.asyncio import Redis

_ACQUIRE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local lease_ms = tonumber(ARGV[1])
local max_in_flight = tonumber(ARGV[2])
local rate = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= max_in_flight then
  return {1, 0}
end
if rate > 0 then
  -- GCRA: allow a burst of one second's worth, then one every 1000/rate ms.
  local interval = 1000 / rate
  local tat = tonumber(redis.call('GET', KEYS[2]) or now_ms)
  if tat < now_ms then tat = now_ms end
  local allow_at = tat - (1000 - interval)
  if allow_at > now_ms then
    return {2, math.ceil(allow_at - now_ms)}
  end
  redis.call('SET', KEYS[2], tostring(tat + interval), 'PX', 2000 + math.ceil(interval))
end
redis.call('ZADD', KEYS[1], now_ms + lease_ms, ARGV[4])
redis.call('PEXPIRE', KEYS[1], lease_ms + 1000)
return {0, 0}
"""


_IN_FLIGHT_RETRY_MS = (1000, 3000)


@dataclass(frozen=True)
class Admission:
    admitted: bool
    limit: str | None  # "max_in_flight" or "rate_limit" when not admitted
    retry_in_ms: int


class SubscriptionLimiter:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._acquire = redis.register_script(_ACQUIRE)

    @staticmethod
    def _keys(subscription_id: str) -> list[str]:
        return [f"pwbi:inflight:{subscription_id}", f"pwbi:rate:{subscription_id}"]

    async def acquire(
        self,
        subscription_id: str,
        token: str,
        *,
        max_in_flight: int,
        rate_limit_per_s: int | None,
        lease_s: float,
    ) -> Admission:
        code, wait_ms = await self._acquire(
            keys=self._keys(subscription_id),
            args=[int(lease_s * 1000), max_in_flight, rate_limit_per_s or 0, token],
        )
        if int(code) == 0:
            return Admission(admitted=True, limit=None, retry_in_ms=0)
        if int(code) == 2:
            # The rate limit knows exactly when the next slot opens.
            return Admission(admitted=False, limit="rate_limit", retry_in_ms=int(wait_ms))
        # Nobody knows when an in-flight attempt ends (a hanging endpoint holds its slots
        # until the timeout). Waiting a jittered 1-3 s keeps the deliveries queued behind a
        # full subscription from polling so often that they crowd out everyone else's.
        wait = random.randint(*_IN_FLIGHT_RETRY_MS)  # noqa: S311 - jitter, not security
        return Admission(admitted=False, limit="max_in_flight", retry_in_ms=wait)

    async def release(self, subscription_id: str, token: str) -> None:
        await self._redis.zrem(self._keys(subscription_id)[0], token)
