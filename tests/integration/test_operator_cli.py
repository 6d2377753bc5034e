"""Operator support commands from the shell: list and retry deliveries, recover a subscription."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.clock import utcnow
from app.ids import new_id
from app.store.tables import audit_log, deliveries, replays
from app.store.unfinished import sync_unfinished
from contracts.canonical import EXAMPLES

Client = AsyncTestClient[Litestar]
ROOT = Path(__file__).resolve().parents[2]
HOOK_URL = "https://93.184.216.34/hook"


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def subscribe(client: Client, auth: dict[str, str], *patterns: str) -> str:
    response = await client.post(
        "/v1/subscriptions", json={"url": HOOK_URL, "event_types": list(patterns)}, headers=auth
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def publish(client: Client, auth: dict[str, str], body: dict[str, Any]) -> str:
    response = await client.post("/v1/events", json=body, headers=auth)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def deliveries_oldest_first(engine: AsyncEngine, subscription_id: str) -> list[str]:
    async with engine.connect() as conn:
        query = (
            sa.select(deliveries.c.id)
            .where(deliveries.c.subscription_id == subscription_id)
            .order_by(deliveries.c.id)
        )
        return list((await conn.execute(query)).scalars())


async def set_status(
    engine: AsyncEngine, status: str, *delivery_ids: str, attempt_count: int = 0
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            deliveries.update()
            .where(deliveries.c.id.in_(delivery_ids))
            .values(
                status=status,
                attempt_count=attempt_count,
                next_attempt_at=None,
                last_status_code=500 if status == "failed" else None,
                updated_at=utcnow(),
            )
        )
        await sync_unfinished(conn, delivery_ids)


async def delivery_row(engine: AsyncEngine, delivery_id: str) -> Any:
    async with engine.connect() as conn:
        return (
            await conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id))
        ).one()


def table(stdout: str) -> list[list[str]]:
    return [line.split("\t") for line in stdout.splitlines() if line.strip()]


async def test_deliveries_list_prints_tab_separated_rows_newest_first(
    client: Client,
    auth: dict[str, str],
    engine: AsyncEngine,
    gateway_env: dict[str, str],
    tenant_id: str,
) -> None:
    sub = await subscribe(client, auth, "*")
    await publish(client, auth, EXAMPLES["order.created"])
    await asyncio.sleep(0.005)
    await publish(client, auth, EXAMPLES["sale.completed"])
    older, newer = await deliveries_oldest_first(engine, sub)
    await set_status(engine, "failed", older, attempt_count=8)

    result = cli(gateway_env, "deliveries", "list", "--tenant", tenant_id)
    assert result.returncode == 0, result.stderr
    rows = table(result.stdout)
    assert [r[0] for r in rows] == [newer, older]
    assert all(len(r) == 7 for r in rows), rows
    assert rows[0][1:6] == ["pending", "0", "-", "sale.completed", sub]
    assert rows[1][1:6] == ["failed", "8", "500", "order.created", sub]
    assert rows[0][6].endswith("Z")

    failed = cli(gateway_env, "deliveries", "list", "--tenant", tenant_id, "--status", "failed")
    assert failed.returncode == 0, failed.stderr
    assert [r[0] for r in table(failed.stdout)] == [older]
    limited = cli(gateway_env, "deliveries", "list", "--tenant", tenant_id, "--limit", "1")
    assert [r[0] for r in table(limited.stdout)] == [newer]


async def test_deliveries_list_shows_only_that_tenants_rows(
    client: Client,
    auth: dict[str, str],
    engine: AsyncEngine,
    gateway_env: dict[str, str],
    other_tenant_id: str,
) -> None:
    await subscribe(client, auth, "*")
    await publish(client, auth, EXAMPLES["order.created"])
    result = cli(gateway_env, "deliveries", "list", "--tenant", other_tenant_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


async def test_deliveries_retry_makes_a_failed_delivery_pending(
    client: Client,
    auth: dict[str, str],
    engine: AsyncEngine,
    gateway_env: dict[str, str],
    tenant_id: str,
) -> None:
    sub = await subscribe(client, auth, "order.*")
    await publish(client, auth, EXAMPLES["order.created"])
    [delivery_id] = await deliveries_oldest_first(engine, sub)
    await set_status(engine, "failed", delivery_id, attempt_count=8)

    before = utcnow()
    result = cli(gateway_env, "deliveries", "retry", "--tenant", tenant_id, delivery_id)
    assert result.returncode == 0, result.stderr
    assert delivery_id in result.stdout
    assert "attempt 9" in result.stdout
    row = await delivery_row(engine, delivery_id)
    assert row.status == "pending"
    assert row.next_attempt_at is not None
    assert row.next_attempt_at >= before
    async with engine.connect() as conn:
        audited = (
            await conn.execute(sa.select(audit_log).where(audit_log.c.action == "delivery.retried"))
        ).one()
    assert (audited.tenant_id, audited.target, audited.actor) == (
        tenant_id,
        delivery_id,
        "operator:cli",
    )


async def test_deliveries_retry_of_another_tenants_delivery_fails_and_changes_nothing(
    client: Client,
    auth: dict[str, str],
    engine: AsyncEngine,
    gateway_env: dict[str, str],
    other_tenant_id: str,
) -> None:
    sub = await subscribe(client, auth, "order.*")
    await publish(client, auth, EXAMPLES["order.created"])
    [delivery_id] = await deliveries_oldest_first(engine, sub)
    await set_status(engine, "failed", delivery_id)
    result = cli(gateway_env, "deliveries", "retry", "--tenant", other_tenant_id, delivery_id)
    assert result.returncode == 1
    assert "not found" in result.stderr
    assert (await delivery_row(engine, delivery_id)).status == "failed"


async def test_subscriptions_recover_prints_the_replay_id(
    client: Client,
    auth: dict[str, str],
    engine: AsyncEngine,
    gateway_env: dict[str, str],
    tenant_id: str,
) -> None:
    sub = await subscribe(client, auth, "order.*")
    for _ in range(3):
        await publish(client, auth, EXAMPLES["order.created"])
    first, second, third = await deliveries_oldest_first(engine, sub)
    await set_status(engine, "failed", first, third)
    await set_status(engine, "succeeded", second)

    result = cli(
        gateway_env,
        "subscriptions",
        "recover",
        "--tenant",
        tenant_id,
        sub,
        "--since",
        "2020-01-01T00:00:00Z",
    )
    assert result.returncode == 0, result.stderr
    replay_id = result.stdout.strip()
    assert replay_id.startswith("rpl_")
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(replays).where(replays.c.id == replay_id))).one()
    assert (row.tenant_id, row.subscription_id, row.status) == (tenant_id, sub, "running")
    assert (row.total, row.delivery_status, row.actor) == (2, "failed", "operator:cli")
    assert row.until is None


async def test_subscriptions_recover_with_until_and_status(
    client: Client,
    auth: dict[str, str],
    engine: AsyncEngine,
    gateway_env: dict[str, str],
    tenant_id: str,
) -> None:
    sub = await subscribe(client, auth, "order.*")
    await publish(client, auth, EXAMPLES["order.created"])
    [delivery_id] = await deliveries_oldest_first(engine, sub)
    await set_status(engine, "succeeded", delivery_id)
    result = cli(
        gateway_env,
        "subscriptions",
        "recover",
        "--tenant",
        tenant_id,
        sub,
        "--since",
        "2020-01-01T00:00:00+07:00",
        "--until",
        "2099-01-01T00:00:00Z",
        "--status",
        "succeeded",
    )
    assert result.returncode == 0, result.stderr
    async with engine.connect() as conn:
        row = (
            await conn.execute(sa.select(replays).where(replays.c.id == result.stdout.strip()))
        ).one()
    assert (row.total, row.delivery_status) == (1, "succeeded")
    assert row.until is not None


async def test_an_unknown_tenant_fails_with_a_message(
    engine: AsyncEngine, gateway_env: dict[str, str]
) -> None:
    for args in (
        ("deliveries", "list", "--tenant", "ten_nobody"),
        ("deliveries", "retry", "--tenant", "ten_nobody", new_id("dlv")),
        (
            "subscriptions",
            "recover",
            "--tenant",
            "ten_nobody",
            new_id("sub"),
            "--since",
            "2020-01-01T00:00:00Z",
        ),
    ):
        result = cli(gateway_env, *args)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert "no tenant ten_nobody" in result.stderr
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(replays))).scalar() == 0


async def test_a_naive_or_malformed_since_is_a_usage_error(
    client: Client,
    auth: dict[str, str],
    engine: AsyncEngine,
    gateway_env: dict[str, str],
    tenant_id: str,
) -> None:
    sub = await subscribe(client, auth, "order.*")
    for since in ("2020-01-01T00:00:00", "last tuesday"):
        result = cli(
            gateway_env, "subscriptions", "recover", "--tenant", tenant_id, sub, "--since", since
        )
        assert result.returncode == 2, (since, result.stderr)
        assert "--since" in result.stderr
    naive = cli(
        gateway_env,
        "subscriptions",
        "recover",
        "--tenant",
        tenant_id,
        sub,
        "--since",
        "2020-01-01T00:00:00",
    )
    assert "time zone" in naive.stderr
    bad_status = cli(gateway_env, "deliveries", "list", "--tenant", tenant_id, "--status", "weird")
    assert bad_status.returncode == 2
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(replays))).scalar() == 0


async def test_recover_of_a_disabled_subscription_fails(
    client: Client,
    auth: dict[str, str],
    engine: AsyncEngine,
    gateway_env: dict[str, str],
    tenant_id: str,
) -> None:
    sub = await subscribe(client, auth, "order.*")
    assert (await client.post(f"/v1/subscriptions/{sub}/disable", headers=auth)).status_code == 200
    result = cli(
        gateway_env,
        "subscriptions",
        "recover",
        "--tenant",
        tenant_id,
        sub,
        "--since",
        "2020-01-01T00:00:00Z",
    )
    assert result.returncode == 1
    assert "disabled" in result.stderr
