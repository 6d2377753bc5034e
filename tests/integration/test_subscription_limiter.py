"""The per-subscription limiter through Redis: caps, rates, leases, and workers' shares."""

from __future__ import annotations

import asyncio
import random
import time

from arq.connections import ArqRedis

from app.delivery.admission import SlotWaiter
from app.delivery.isolation import Ask, SubscriptionLimiter


async def test_attempts_admitted_together_respect_each_subscriptions_cap(
    queue: ArqRedis,
) -> None:
    limiter = SubscriptionLimiter(queue)
    # Interleaved: the call groups attempts by subscription, answers go back in asking order.
    asks = [
        ("sub_a", "a0", 2),
        ("sub_b", "b0", 1),
        ("sub_a", "a1", 2),
        ("sub_b", "b1", 1),
        ("sub_a", "a2", 2),
        ("sub_a", "a3", 2),
    ]
    admissions = await asyncio.gather(
        *(
            limiter.acquire(sub, token, max_in_flight=cap, rate_limit_per_s=None, lease_s=30)
            for sub, token, cap in asks
        )
    )
    admitted = [token for (_, token, _), a in zip(asks, admissions, strict=True) if a.admitted]
    assert sorted(admitted) == ["a0", "a1", "b0"]
    refused = [a for a in admissions if not a.admitted]
    assert {a.limit for a in refused} == {"max_in_flight"}
    assert all(1000 <= a.retry_in_ms <= 3000 for a in refused)

    # Released slots are free again, for this subscription only.
    await asyncio.gather(limiter.release("sub_a", "a0"), limiter.release("sub_b", "b0"))
    again = await limiter.acquire("sub_a", "a9", max_in_flight=2, rate_limit_per_s=None, lease_s=30)
    assert again.admitted
    full = await limiter.acquire("sub_a", "a10", max_in_flight=2, rate_limit_per_s=None, lease_s=30)
    assert not full.admitted


async def test_a_rate_limit_in_a_batch_says_when_the_next_slot_opens(queue: ArqRedis) -> None:
    limiter = SubscriptionLimiter(queue)
    admissions = await asyncio.gather(
        *(
            limiter.acquire("sub_r", f"r{i}", max_in_flight=100, rate_limit_per_s=2, lease_s=30)
            for i in range(4)
        )
    )
    # A burst of one second's worth (2), then one every 500 ms.
    assert [a.admitted for a in admissions] == [True, True, False, False]
    assert {a.limit for a in admissions[2:]} == {"rate_limit"}
    assert all(0 < a.retry_in_ms <= 500 for a in admissions[2:])


async def test_a_slot_held_by_a_dead_worker_frees_itself_when_its_lease_ends(
    queue: ArqRedis,
) -> None:
    limiter = SubscriptionLimiter(queue)
    held = await limiter.acquire("sub_d", "t1", max_in_flight=1, rate_limit_per_s=None, lease_s=0.2)
    assert held.admitted
    blocked = await limiter.acquire(
        "sub_d", "t2", max_in_flight=1, rate_limit_per_s=None, lease_s=30
    )
    assert not blocked.admitted
    await asyncio.sleep(0.3)  # never released: the lease runs out instead
    later = await limiter.acquire("sub_d", "t3", max_in_flight=1, rate_limit_per_s=None, lease_s=30)
    assert later.admitted


async def test_a_full_subscription_says_how_long_its_oldest_attempt_has_run_and_who_waits(
    queue: ArqRedis,
) -> None:
    limiter = SubscriptionLimiter(queue)
    held = await limiter.acquire(
        "sub_s", "slow", max_in_flight=1, rate_limit_per_s=None, lease_s=30
    )
    assert held.admitted
    await asyncio.sleep(0.25)
    refused = [
        await limiter.acquire("sub_s", f"w{i}", max_in_flight=1, rate_limit_per_s=None, lease_s=30)
        for i in range(3)
    ]
    assert [a.waiting for a in refused] == [1, 2, 3]
    assert all((a.oldest_in_flight_ms or 0) >= 250 for a in refused)
    assert all((a.youngest_in_flight_ms or 0) >= 250 for a in refused)  # the only one
    # Refused again, the same attempt is not counted twice; admitted, it waits no more.
    again = await limiter.acquire("sub_s", "w0", max_in_flight=1, rate_limit_per_s=None, lease_s=30)
    assert again.waiting == 3
    await limiter.release("sub_s", "slow")
    admitted = await limiter.acquire(
        "sub_s", "w0", max_in_flight=1, rate_limit_per_s=None, lease_s=30
    )
    assert admitted.admitted
    after = await limiter.acquire("sub_s", "w1", max_in_flight=1, rate_limit_per_s=None, lease_s=30)
    assert after.waiting == 2


async def test_while_another_worker_waits_a_worker_gets_no_more_than_its_share(
    queue: ArqRedis,
) -> None:
    first, second = SubscriptionLimiter(queue, "first"), SubscriptionLimiter(queue, "second")

    def ask(candidates: list[str], releases: tuple[str, ...] = ()) -> Ask:
        return Ask("sub_f", 4, None, 30_000, releases=releases, candidates=candidates)

    # Alone, a worker may use the whole cap.
    [alone] = await first.ask([ask(["a0", "a1", "a2", "a3", "a4"])])
    assert (alone.admitted, alone.limit) == (4, "max_in_flight")
    [refused] = await second.ask([ask(["b0"])])
    assert refused.admitted == 0
    # The first frees two slots and asks for them again: not while the second wants some,
    # since it still holds its share (2 of 4).
    [again] = await first.ask([ask(["a4", "a5"], releases=("a0", "a1"))])
    assert again.admitted == 0
    [turn] = await second.ask([ask(["b0", "b1", "b2"])])
    assert (turn.admitted, turn.limit) == (2, "max_in_flight")
    # The second is done and asks for nothing: the first may fill the cap again.
    await second.ask([ask([], releases=("b0", "b1"))])
    [whole] = await first.ask([ask(["a4", "a5", "a6"])])
    assert whole.admitted == 2


async def test_slots_turning_over_are_shared_by_the_workers_that_wait_for_them(
    queue: ArqRedis,
) -> None:
    """A worker asks again as soon as one of its attempts ends; the other worker's attempts
    must still get slots long before the first one's queue is empty."""
    waiters = [SlotWaiter(SubscriptionLimiter(queue, f"w{i}"), random.Random(i)) for i in (0, 1)]
    admitted_at: dict[int, list[float]] = {0: [], 1: []}
    running = peak = 0
    started = time.monotonic()

    async def attempt(worker: int, n: int) -> None:
        nonlocal running, peak
        admission = await waiters[worker].admit(
            "sub_t",
            f"{worker}-{n}",
            max_in_flight=4,
            rate_limit_per_s=None,
            timeout_s=5,
            lease_s=20,
        )
        assert admission.admitted
        admitted_at[worker].append(time.monotonic() - started)
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        waiters[worker].release("sub_t", f"{worker}-{n}")

    first = [asyncio.create_task(attempt(0, n)) for n in range(20)]
    await asyncio.sleep(0.01)
    await asyncio.gather(*first, *(attempt(1, n) for n in range(20)))
    assert peak <= 4
    # Alone, the first worker would take 20 x 50 ms / 4 slots = 250 ms before the second
    # got a slot; sharing, the second's first attempt starts within a few recheck periods.
    assert min(admitted_at[1]) < 0.15
    assert max(admitted_at[1]) > min(admitted_at[1])  # and it keeps getting slots
    await asyncio.gather(*(w.drain() for w in waiters))
    assert await queue.zcard("pwbi:inflight:sub_t") == 0
