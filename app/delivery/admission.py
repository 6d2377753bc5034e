"""Waiting for a subscription's slot: park in the worker, or go back to the queue.

The limiter (isolation.py) answers at once; this decides what a refused attempt does. When
the subscription's slots are turning over (its oldest attempt began moments ago), the
attempt parks in this process for up to PARK_LIMIT_S until a slot frees: woken when this
process frees one of that subscription, rechecking now and then for slots other workers
free; no SQL, no job, no slot held meanwhile. When its slots are held by slow attempts (a
hanging endpoint), the delivery goes back to the queue until they can be expected to free,
so a backlog behind a hanging endpoint is not polled and holds no worker capacity.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import replace

from app.delivery.isolation import Admission, SubscriptionLimiter

# How long an attempt may wait in the worker for a slot; claims are leased for longer.
PARK_LIMIT_S = 4.0
# A parked attempt rechecks its subscription this often (seconds, jittered), for slots that
# other worker processes free; slots freed in this process wake it at once.
RECHECK_S = (0.2, 0.6)
# A subscription whose oldest attempt in flight has run this long has slow slots: waiting
# for one in the worker would hold capacity for seconds.
SLOW_SLOTS_AFTER_S = 1.0
# Deliveries sent back to the queue behind slow slots come back after the slots can free,
# jittered by this much (seconds), and spread over at most MAX_SPREAD_S for a long queue.
REQUEUE_JITTER_S = (0.5, 2.5)
MAX_SPREAD_S = 600.0


class SlotWaiter:
    """Admits attempts through the shared limiter, and wakes parked ones on release."""

    def __init__(self, limiter: SubscriptionLimiter, rng: random.Random) -> None:
        self.limiter = limiter
        self._rng = rng
        # Attempts waiting for a slot of their subscription, oldest first.
        self._parked: dict[str, list[asyncio.Future[None]]] = {}

    async def admit(
        self,
        subscription_id: str,
        token: str,
        *,
        max_in_flight: int,
        rate_limit_per_s: int | None,
        timeout_s: float,
        lease_s: float,
    ) -> Admission:
        """A slot, or (not admitted) how long the delivery should wait in the queue."""
        deadline = time.monotonic() + PARK_LIMIT_S
        while True:
            admission = await self.limiter.acquire(
                subscription_id,
                token,
                max_in_flight=max_in_flight,
                rate_limit_per_s=rate_limit_per_s,
                lease_s=lease_s,
            )
            left = deadline - time.monotonic()
            if admission.admitted:
                return admission
            if admission.limit == "rate_limit":
                if admission.retry_in_ms / 1000 > left:
                    return admission
                await asyncio.sleep(admission.retry_in_ms / 1000)
                continue
            if (admission.oldest_in_flight_ms or 0) >= SLOW_SLOTS_AFTER_S * 1000:
                wait_ms = self._behind_slow_slots_ms(admission, max_in_flight, timeout_s)
                return replace(admission, retry_in_ms=wait_ms)
            if left <= 0:
                return admission
            await self._park(subscription_id, min(left, self._rng.uniform(*RECHECK_S)))

    async def release(self, subscription_id: str, token: str) -> None:
        await self.limiter.release(subscription_id, token)
        self._wake_one(subscription_id)

    def _behind_slow_slots_ms(
        self, admission: Admission, max_in_flight: int, timeout_s: float
    ) -> int:
        """When to try again behind slots held by slow attempts.

        Not before the oldest of them can be expected to end. If no slot has freed for a
        while (even the youngest attempt is slow), the endpoint hangs: at the oldest's
        timeout. Otherwise slots still turn over, slowly (an endpoint answering in 2 s):
        after the oldest has run as long again. Then spread over the time the subscription
        needs to work through everyone waiting for it, at max_in_flight attempts per
        attempt duration: of a thousand deliveries behind a hanging endpoint, about
        max_in_flight come back each time slots can free, instead of all at once.
        """
        oldest_s = (admission.oldest_in_flight_ms or 0) / 1000
        youngest_s = (admission.youngest_in_flight_ms or 0) / 1000
        until_timeout_s = max(timeout_s - oldest_s, 0.0)
        stuck = youngest_s >= SLOW_SLOTS_AFTER_S
        per_attempt_s = min(oldest_s, timeout_s)
        drain_s = admission.waiting * per_attempt_s / max(max_in_flight, 1)
        wait_s = (
            (until_timeout_s if stuck else min(until_timeout_s, oldest_s))
            + self._rng.uniform(*REQUEUE_JITTER_S)
            + self._rng.uniform(0.0, min(drain_s, MAX_SPREAD_S))
        )
        return int(wait_s * 1000)

    async def _park(self, subscription_id: str, timeout_s: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        parked = self._parked.setdefault(subscription_id, [])
        parked.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            pass
        finally:
            if not waiter.done():
                waiter.cancel()
            if waiter in parked:
                parked.remove(waiter)
            if not parked:
                self._parked.pop(subscription_id, None)

    def _wake_one(self, subscription_id: str) -> None:
        parked = self._parked.get(subscription_id)
        while parked:
            waiter = parked.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return
