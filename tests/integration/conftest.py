"""Fixtures of the integration tests that drive the attempt runner directly."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.delivery.attempts import AttemptRunner
from app.delivery.http_client import WebhookClient
from app.delivery.isolation import SubscriptionLimiter
from app.security.secret_box import SecretBox
from app.security.ssrf import AddressPolicy, parse_allow_cidrs
from app.settings import Settings
from tests.e2e.stack import Receiver
from workers.queue import queue_connection


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def runner(
    engine: AsyncEngine, settings: Settings, redis_url: str
) -> AsyncIterator[AttemptRunner]:
    queue = queue_connection(redis_url)
    await queue.flushdb()
    client = WebhookClient(AddressPolicy(allow_cidrs=parse_allow_cidrs("127.0.0.1/32")))
    await client.start()
    runner = AttemptRunner(
        engine=engine,
        queue=queue,
        client=client,
        limiter=SubscriptionLimiter(queue),
        secret_box=SecretBox(()),
        settings=settings,
    )
    yield runner
    await runner.close()
    await client.close()
    await queue.aclose()
