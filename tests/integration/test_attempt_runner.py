"""AttemptRunner in-process: stale jobs do nothing, limits postpone instead of failing."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from app.delivery.admission import PARK_LIMIT_S
from app.delivery.attempts import AttemptRunner
from app.delivery.fanout import write_event
from app.security.secret_box import SecretBox, new_webhook_secret
from app.store.attempt_sql import attempt_statements
from app.store.driver_sql import DriverStatement
from app.store.subscriptions import insert_subscription
from app.store.tables import attempts, deliveries
from app.store.unfinished import sync_unfinished
from contracts.api import SubscriptionCreate
from contracts.canonical import EventSource, PingData
from tests.e2e.stack import Receiver
from workers.queue import QUEUE_NAME


async def _deliveries_to(
    engine: AsyncEngine, tenant_id: str, url: str, count: int, **limits: int
) -> list[str]:
    body = SubscriptionCreate(url=url, event_types=["ping"], **limits)  # type: ignore[arg-type]
    async with engine.begin() as conn:
        await insert_subscription(
            conn,
            tenant_id=tenant_id,
            body=body,
            sealed_secret=SecretBox(()).seal(new_webhook_secret()),
            actor="test",
        )
        ids: list[str] = []
        for _ in range(count):
            published = await write_event(
                conn,
                tenant_id=tenant_id,
                event_type="ping",
                data=PingData(message="hi"),
                source=EventSource(source_id=None, provider=None, method="api"),
            )
            ids += published.delivery_ids
    return ids


async def _delivery(engine: AsyncEngine, delivery_id: str) -> Any:
    async with engine.connect() as conn:
        query = sa.select(deliveries).where(deliveries.c.id == delivery_id)
        return (await conn.execute(query)).one()


async def _status(engine: AsyncEngine, delivery_id: str) -> tuple[str, int]:
    row = await _delivery(engine, delivery_id)
    return row.status, row.attempt_count


async def test_a_duplicate_job_for_the_same_attempt_sends_once(
    runner: AttemptRunner, engine: AsyncEngine, tenant_id: str, receiver: Receiver
) -> None:
    [delivery] = await _deliveries_to(engine, tenant_id, receiver.url("/once"), 1)
    assert await runner.run([(delivery, 1)]) == 1
    assert await runner.run([(delivery, 1)]) == 0
    assert await runner.run([(delivery, 2)]) == 0  # not due: the delivery already succeeded
    assert len(receiver.at("/once")) == 1
    assert await _status(engine, delivery) == ("succeeded", 1)
    async with engine.connect() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(attempts))).scalar()
    assert count == 1


async def test_a_job_for_a_cancelled_delivery_does_nothing(
    runner: AttemptRunner, engine: AsyncEngine, tenant_id: str, receiver: Receiver
) -> None:
    [delivery] = await _deliveries_to(engine, tenant_id, receiver.url("/cancelled"), 1)
    async with engine.begin() as conn:
        await conn.execute(
            deliveries.update().where(deliveries.c.id == delivery).values(status="cancelled")
        )
        await sync_unfinished(conn, [delivery])
    assert await runner.run([(delivery, 1)]) == 0
    assert receiver.at("/cancelled") == []


async def test_a_job_for_an_older_attempt_of_a_pending_delivery_leaves_it_claimable(
    runner: AttemptRunner, engine: AsyncEngine, tenant_id: str, receiver: Receiver
) -> None:
    [delivery] = await _deliveries_to(engine, tenant_id, receiver.url("/retrying"), 1)
    async with engine.begin() as conn:  # attempt 1 failed; attempt 2 is the next one
        await conn.execute(
            deliveries.update().where(deliveries.c.id == delivery).values(attempt_count=1)
        )
    assert await runner.run([(delivery, 1)]) == 0
    assert receiver.at("/retrying") == []
    # The stale job did not hold the delivery back.
    assert (await _delivery(engine, delivery)).lease_until is None
    assert await runner.run([(delivery, 2)]) == 1
    assert await _status(engine, delivery) == ("succeeded", 2)


async def test_rate_limit_paces_attempts_in_the_worker(
    runner: AttemptRunner, engine: AsyncEngine, tenant_id: str, receiver: Receiver
) -> None:
    ids = await _deliveries_to(engine, tenant_id, receiver.url("/paced"), 3, rate_limit_per_s=1)
    assert await runner.run([(d, 1) for d in ids]) == 3
    arrivals = sorted(r.at for r in receiver.at("/paced"))
    assert len(arrivals) == 3
    # One per second: each waited in the worker for its turn instead of failing.
    assert all(later - earlier >= 0.9 for earlier, later in itertools.pairwise(arrivals))
    assert [await _status(engine, d) for d in ids] == [("succeeded", 1)] * 3


async def test_rate_limit_postpones_what_cannot_be_sent_soon_instead_of_failing_it(
    runner: AttemptRunner, engine: AsyncEngine, tenant_id: str, receiver: Receiver
) -> None:
    count = int(PARK_LIMIT_S) + 4
    ids = await _deliveries_to(
        engine, tenant_id, receiver.url("/limited"), count, rate_limit_per_s=1
    )
    sent = await runner.run([(d, 1) for d in ids])
    assert 0 < sent < count
    assert len(receiver.at("/limited")) == sent
    statuses = [await _status(engine, d) for d in ids]
    assert sorted(statuses) == [("pending", 0)] * (count - sent) + [("succeeded", 1)] * sent
    # The postponed attempts are queued again (deferred), not dropped.
    assert await runner.queue.zcard(QUEUE_NAME) == count - sent


async def test_max_in_flight_is_shared_through_redis(
    runner: AttemptRunner, engine: AsyncEngine, tenant_id: str, receiver: Receiver
) -> None:
    ids = await _deliveries_to(engine, tenant_id, receiver.url("/narrow"), 2, max_in_flight=1)
    sub_id = (await _delivery(engine, ids[0])).subscription_id
    # Another worker holds the only slot.
    admission = await runner.limiter.acquire(
        sub_id, "elsewhere", max_in_flight=1, rate_limit_per_s=None, lease_s=30
    )
    assert admission.admitted
    assert await runner.run([(d, 1) for d in ids]) == 0
    assert receiver.at("/narrow") == []
    await runner.limiter.release(sub_id, "elsewhere")
    assert await runner.run([(ids[0], 1)]) == 1


async def test_an_attempt_refused_a_slot_waits_for_the_one_this_worker_frees(
    runner: AttemptRunner, engine: AsyncEngine, tenant_id: str, receiver: Receiver
) -> None:
    async def slow(request: web.Request, nth: int) -> web.Response:
        await asyncio.sleep(0.3)
        return web.Response(status=204)

    receiver.behaviours["/one-at-a-time"] = slow
    ids = await _deliveries_to(
        engine, tenant_id, receiver.url("/one-at-a-time"), 3, max_in_flight=1
    )
    started = time.monotonic()
    assert await runner.run([(d, 1) for d in ids]) == 3
    # Woken by each release, not by a recheck (0.5-1.5 s) or a requeue (1-3 s).
    assert time.monotonic() - started < 0.3 * 3 + 0.45
    arrivals = sorted(r.at for r in receiver.at("/one-at-a-time"))
    assert all(later - earlier >= 0.29 for earlier, later in itertools.pairwise(arrivals))
    assert await runner.queue.zcard(QUEUE_NAME) == 0


@pytest.mark.parametrize(
    ("turning_over", "expected_wait_s"),
    [
        # Nothing freed for over a second: a hanging endpoint; back at the oldest's timeout
        # (10 s after it began, 8.8 s from now).
        (False, 8.8),
        # A slot was taken moments ago: slow but answering; back after the oldest has run
        # as long again (1.2 s).
        (True, 1.2),
    ],
)
async def test_behind_slow_slots_a_delivery_goes_back_to_the_queue_until_they_can_free(
    runner: AttemptRunner,
    engine: AsyncEngine,
    tenant_id: str,
    receiver: Receiver,
    turning_over: bool,
    expected_wait_s: float,
) -> None:
    [delivery] = await _deliveries_to(
        engine, tenant_id, receiver.url("/stuck"), 1, max_in_flight=2, timeout_s=10
    )
    sub_id = (await _delivery(engine, delivery)).subscription_id

    async def held_elsewhere(token: str) -> None:  # another worker's attempt takes a slot
        admission = await runner.limiter.acquire(
            sub_id, token, max_in_flight=2, rate_limit_per_s=None, lease_s=10 + 14
        )
        assert admission.admitted

    await held_elsewhere("oldest")
    if not turning_over:
        await held_elsewhere("second")
    await asyncio.sleep(1.2)
    if turning_over:
        await held_elsewhere("second")
    started = time.monotonic()
    assert await runner.run([(delivery, 1)]) == 0
    assert time.monotonic() - started < 1.0  # not parked in the worker
    row = await _delivery(engine, delivery)
    assert row.lease_until is None
    due_in = (row.next_attempt_at.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()
    # Plus jitter (0.5-2.5 s) and a spread over the queue ahead (one waiter, 1.2 s / 2 slots).
    assert expected_wait_s + 0.5 - 0.3 < due_in < expected_wait_s + 2.5 + 0.6 + 0.3
    assert await runner.queue.zcard(QUEUE_NAME) == 1


async def test_a_binary_response_body_is_recorded_without_nul_characters(
    runner: AttemptRunner, engine: AsyncEngine, tenant_id: str, receiver: Receiver
) -> None:
    """SQL text cannot hold NUL: a receiver answering with binary bytes (a gzip body, say)
    must not make the record fail, which would leave the delivery to be sent again."""

    async def binary(_request: web.Request, _nth: int) -> web.Response:
        return web.Response(status=200, body=b"\x1f\x8b\x08\x00ok\x00\xff")

    receiver.behaviours["/binary"] = binary
    [delivery] = await _deliveries_to(engine, tenant_id, receiver.url("/binary"), 1)
    assert await runner.run([(delivery, 1)]) == 1
    assert await _status(engine, delivery) == ("succeeded", 1)
    async with engine.connect() as conn:
        body = (
            await conn.execute(
                sa.select(attempts.c.response_body).where(attempts.c.delivery_id == delivery)
            )
        ).scalar_one()
    assert "\x00" not in body
    assert "ok" in body


def _explained(statement: DriverStatement) -> DriverStatement:
    return DriverStatement("EXPLAIN " + statement.text, statement.names, statement.fixed)


async def test_the_hot_statements_find_rows_by_primary_key_however_small_the_tables(
    runner: AttemptRunner, engine: AsyncEngine, backend: str, tenant_id: str, receiver: Receiver
) -> None:
    """A connection keeps a statement's plan while the statistics stand: planned on tables
    of a few rows (a new database, a backlog that grew since the last ANALYZE), a sequential
    scan would stay and cost more with every row the tables gain."""
    if backend != "postgresql":
        pytest.skip("plans of PostgreSQL's prepared statements")
    [delivery] = await _deliveries_to(engine, tenant_id, receiver.url("/plans"), 1)
    sql = attempt_statements("postgresql")
    for statement in (sql.lease_and_read, sql.record_with_attempts, sql.postpone_all):
        assert statement is not None
        params: dict[str, Any] = {
            name: [None] for name in statement.names if name[:2] in ("u_", "a_", "t_")
        }
        params.update(
            b_now=datetime.now(UTC),
            b_lease=datetime.now(UTC),
            ids=[delivery],
            keys=[f"{delivery}:0"],
            u_id=[delivery],
            t_id=[delivery],
        )
        rows = await runner.held.fetch(_explained(statement), params)
        plan = "\n".join(row[0] for row in rows)
        assert "pk_deliveries" in plan, plan
        assert "Seq Scan" not in plan, plan
