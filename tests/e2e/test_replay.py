"""Recovery end to end: a receiver that was down, then partners retry, replay and recover."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import StackFactory
from tests.e2e.stack import Receiver
from tests.e2e.test_delivery import ORDER, api, eventually, publish, statuses, subscribe


class Switch:
    """A receiver endpoint that fails until it is switched on."""

    def __init__(self) -> None:
        self.up = False

    def __call__(self, _: web.Request, __: int) -> web.Response:
        return web.Response(status=200 if self.up else 503)


async def test_a_failed_delivery_keeps_every_attempt_and_retry_then_succeeds(
    make_stack: StackFactory, receiver: Receiver, auth_token: str, engine: AsyncEngine
) -> None:
    stack = make_stack()
    switch = Switch()
    receiver.behaviours["/down"] = switch
    await subscribe(stack, auth_token, receiver, "/down", "order.*")
    await publish(stack, auth_token)

    async def failed() -> bool:
        return set((await statuses(engine)).values()) == {"failed"}

    await eventually(failed)
    [delivery_id] = (await statuses(engine)).keys()
    detail = (await api(stack, "GET", f"/v1/deliveries/{delivery_id}", auth_token)).json()
    assert detail["status"] == "failed"
    assert [a["attempt"] for a in detail["attempts"]] == [1, 2, 3, 4]
    assert {a["status_code"] for a in detail["attempts"]} == {503}

    switch.up = True
    retried = await api(stack, "POST", f"/v1/deliveries/{delivery_id}/retry", auth_token)
    assert retried.status_code == 202
    assert retried.json()["attempt"] == 5

    async def succeeded() -> bool:
        return set((await statuses(engine)).values()) == {"succeeded"}

    await eventually(succeeded)
    detail = (await api(stack, "GET", f"/v1/deliveries/{delivery_id}", auth_token)).json()
    assert [a["status_code"] for a in detail["attempts"]] == [503, 503, 503, 503, 200]


async def _recover_and_wait(
    stack: Any, token: str, subscription_id: str, timeout: float = 90
) -> dict[str, Any]:
    response = await api(
        stack,
        "POST",
        f"/v1/subscriptions/{subscription_id}/recover",
        token,
        json={"since": "2020-01-01T00:00:00Z"},
    )
    assert response.status_code == 202, response.text
    replay_id = response.json()["replay_id"]
    progress: dict[str, Any] = {}

    async def completed() -> bool:
        nonlocal progress
        progress = (await api(stack, "GET", f"/v1/replays/{replay_id}", token)).json()
        return bool(progress["status"] == "completed")

    await eventually(completed, timeout=timeout)
    return progress


async def test_one_recover_call_redelivers_five_failed_events(
    make_stack: StackFactory, receiver: Receiver, auth_token: str, engine: AsyncEngine
) -> None:
    stack = make_stack()
    switch = Switch()
    receiver.behaviours["/down"] = switch
    sub = await subscribe(stack, auth_token, receiver, "/down", "order.*")
    event_ids = [await publish(stack, auth_token) for _ in range(5)]

    async def all_failed() -> bool:
        found = await statuses(engine)
        return len(found) == 5 and set(found.values()) == {"failed"}

    await eventually(all_failed)
    switch.up = True
    progress = await _recover_and_wait(stack, auth_token, sub["id"])
    assert progress["total"] == 5
    assert progress["enqueued"] == 5
    assert progress["succeeded"] == 5
    assert progress["failed"] == 0
    delivered = {r.headers["webhook-id"] for r in receiver.at("/down") if r.verified}
    assert delivered == set(event_ids)


@pytest.mark.usefixtures("once_per_run")
async def test_a_recover_survives_its_worker_being_killed(
    make_stack: StackFactory, receiver: Receiver, auth_token: str, engine: AsyncEngine
) -> None:
    stack = make_stack()
    switch = Switch()
    receiver.behaviours["/down"] = switch
    # Two per second: the recover walks slowly enough to be killed in the middle.
    sub = await subscribe(stack, auth_token, receiver, "/down", "order.*", rate_limit_per_s=2)
    for _ in range(12):
        await publish(stack, auth_token)

    async def all_failed() -> bool:
        found = await statuses(engine)
        return len(found) == 12 and set(found.values()) == {"failed"}

    await eventually(all_failed, timeout=60)
    switch.up = True
    before = len(receiver.at("/down"))
    response = await api(
        stack,
        "POST",
        f"/v1/subscriptions/{sub['id']}/recover",
        auth_token,
        json={"since": "2020-01-01T00:00:00Z"},
    )
    replay_id = response.json()["replay_id"]

    async def started() -> bool:
        return len(receiver.at("/down")) > before

    await eventually(started)
    stack.kill_worker(0)
    stack.start_worker()

    async def completed() -> bool:
        progress = (await api(stack, "GET", f"/v1/replays/{replay_id}", auth_token)).json()
        return bool(progress["status"] == "completed" and progress["succeeded"] == 12)

    await eventually(completed, timeout=120)


async def test_replaying_an_event_twice_delivers_exactly_twice(
    make_stack: StackFactory, receiver: Receiver, auth_token: str
) -> None:
    stack = make_stack()
    target = await subscribe(stack, auth_token, receiver, "/target", "order.*")
    await subscribe(stack, auth_token, receiver, "/other", "order.*")
    event_id = await publish(stack, auth_token)

    async def first_round() -> bool:
        return len(receiver.at("/target")) == 1 and len(receiver.at("/other")) == 1

    await eventually(first_round)
    for _ in range(2):
        replayed = await api(
            stack,
            "POST",
            f"/v1/events/{event_id}/replay",
            auth_token,
            json={"subscription_ids": [target["id"]]},
        )
        assert replayed.status_code == 202
        assert len(replayed.json()["deliveries"]) == 1

    async def replayed_twice() -> bool:
        return len(receiver.at("/target")) >= 3

    await eventually(replayed_twice)
    await asyncio.sleep(1)
    assert len(receiver.at("/target")) == 3
    assert len(receiver.at("/other")) == 1
    assert {r.headers["webhook-id"] for r in receiver.at("/target")} == {event_id}
    assert ORDER["type"] == "order.created"
