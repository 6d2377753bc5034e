"""Per-subscription in-flight cap and rate limit, shared by every worker through Redis.

One Lua script does both checks atomically, on Redis's own clock (workers' clocks may
differ), for every attempt that asks at about the same time. In-flight slots are leases: a
worker that dies holding one loses it when the lease runs out, so a crash never shrinks a
subscriber's cap.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from redis.asyncio import Redis

from app.delivery.micro_batch import GroupCommit

# A refused attempt counts as waiting for its subscription this long (or until admitted).
_WAITING_MS = 15 * 60 * 1000

# Several admissions in one call: KEYS are (in-flight, rate, waiting) triples and ARGV
# quadruples of (lease ms, max in flight, rate per s, token), one per attempt, in order.
# Returns (code, wait ms or age of the oldest attempt in flight, attempts waiting, age of the
# youngest attempt in flight) each.
_ACQUIRE_MANY = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local out = {}
for i = 1, #KEYS / 3 do
  local inflight_key, rate_key, waiting_key = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local lease_ms = tonumber(ARGV[4 * i - 3])
  local max_in_flight = tonumber(ARGV[4 * i - 2])
  local rate = tonumber(ARGV[4 * i - 1])
  local token = ARGV[4 * i]
  local code, wait, waiting, youngest_age = 0, 0, 0, 0
  redis.call('ZREMRANGEBYSCORE', inflight_key, '-inf', now_ms)
  if redis.call('ZCARD', inflight_key) >= max_in_flight then
    -- Full: say how long the oldest attempt has been running (its lease began lease_ms
    -- before its score), so the caller can tell slots turning over from slots held, and
    -- how many attempts were refused lately, so it can spread their returns.
    local oldest = redis.call('ZRANGE', inflight_key, 0, 0, 'WITHSCORES')
    local youngest = redis.call('ZRANGE', inflight_key, -1, -1, 'WITHSCORES')
    code, wait = 1, math.max(now_ms - (tonumber(oldest[2]) - lease_ms), 0)
    youngest_age = math.max(now_ms - (tonumber(youngest[2]) - lease_ms), 0)
    redis.call('ZADD', waiting_key, now_ms, token)
    redis.call('ZREMRANGEBYSCORE', waiting_key, '-inf', now_ms - WAITING_MS)
    redis.call('PEXPIRE', waiting_key, WAITING_MS)
    waiting = redis.call('ZCARD', waiting_key)
  elseif rate > 0 then
    -- GCRA: allow a burst of one second's worth, then one every 1000/rate ms.
    local interval = 1000 / rate
    local tat = tonumber(redis.call('GET', rate_key) or now_ms)
    if tat < now_ms then tat = now_ms end
    local allow_at = tat - (1000 - interval)
    if allow_at > now_ms then
      code, wait = 2, math.ceil(allow_at - now_ms)
    else
      redis.call('SET', rate_key, tostring(tat + interval), 'PX', 2000 + math.ceil(interval))
    end
  end
  if code == 0 then
    redis.call('ZADD', inflight_key, now_ms + lease_ms, token)
    redis.call('PEXPIRE', inflight_key, lease_ms + 1000)
    redis.call('ZREM', waiting_key, token)
  end
  out[4 * i - 3] = code
  out[4 * i - 2] = wait
  out[4 * i - 1] = waiting
  out[4 * i] = youngest_age
end
return out
""".replace("WAITING_MS", str(_WAITING_MS))

# KEYS are in-flight sets, ARGV the tokens to remove from them, pairwise.
_RELEASE_MANY = """
for i = 1, #KEYS do
  redis.call('ZREM', KEYS[i], ARGV[i])
end
return #KEYS
"""


_IN_FLIGHT_RETRY_MS = (1000, 3000)
_BATCH_MAX = 256


@dataclass(frozen=True)
class Admission:
    admitted: bool
    limit: str | None  # "max_in_flight" or "rate_limit" when not admitted
    retry_in_ms: int
    # With "max_in_flight": how long the subscription's oldest and youngest attempts have
    # been running, and how many of its attempts were refused a slot in the last 15 min.
    oldest_in_flight_ms: int | None = None
    youngest_in_flight_ms: int | None = None
    waiting: int = 0


@dataclass(frozen=True)
class _Request:
    subscription_id: str
    token: str
    max_in_flight: int
    rate_limit_per_s: int | None
    lease_s: float


class SubscriptionLimiter:
    """Attempts running at about the same time share one script call to be admitted and one
    to be released: two Redis round trips per attempt were a large part of a worker's CPU."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._acquire_many = redis.register_script(_ACQUIRE_MANY)
        self._release_many = redis.register_script(_RELEASE_MANY)
        self._acquires: GroupCommit[_Request, Admission] = GroupCommit(
            self._acquire_batch, max_size=_BATCH_MAX
        )
        self._releases: GroupCommit[tuple[str, str], None] = GroupCommit(
            self._release_batch, max_size=_BATCH_MAX
        )

    @staticmethod
    def _keys(subscription_id: str) -> list[str]:
        return [
            f"pwbi:inflight:{subscription_id}",
            f"pwbi:rate:{subscription_id}",
            f"pwbi:waiting:{subscription_id}",
        ]

    async def acquire(
        self,
        subscription_id: str,
        token: str,
        *,
        max_in_flight: int,
        rate_limit_per_s: int | None,
        lease_s: float,
    ) -> Admission:
        return await self._acquires.submit(
            _Request(subscription_id, token, max_in_flight, rate_limit_per_s, lease_s)
        )

    async def release(self, subscription_id: str, token: str) -> None:
        await self._releases.submit((subscription_id, token))

    async def _acquire_batch(self, requests: list[_Request]) -> list[Admission]:
        keys: list[str] = []
        args: list[int | str] = []
        for r in requests:
            keys.extend(self._keys(r.subscription_id))
            args.extend([int(r.lease_s * 1000), r.max_in_flight, r.rate_limit_per_s or 0, r.token])
        flat = await self._acquire_many(keys=keys, args=args)
        return [
            _admission(*(int(v) for v in flat[4 * i : 4 * i + 4])) for i in range(len(requests))
        ]

    async def _release_batch(self, items: list[tuple[str, str]]) -> list[None]:
        await self._release_many(
            keys=[self._keys(subscription_id)[0] for subscription_id, _ in items],
            args=[token for _, token in items],
        )
        return [None] * len(items)


def _admission(code: int, wait_ms: int, waiting: int, youngest_ms: int) -> Admission:
    if code == 0:
        return Admission(admitted=True, limit=None, retry_in_ms=0)
    if code == 2:
        # The rate limit knows exactly when the next slot opens.
        return Admission(admitted=False, limit="rate_limit", retry_in_ms=wait_ms)
    # Nobody knows when an in-flight attempt ends (a hanging endpoint holds its slots
    # until the timeout). Waiting a jittered 1-3 s keeps the deliveries queued behind a
    # full subscription from polling so often that they crowd out everyone else's.
    wait = random.randint(*_IN_FLIGHT_RETRY_MS)  # noqa: S311 - jitter, not security
    return Admission(
        admitted=False,
        limit="max_in_flight",
        retry_in_ms=wait,
        oldest_in_flight_ms=wait_ms,
        youngest_in_flight_ms=youngest_ms,
        waiting=waiting,
    )
