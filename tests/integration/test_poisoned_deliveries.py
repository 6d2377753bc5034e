"""A delivery whose request cannot be built or sent is a failed attempt, never a stuck job.

Subscriptions stored before the API refused such headers (or written past it) must not leave
their deliveries pending with no attempt, claimed again and again, nor hold back the other
deliveries claimed in the same batch.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.delivery.attempts import AttemptRunner
from app.delivery.fanout import write_event
from app.security.secret_box import SecretBox, new_webhook_secret
from app.settings import Settings
from app.store.subscriptions import insert_subscription
from app.store.tables import attempts, deliveries, unfinished_deliveries
from contracts.api import SubscriptionCreate
from contracts.canonical import EventSource, PingData
from tests.e2e.stack import Receiver
from workers.queue import QUEUE_NAME

# Each breaks the request in a different place: aiohttp refuses the header while writing it,
# or the signing secret cannot be opened before anything is written.
POISONED_HEADERS = {"X-Bad": "a\u0001b"}
INJECTED_LINE = {"X-Bad": "a\r\nX-Injected: yes"}
UNREADABLE_SECRET = "fernet:not-a-token-this-worker-can-open"


async def _delivery_to(
    engine: AsyncEngine,
    tenant_id: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    sealed_secret: str | None = None,
) -> str:
    """Stored through the store, as a row written before today's API checks would be."""
    body = SubscriptionCreate(url=url, event_types=["ping"], headers=headers or {})
    async with engine.begin() as conn:
        created = await insert_subscription(
            conn,
            tenant_id=tenant_id,
            body=body,
            sealed_secret=sealed_secret or SecretBox(()).seal(new_webhook_secret()),
            actor="test",
        )
        published = await write_event(
            conn,
            tenant_id=tenant_id,
            event_type="ping",
            data=PingData(message="hi"),
            source=EventSource(source_id=None, provider=None, method="api"),
            only_subscription_ids=[created.id],
        )
    [delivery_id] = published.delivery_ids
    return delivery_id


async def test_a_request_that_cannot_be_built_is_a_failed_attempt_on_the_schedule(
    runner: AttemptRunner,
    engine: AsyncEngine,
    tenant_id: str,
    receiver: Receiver,
    settings: Settings,
) -> None:
    healthy = await _delivery_to(engine, tenant_id, receiver.url("/healthy"))
    poisoned = [
        await _delivery_to(engine, tenant_id, receiver.url("/bad"), headers=POISONED_HEADERS),
        await _delivery_to(engine, tenant_id, receiver.url("/bad"), headers=INJECTED_LINE),
        await _delivery_to(
            engine, tenant_id, receiver.url("/bad"), sealed_secret=UNREADABLE_SECRET
        ),
    ]
    before = datetime.now(UTC)

    # One batch: the poisoned attempts are claimed beside the healthy one.
    assert await runner.run([(d, 1) for d in [*poisoned, healthy]]) == 4

    assert receiver.at("/bad") == []
    assert len(receiver.at("/healthy")) == 1
    async with engine.connect() as conn:
        rows = {
            r.id: r
            for r in await conn.execute(
                sa.select(deliveries).where(deliveries.c.id.in_([*poisoned, healthy]))
            )
        }
        errors = {
            r.delivery_id: r
            for r in await conn.execute(
                sa.select(attempts).where(attempts.c.delivery_id.in_([*poisoned, healthy]))
            )
        }
        unfinished = {
            r.delivery_id: r
            for r in await conn.execute(
                sa.select(unfinished_deliveries).where(
                    unfinished_deliveries.c.delivery_id.in_(poisoned)
                )
            )
        }
    assert rows[healthy].status == "succeeded"
    assert errors[healthy].error is None
    first_delay = settings.retry_schedule[0]
    for delivery_id in poisoned:
        row = rows[delivery_id]
        assert (row.status, row.attempt_count) == ("pending", 1)
        assert row.last_status_code is None
        assert row.lease_until is None  # released: not re-run until the retry is due
        # The schedule's first delay, with its +/-20 % jitter.
        due_in = (row.next_attempt_at.replace(tzinfo=UTC) - before).total_seconds()
        assert first_delay * 0.8 - 1 < due_in < first_delay * 1.2 + 5, due_in
        assert unfinished[delivery_id].next_attempt_at == row.next_attempt_at
        attempt = errors[delivery_id]
        assert attempt.attempt == 1
        assert attempt.status_code is None
        assert attempt.error.startswith("request_error: ")
    # Header values can be credentials: the recorded error never repeats them.
    assert not any("X-Injected" in (a.error or "") for a in errors.values())
    # Attempt 2 of each is queued for when it is due.
    assert await runner.queue.zcard(QUEUE_NAME) == len(poisoned)


async def test_a_request_that_cannot_be_built_runs_out_its_schedule_and_fails(
    runner: AttemptRunner, engine: AsyncEngine, tenant_id: str, receiver: Receiver
) -> None:
    delivery = await _delivery_to(engine, tenant_id, receiver.url("/bad"), headers=INJECTED_LINE)
    last = len(runner.settings.retry_schedule) + 1
    async with engine.begin() as conn:  # the earlier attempts were made and failed
        await conn.execute(
            deliveries.update().where(deliveries.c.id == delivery).values(attempt_count=last - 1)
        )
    assert await runner.run([(delivery, last)]) == 1
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery))).one()
    assert (row.status, row.attempt_count, row.next_attempt_at) == ("failed", last, None)
    assert receiver.at("/bad") == []
