"""Per-subscription in-flight cap and rate limit, shared by every worker through Redis.

One Lua script does the checks atomically, on Redis's own clock (workers' clocks may
differ), for every subscription a worker asks about at about the same time: it frees the
slots the worker's finished attempts held and admits as many of its waiting attempts as the
subscription allows. In-flight slots are leases: a worker that dies holding one loses it
when the lease runs out, so a crash never shrinks a subscriber's cap.

A worker that frees a slot is the first to ask for it again, so without a rule one worker
would keep a busy subscription's slots and the others would find it full whenever they look.
The rule: while other workers also have attempts waiting for a subscription, a worker is
admitted only up to its fair share of the cap (max_in_flight / workers asking); alone, it
may use all of it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

# A refused attempt counts as waiting for its subscription this long (or until admitted).
_WAITING_MS = 15 * 60 * 1000
# A worker counts as wanting a subscription's slots for this long after it last asked.
_DEMAND_MS = 1000

# KEYS: per subscription (in flight, this worker's in flight, rate, waiting, demand).
# ARGV[1] is the worker's id; then per subscription: lease ms, max in flight, rate per s,
# note waiting (0/1), the tokens to release and the candidates in order, each list as one
# argument with its tokens separated by spaces (a token per argument cost the client an
# encoding step per token, two per attempt). Per subscription it returns (admitted, code,
# wait ms or age of the oldest attempt in flight, attempts waiting, age of the youngest
# attempt in flight): the first `admitted` candidates hold a slot; code 0 says all were, 1
# that the subscription is full (or at this worker's share), 2 that the rate limit stopped
# it for wait ms.
_ASK = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local worker = ARGV[1]
local out = {}
local a = 2
for i = 1, #KEYS / 5 do
  local inflight_key, mine_key, rate_key = KEYS[5 * i - 4], KEYS[5 * i - 3], KEYS[5 * i - 2]
  local waiting_key, demand_key = KEYS[5 * i - 1], KEYS[5 * i]
  local lease_ms = tonumber(ARGV[a])
  local max_in_flight = tonumber(ARGV[a + 1])
  local rate = tonumber(ARGV[a + 2])
  local note_waiting = ARGV[a + 3] == '1'
  for token in string.gmatch(ARGV[a + 4], '%S+') do
    redis.call('ZREM', inflight_key, token)
    redis.call('ZREM', mine_key, token)
  end
  local candidates = {}
  for token in string.gmatch(ARGV[a + 5], '%S+') do
    table.insert(candidates, token)
  end
  local n = #candidates
  a = a + 6
  redis.call('ZREMRANGEBYSCORE', inflight_key, '-inf', now_ms)
  redis.call('ZREMRANGEBYSCORE', mine_key, '-inf', now_ms)
  if n > 0 then
    redis.call('HSET', demand_key, worker, now_ms)
    redis.call('PEXPIRE', demand_key, DEMAND_MS * 2)
  else
    redis.call('HDEL', demand_key, worker)
  end
  local allowed = math.min(n, max_in_flight - redis.call('ZCARD', inflight_key))
  if allowed > 0 then
    local others = 0
    local demand = redis.call('HGETALL', demand_key)
    for j = 1, #demand, 2 do
      if demand[j] ~= worker then
        if tonumber(demand[j + 1]) >= now_ms - DEMAND_MS then
          others = others + 1
        else
          redis.call('HDEL', demand_key, demand[j])
        end
      end
    end
    if others > 0 then
      local share = math.ceil(max_in_flight / (others + 1))
      allowed = math.min(allowed, math.max(share - redis.call('ZCARD', mine_key), 0))
    end
  end
  local admitted, code, wait, waiting, youngest_age = 0, 0, 0, 0, 0
  if allowed < n then code = 1 end
  if rate > 0 and allowed > 0 then
    -- GCRA: allow a burst of one second's worth, then one every 1000/rate ms.
    local interval = 1000 / rate
    local tat = tonumber(redis.call('GET', rate_key) or now_ms)
    if tat < now_ms then tat = now_ms end
    while admitted < allowed do
      local allow_at = tat - (1000 - interval)
      if allow_at > now_ms then
        code, wait = 2, math.ceil(allow_at - now_ms)
        break
      end
      tat = tat + interval
      admitted = admitted + 1
    end
    if admitted > 0 then
      redis.call('SET', rate_key, tostring(tat), 'PX', 2000 + math.ceil(interval))
    end
  else
    admitted = math.max(allowed, 0)
  end
  if admitted > 0 then
    local has_waiting = redis.call('EXISTS', waiting_key) == 1
    for j = 1, admitted do
      redis.call('ZADD', inflight_key, now_ms + lease_ms, candidates[j])
      redis.call('ZADD', mine_key, now_ms + lease_ms, candidates[j])
      if has_waiting then redis.call('ZREM', waiting_key, candidates[j]) end
    end
    redis.call('PEXPIRE', inflight_key, lease_ms + 1000)
    redis.call('PEXPIRE', mine_key, lease_ms + 1000)
  end
  if code == 1 then
    -- Full: say how long the oldest and youngest attempts have been running (a lease began
    -- lease_ms before its score), so the caller can tell slots turning over from slots
    -- held; asked to, count the attempts refused lately, so it can spread their returns.
    local oldest = redis.call('ZRANGE', inflight_key, 0, 0, 'WITHSCORES')
    local youngest = redis.call('ZRANGE', inflight_key, -1, -1, 'WITHSCORES')
    if #oldest > 0 then
      wait = math.max(now_ms - (tonumber(oldest[2]) - lease_ms), 0)
      youngest_age = math.max(now_ms - (tonumber(youngest[2]) - lease_ms), 0)
    end
    if note_waiting then
      for j = admitted + 1, n do
        redis.call('ZADD', waiting_key, now_ms, candidates[j])
      end
      redis.call('ZREMRANGEBYSCORE', waiting_key, '-inf', now_ms - WAITING_MS)
      redis.call('PEXPIRE', waiting_key, WAITING_MS)
      waiting = redis.call('ZCARD', waiting_key)
    end
  end
  table.insert(out, admitted)
  table.insert(out, code)
  table.insert(out, wait)
  table.insert(out, waiting)
  table.insert(out, youngest_age)
end
return out
""".replace("WAITING_MS", str(_WAITING_MS)).replace("DEMAND_MS", str(_DEMAND_MS))

_IN_FLIGHT_RETRY_MS = (1000, 3000)


@dataclass(frozen=True, slots=True)
class Admission:
    admitted: bool
    limit: str | None  # "max_in_flight" or "rate_limit" when not admitted
    retry_in_ms: int
    # With "max_in_flight": how long the subscription's oldest and youngest attempts have
    # been running, and how many of its attempts were refused a slot in the last 15 min.
    oldest_in_flight_ms: int | None = None
    youngest_in_flight_ms: int | None = None
    waiting: int = 0


ADMITTED = Admission(admitted=True, limit=None, retry_in_ms=0)


@dataclass(frozen=True, slots=True)
class Ask:
    """One subscription in a limiter call: slots to free, attempts (tokens) wanting one.

    A token names one attempt (`{delivery id}:{attempt}`) and has no whitespace: the script
    receives each list as one space-separated argument.
    """

    subscription_id: str
    max_in_flight: int
    rate_limit_per_s: int | None
    lease_ms: int
    releases: Sequence[str]
    candidates: Sequence[str]
    note_waiting: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """How many of an Ask's candidates (the first ones) now hold a slot; why not the rest."""

    admitted: int
    # The rest: "max_in_flight" (full, or at this worker's share) or "rate_limit".
    limit: str | None
    rate_wait_ms: int
    oldest_in_flight_ms: int
    youngest_in_flight_ms: int
    waiting: int

    def refusal(self) -> Admission:
        """What a candidate that was not admitted is told."""
        if self.limit == "rate_limit":
            # The rate limit knows exactly when the next slot opens.
            return Admission(admitted=False, limit="rate_limit", retry_in_ms=self.rate_wait_ms)
        # Nobody knows when an in-flight attempt ends (a hanging endpoint holds its slots
        # until the timeout). Waiting a jittered 1-3 s keeps the deliveries queued behind a
        # full subscription from polling so often that they crowd out everyone else's.
        return Admission(
            admitted=False,
            limit="max_in_flight",
            retry_in_ms=random.randint(*_IN_FLIGHT_RETRY_MS),  # noqa: S311 - jitter
            oldest_in_flight_ms=self.oldest_in_flight_ms,
            youngest_in_flight_ms=self.youngest_in_flight_ms,
            waiting=self.waiting,
        )


_LIMITS = {0: None, 1: "max_in_flight", 2: "rate_limit"}


class SubscriptionLimiter:
    """One per worker process: asks Redis for slots on this worker's behalf."""

    def __init__(self, redis: Redis, worker_id: str | None = None) -> None:
        self._redis = redis
        self.worker_id = worker_id or uuid.uuid4().hex[:16]
        self._ask = redis.register_script(_ASK)

    async def ask(self, asks: Sequence[Ask]) -> list[Answer]:
        """One script call for all of them: free the releases, admit what fits."""
        keys: list[str] = []
        args: list[int | str] = [self.worker_id]
        for ask in asks:
            sub = ask.subscription_id
            keys += [
                f"pwbi:inflight:{sub}",
                f"pwbi:inflight:{sub}:{self.worker_id}",
                f"pwbi:rate:{sub}",
                f"pwbi:waiting:{sub}",
                f"pwbi:demand:{sub}",
            ]
            args += [
                ask.lease_ms,
                ask.max_in_flight,
                ask.rate_limit_per_s or 0,
                int(ask.note_waiting),
                " ".join(ask.releases),
                " ".join(ask.candidates),
            ]
        flat = await self._ask(keys=keys, args=args)
        return [
            Answer(
                admitted=int(flat[i]),
                limit=_LIMITS[int(flat[i + 1])],
                rate_wait_ms=int(flat[i + 2]),
                oldest_in_flight_ms=int(flat[i + 2]),
                youngest_in_flight_ms=int(flat[i + 4]),
                waiting=int(flat[i + 3]),
            )
            for i in range(0, len(flat), 5)
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
        """One attempt's slot, asked on its own; a refusal counts it as waiting."""
        [answer] = await self.ask(
            [
                Ask(
                    subscription_id,
                    max_in_flight,
                    rate_limit_per_s,
                    int(lease_s * 1000),
                    releases=(),
                    candidates=(token,),
                    note_waiting=True,
                )
            ]
        )
        return ADMITTED if answer.admitted else answer.refusal()

    async def release(self, subscription_id: str, token: str) -> None:
        await self.ask([Ask(subscription_id, 1, None, 0, releases=(token,), candidates=())])
