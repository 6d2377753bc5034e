"""A failed attempt says why in the worker's log: delivery, attempt, status or error."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from app.delivery.attempts import AttemptRunner
from app.embedded_redis import free_port
from app.log_config import JsonFormatter
from tests.e2e.stack import Receiver
from tests.integration import test_attempt_runner as attempt_runner_tests

_deliveries_to = attempt_runner_tests._deliveries_to


def _failure_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "delivery attempt failed"]


async def test_a_refused_attempt_logs_its_status_without_secrets_or_body(
    runner: AttemptRunner,
    engine: AsyncEngine,
    tenant_id: str,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def unavailable(_request: web.Request, _nth: int) -> web.Response:
        return web.Response(status=503, text="down for maintenance")

    receiver.behaviours["/down"] = unavailable
    [delivery] = await _deliveries_to(engine, tenant_id, receiver.url("/down"), 1)
    caplog.set_level(logging.INFO, logger="app.delivery.attempts")
    await runner.run([(delivery, 1)])
    [record] = _failure_records(caplog)
    assert record.levelno == logging.WARNING
    assert record.delivery_id == delivery  # type: ignore[attr-defined]
    assert record.attempt == 1  # type: ignore[attr-defined]
    assert record.status_code == 503  # type: ignore[attr-defined]
    line = JsonFormatter().format(record)
    assert "whsec_" not in line
    assert "maintenance" not in line
    assert "ping" not in line  # nothing of the delivered body


async def test_an_unreachable_receiver_logs_the_error(
    runner: AttemptRunner,
    engine: AsyncEngine,
    tenant_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/nobody"
    [delivery] = await _deliveries_to(engine, tenant_id, url, 1)
    caplog.set_level(logging.INFO, logger="app.delivery.attempts")
    await runner.run([(delivery, 1)])
    [record] = _failure_records(caplog)
    assert record.delivery_id == delivery  # type: ignore[attr-defined]
    assert record.status_code is None  # type: ignore[attr-defined]
    assert record.error  # type: ignore[attr-defined]


async def test_a_successful_attempt_logs_no_failure(
    runner: AttemptRunner,
    engine: AsyncEngine,
    tenant_id: str,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    [delivery] = await _deliveries_to(engine, tenant_id, receiver.url("/ok"), 1)
    caplog.set_level(logging.INFO, logger="app.delivery.attempts")
    await runner.run([(delivery, 1)])
    assert not _failure_records(caplog)
