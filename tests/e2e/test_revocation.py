"""Revoking a tenant: `tenants disable` stops its tokens at a running gateway within a second."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from app import cli
from tests.e2e.conftest import StackFactory

REVOKED_WITHIN_S = 1.0


async def test_tenants_disable_stops_its_tokens_at_a_running_gateway_within_a_second(
    make_stack: StackFactory,
    auth_token: str,
    tenant_id: str,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack = make_stack(workers=0)  # the gateway's own settings: the default tenant cache
    headers = {"Authorization": f"Bearer {auth_token}"}
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=5) as client:
        # The gateway has just looked the tenant up: its memory of "enabled" is fresh.
        assert (await client.get("/v1/subscriptions", headers=headers)).status_code == 200

        monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)
        # The command runs its own event loop, as it does from a shell.
        exit_code = await asyncio.to_thread(cli.main, ["tenants", "disable", tenant_id])
        assert exit_code == cli.EXIT_OK
        disabled_at = time.monotonic()

        while True:
            response = await client.get("/v1/subscriptions", headers=headers)
            waited = time.monotonic() - disabled_at
            if response.status_code != 200:
                break
            assert waited < REVOKED_WITHIN_S, "a disabled tenant's token still works"
            await asyncio.sleep(0.05)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert waited < REVOKED_WITHIN_S
