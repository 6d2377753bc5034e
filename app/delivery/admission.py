"""Waiting for a subscription's slot: wait in the worker, or go back to the queue.

Each worker keeps, per subscription, the attempts waiting for a slot and the slots its
finished attempts freed, and asks the shared limiter (isolation.py) about all of them in
one call: no call per attempt, and none for an attempt that cannot be admitted yet. An
attempt waits in this process for up to PARK_LIMIT_S while the subscription's slots turn
over: the worker asks again whenever one of its own attempts of that subscription ends,
and now and then for slots other workers free; no SQL, no job, no slot held meanwhile.
When the slots are held by slow attempts (a hanging endpoint), the delivery goes back to
the queue until they can be expected to free, so a backlog behind a hanging endpoint is not
polled and holds no worker capacity.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from dataclasses import dataclass, field, replace

from app.delivery.isolation import ADMITTED, Admission, Answer, Ask, SubscriptionLimiter

# How long an attempt may wait in the worker for a slot; claims are leased for longer.
PARK_LIMIT_S = 4.0
# Waiting attempts of a subscription ask again this often (seconds, jittered) for slots
# other workers free: soon when none of this worker's attempts of it is running (nothing
# else would make it ask), rarely when one is (each that ends makes it ask at once).
RECHECK_IDLE_S = (0.02, 0.06)
RECHECK_BUSY_S = (0.2, 0.6)
# A subscription whose oldest attempt in flight has run this long has slow slots: waiting
# for one in the worker would hold capacity for seconds.
SLOW_SLOTS_AFTER_S = 1.0
# Deliveries sent back to the queue behind slow slots come back after the slots can free,
# jittered by this much (seconds), and spread over at most MAX_SPREAD_S for a long queue.
REQUEUE_JITTER_S = (0.5, 2.5)
MAX_SPREAD_S = 600.0
# At most this many limiter calls at a time; what arrives meanwhile goes in the next one.
MAX_CALLS = 2
# Slots to free that Redis refused are offered again after this long (their leases would
# free them anyway).
RETRY_RELEASES_S = 1.0


@dataclass(slots=True)
class _Waiter:
    token: str
    future: asyncio.Future[Admission]
    deadline: float
    timeout_s: float


@dataclass(slots=True)
class _Lane:
    """One subscription's business in this worker."""

    subscription_id: str
    max_in_flight: int
    rate_limit_per_s: int | None
    lease_ms: int
    waiting: deque[_Waiter] = field(default_factory=deque)
    releases: list[str] = field(default_factory=list)
    in_flight: int = 0  # admitted here and not released yet
    asking: bool = False  # a limiter call about this lane is under way
    recheck: asyncio.TimerHandle | None = None


class SlotWaiter:
    """Admits this worker's attempts through the shared limiter, a lane per subscription."""

    def __init__(self, limiter: SubscriptionLimiter, rng: random.Random) -> None:
        self.limiter = limiter
        self._rng = rng
        self._lanes: dict[str, _Lane] = {}
        self._due: dict[str, _Lane] = {}  # lanes with something to ask, in arrival order
        self._calls = 0
        self._scheduled = False

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
        lane = self._lanes.get(subscription_id)
        if lane is None:
            lane = self._lanes[subscription_id] = _Lane(
                subscription_id, max_in_flight, rate_limit_per_s, int(lease_s * 1000)
            )
        else:
            # The latest settings win: a subscription's limits may change while it runs.
            lane.max_in_flight = max_in_flight
            lane.rate_limit_per_s = rate_limit_per_s
            lane.lease_ms = int(lease_s * 1000)
        future: asyncio.Future[Admission] = asyncio.get_running_loop().create_future()
        lane.waiting.append(_Waiter(token, future, time.monotonic() + PARK_LIMIT_S, timeout_s))
        self._mark_due(lane)
        return await future

    def release(self, subscription_id: str, token: str) -> None:
        """Free an admitted attempt's slot (with the lane's next call; nothing to wait for)."""
        lane = self._lanes[subscription_id]
        lane.in_flight -= 1
        lane.releases.append(token)
        self._mark_due(lane)

    async def drain(self) -> None:
        """Hand every pending release to the limiter (at shutdown)."""
        while self._due or self._calls:
            self._pump()
            await asyncio.sleep(0.005)

    def _mark_due(self, lane: _Lane) -> None:
        if lane.recheck is not None:
            lane.recheck.cancel()
            lane.recheck = None
        self._due[lane.subscription_id] = lane
        if not self._scheduled:
            # Whatever else arrives in this turn of the event loop goes in the same call.
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)

    def _pump(self) -> None:
        self._scheduled = False
        if self._calls >= MAX_CALLS:
            return  # the end of a running call pumps again
        lanes = [lane for lane in self._due.values() if not lane.asking]
        if not lanes:
            return
        for lane in lanes:
            del self._due[lane.subscription_id]
            lane.asking = True
        self._calls += 1
        task = asyncio.create_task(self._call(lanes))
        task.add_done_callback(self._called)

    def _called(self, _task: asyncio.Task[None]) -> None:
        self._calls -= 1
        if self._due:
            self._pump()

    async def _call(self, lanes: list[_Lane]) -> None:
        asks = [self._ask(lane) for lane in lanes]
        try:
            answers = await self.limiter.ask(asks)
        except Exception as exc:
            self._failed(lanes, asks, exc)
            return
        slow: list[_Lane] = []
        for lane, ask, answer in zip(lanes, asks, answers, strict=True):
            lane.asking = False
            if self._settle(lane, ask, answer):
                slow.append(lane)
            elif lane.subscription_id in self._due:
                pass  # more arrived meanwhile: asked again soon anyway
            elif lane.releases or (lane.waiting and answer.admitted == len(ask.candidates)):
                self._mark_due(lane)
            elif lane.waiting:
                self._recheck_later(lane, answer)
            else:
                self._forget_if_idle(lane)
        if slow:
            await self._send_back(slow)

    def _failed(self, lanes: list[_Lane], asks: list[Ask], error: Exception) -> None:
        """Redis failed: every waiting attempt hears of it; the releases are tried again."""
        for lane, ask in zip(lanes, asks, strict=True):
            lane.asking = False
            lane.releases[:0] = ask.releases
            waiting, lane.waiting = lane.waiting, deque()
            for waiter in waiting:
                if not waiter.future.done():
                    waiter.future.set_exception(error)
            self._due.pop(lane.subscription_id, None)
            if lane.releases:
                if lane.recheck is None:
                    loop = asyncio.get_running_loop()
                    lane.recheck = loop.call_later(RETRY_RELEASES_S, self._mark_due, lane)
            else:
                self._forget_if_idle(lane)

    def _ask(
        self, lane: _Lane, candidates: list[str] | None = None, *, note_waiting: bool = False
    ) -> Ask:
        """The lane's pending releases, and its first waiting attempts as candidates."""
        releases, lane.releases = lane.releases, []
        if candidates is None:
            # No more candidates than could be admitted at once: the rest wait their turn.
            count = min(len(lane.waiting), max(lane.max_in_flight, 1))
            candidates = [lane.waiting[i].token for i in range(count)]
        return Ask(
            lane.subscription_id,
            lane.max_in_flight,
            lane.rate_limit_per_s,
            lane.lease_ms,
            releases=releases,
            candidates=candidates,
            note_waiting=note_waiting,
        )

    def _settle(self, lane: _Lane, ask: Ask, answer: Answer) -> bool:
        """Admit the first `answer.admitted` candidates; tell the ones that cannot wait.

        Returns whether the subscription's slots are slow (then everyone waiting goes back).
        """
        _grant(lane, _take(lane.waiting, answer.admitted))
        if answer.admitted == len(ask.candidates) or not lane.waiting:
            return False
        if answer.limit == "max_in_flight" and (
            answer.oldest_in_flight_ms >= SLOW_SLOTS_AFTER_S * 1000
        ):
            return True
        # Deadlines grow along the queue (each is its arrival plus PARK_LIMIT_S): the ones
        # that cannot wait any longer are at its head.
        now = time.monotonic()
        refusal: Admission | None = None
        waiting = lane.waiting
        while waiting:
            waiter = waiting[0]
            if not waiter.future.done():
                left = waiter.deadline - now
                if answer.limit == "rate_limit":
                    gives_up = answer.rate_wait_ms / 1000 > left
                else:
                    gives_up = left <= 0
                if not gives_up:
                    break
                refusal = refusal or answer.refusal()
                waiter.future.set_result(refusal)
            waiting.popleft()
        return False

    def _recheck_later(self, lane: _Lane, answer: Answer) -> None:
        if answer.limit == "rate_limit":
            delay = answer.rate_wait_ms / 1000
        else:
            delay = self._rng.uniform(*(RECHECK_BUSY_S if lane.in_flight else RECHECK_IDLE_S))
        lane.recheck = asyncio.get_running_loop().call_later(delay, self._mark_due, lane)

    def _forget_if_idle(self, lane: _Lane) -> None:
        if not lane.in_flight and not lane.waiting and not lane.releases and not lane.asking:
            self._lanes.pop(lane.subscription_id, None)

    async def _send_back(self, lanes: list[_Lane]) -> None:
        """Behind slow slots: everyone waiting goes back to the queue, spread over the time
        the subscription needs to work through them (the limiter counts them all)."""
        asks: list[Ask] = []
        waiting: list[list[_Waiter]] = []
        for lane in lanes:
            lane.asking = True
            waiting.append([w for w in lane.waiting if not w.future.done()])
            lane.waiting = deque()  # what arrives meanwhile waits for the next call
            asks.append(self._ask(lane, [w.token for w in waiting[-1]], note_waiting=True))
        try:
            answers = await self.limiter.ask(asks)
        except Exception as exc:
            for lane, those in zip(lanes, waiting, strict=True):
                lane.waiting.extendleft(reversed(those))
            self._failed(lanes, asks, exc)
            return
        for lane, those, answer in zip(lanes, waiting, answers, strict=True):
            lane.asking = False
            _grant(lane, those[: answer.admitted])
            refusal = answer.refusal()
            for waiter in those[answer.admitted :]:
                if not waiter.future.done():
                    wait_ms = self._behind_slow_slots_ms(
                        answer, lane.max_in_flight, waiter.timeout_s
                    )
                    waiter.future.set_result(replace(refusal, retry_in_ms=wait_ms))
            if lane.releases or lane.waiting:
                self._mark_due(lane)
            else:
                self._forget_if_idle(lane)

    def _behind_slow_slots_ms(self, answer: Answer, max_in_flight: int, timeout_s: float) -> int:
        """When to try again behind slots held by slow attempts.

        Not before the oldest of them can be expected to end. If no slot has freed for a
        while (even the youngest attempt is slow), the endpoint hangs: at the oldest's
        timeout. Otherwise slots still turn over, slowly (an endpoint answering in 2 s):
        after the oldest has run as long again. Then spread over the time the subscription
        needs to work through everyone waiting for it, at max_in_flight attempts per
        attempt duration: of a thousand deliveries behind a hanging endpoint, about
        max_in_flight come back each time slots can free, instead of all at once.
        """
        oldest_s = answer.oldest_in_flight_ms / 1000
        youngest_s = answer.youngest_in_flight_ms / 1000
        until_timeout_s = max(timeout_s - oldest_s, 0.0)
        stuck = youngest_s >= SLOW_SLOTS_AFTER_S
        per_attempt_s = min(oldest_s, timeout_s)
        drain_s = answer.waiting * per_attempt_s / max(max_in_flight, 1)
        wait_s = (
            (until_timeout_s if stuck else min(until_timeout_s, oldest_s))
            + self._rng.uniform(*REQUEUE_JITTER_S)
            + self._rng.uniform(0.0, min(drain_s, MAX_SPREAD_S))
        )
        return int(wait_s * 1000)


def _grant(lane: _Lane, admitted: list[_Waiter]) -> None:
    """Tell admitted attempts; a slot won by one cancelled meanwhile (its job ended) is
    given back with the lane's next call."""
    for waiter in admitted:
        if waiter.future.done():
            lane.releases.append(waiter.token)
        else:
            lane.in_flight += 1
            waiter.future.set_result(ADMITTED)


def _take(waiting: deque[_Waiter], count: int) -> list[_Waiter]:
    return [waiting.popleft() for _ in range(min(count, len(waiting)))]
