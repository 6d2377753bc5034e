"""The delivery log and replays through the partner API: list, read, retry, replay, recover.

No worker runs here: deliveries stay `pending` unless a test sets rows directly.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.clock import utcnow
from app.delivery.replay import run_recover
from app.http.resources import resources_of
from app.ids import new_id
from app.store.tables import attempts, audit_log, deliveries, replays
from app.store.unfinished import sync_unfinished
from contracts.canonical import EXAMPLES
from tests.conftest import TokenFactory
from workers.queue import QUEUE_NAME, deserialize_job

Client = AsyncTestClient[Litestar]
ORDER = EXAMPLES["order.created"]
SALE = EXAMPLES["sale.completed"]
HOOK_URL = "https://93.184.216.34/hook"
PROBLEM_JSON = "application/problem+json"


# --- helpers -----------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def subscribe(client: Client, auth: dict[str, str], *patterns: str) -> str:
    response = await client.post(
        "/v1/subscriptions", json={"url": HOOK_URL, "event_types": list(patterns)}, headers=auth
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def publish(client: Client, auth: dict[str, str], body: dict[str, Any] = ORDER) -> str:
    response = await client.post("/v1/events", json=body, headers=auth)
    assert response.status_code == 202, response.text
    # Its first attempts are queued just after the 202 (the app runs on the client's own
    # loop, so poll); tests that count jobs need them in.
    publisher = resources_of(client.app.state).publisher
    for _ in range(200):
        if not publisher.enqueues_pending:
            break
        await asyncio.sleep(0.005)
    return str(response.json()["id"])


async def publish_spaced(client: Client, auth: dict[str, str], n: int) -> list[str]:
    """n events a few milliseconds apart, so their deliveries have distinct creation times."""
    ids = []
    for _ in range(n):
        ids.append(await publish(client, auth))
        await asyncio.sleep(0.006)
    return ids


async def listed(client: Client, auth: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/v1/deliveries", params=params, headers=auth)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def oldest_first(
    client: Client, auth: dict[str, str], subscription_id: str
) -> list[dict[str, Any]]:
    return list(reversed(await listed(client, auth, subscription_id=subscription_id)))


async def set_delivery(engine: AsyncEngine, delivery_id: str, **values: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            deliveries.update().where(deliveries.c.id == delivery_id).values(**values)
        )
        await sync_unfinished(conn, [delivery_id])


async def set_status(engine: AsyncEngine, status: str, *delivery_ids: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            deliveries.update()
            .where(deliveries.c.id.in_(delivery_ids))
            .values(status=status, next_attempt_at=None, updated_at=utcnow())
        )
        await sync_unfinished(conn, delivery_ids)


async def delivery_row(engine: AsyncEngine, delivery_id: str) -> Any:
    async with engine.connect() as conn:
        return (
            await conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id))
        ).one()


async def delivery_snapshot(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(deliveries).order_by(deliveries.c.id))
        return [tuple(row) for row in rows]


async def deliveries_of_event(engine: AsyncEngine, event_id: str) -> list[Any]:
    async with engine.connect() as conn:
        query = (
            sa.select(deliveries).where(deliveries.c.event_id == event_id).order_by(deliveries.c.id)
        )
        return list((await conn.execute(query)).all())


async def audit_rows(engine: AsyncEngine, action: str) -> list[Any]:
    async with engine.connect() as conn:
        query = sa.select(audit_log).where(audit_log.c.action == action).order_by(audit_log.c.id)
        return list((await conn.execute(query)).all())


async def count_rows(engine: AsyncEngine, table: sa.Table) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def error_fields(response: Any) -> list[str]:
    return [str(e["field"]) for e in response.json().get("errors") or []]


# --- listing and reading -----------------------------------------------------------------


async def test_deliveries_are_listed_newest_first_with_cursor_pagination(
    client: Client, auth: dict[str, str]
) -> None:
    await subscribe(client, auth, "order.*")
    await subscribe(client, auth, "*")
    await publish_spaced(client, auth, 3)
    everything = await listed(client, auth)
    assert len(everything) == 6
    ids = [d["id"] for d in everything]
    assert ids == sorted(ids, reverse=True)
    created = [d["created_at"] for d in everything]
    assert created == sorted(created, reverse=True)

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/deliveries", params=params, headers=auth)).json()
        seen += [d["id"] for d in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    assert pages == 2


async def test_every_listed_delivery_names_its_event_type(
    client: Client, auth: dict[str, str]
) -> None:
    sub = await subscribe(client, auth, "*")
    order = await publish(client, auth, ORDER)
    sale = await publish(client, auth, SALE)
    rows = await listed(client, auth)
    assert {(d["event_id"], d["event_type"]) for d in rows} == {
        (order, "order.created"),
        (sale, "sale.completed"),
    }
    for row in rows:
        assert row["id"].startswith("dlv_")
        assert row["subscription_id"] == sub
        assert row["status"] == "pending"
        assert row["attempt_count"] == 0
        assert row["replay_id"] is None
        assert row["created_at"].endswith("Z")


async def test_list_filters_by_status_subscription_and_event(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    orders = await subscribe(client, auth, "order.*")
    everything = await subscribe(client, auth, "*")
    first, second = await publish_spaced(client, auth, 2)
    mine = await oldest_first(client, auth, orders)
    assert [d["event_id"] for d in mine] == [first, second]
    assert {d["subscription_id"] for d in mine} == {orders}
    await set_status(engine, "failed", mine[0]["id"])
    await set_status(engine, "succeeded", mine[1]["id"])

    assert [d["id"] for d in await listed(client, auth, status="failed")] == [mine[0]["id"]]
    assert [d["id"] for d in await listed(client, auth, status="succeeded")] == [mine[1]["id"]]
    assert {d["subscription_id"] for d in await listed(client, auth, status="pending")} == {
        everything
    }
    assert await listed(client, auth, status="cancelled") == []
    by_event = await listed(client, auth, event_id=first)
    assert {d["subscription_id"] for d in by_event} == {orders, everything}
    both = await listed(client, auth, event_id=second, subscription_id=everything)
    assert len(both) == 1
    assert both[0]["status"] == "pending"


async def test_list_filters_by_since_and_until(client: Client, auth: dict[str, str]) -> None:
    sub = await subscribe(client, auth, "order.*")
    await publish_spaced(client, auth, 4)
    rows = await oldest_first(client, auth, sub)
    assert len(rows) == 4
    ids = [d["id"] for d in rows]

    since = await listed(client, auth, since=rows[1]["created_at"])
    assert [d["id"] for d in since] == list(reversed(ids[1:]))
    until = await listed(client, auth, until=rows[2]["created_at"])
    assert [d["id"] for d in until] == list(reversed(ids[:2]))
    window = await listed(client, auth, since=rows[1]["created_at"], until=rows[3]["created_at"])
    assert [d["id"] for d in window] == [ids[2], ids[1]]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await listed(client, auth, since=future) == []
    # An offset other than UTC means the same instant.
    jakarta = timezone(timedelta(hours=7))
    offset = datetime.fromisoformat(rows[2]["created_at"]).astimezone(jakarta)
    assert [d["id"] for d in await listed(client, auth, since=offset.isoformat())] == [
        ids[3],
        ids[2],
    ]


async def test_naive_since_is_422_naming_since(client: Client, auth: dict[str, str]) -> None:
    response = await client.get(
        "/v1/deliveries", params={"since": "2026-01-01T00:00:00"}, headers=auth
    )
    problem = assert_problem(response, 422)
    assert "since" in error_fields(response), problem
    naive_until = await client.get(
        "/v1/deliveries", params={"until": "2026-01-01T00:00:00"}, headers=auth
    )
    assert_problem(naive_until, 422)
    assert "until" in error_fields(naive_until)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "exploded"}, "status"),
        ({"since": "yesterday"}, "since"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
    ],
)
async def test_bad_list_parameters_are_422(
    client: Client, auth: dict[str, str], params: dict[str, Any], field: str
) -> None:
    response = await client.get("/v1/deliveries", params=params, headers=auth)
    assert_problem(response, 422)
    assert field in error_fields(response), response.text


async def test_one_delivery_includes_its_attempts_in_order(
    client: Client, auth: dict[str, str], engine: AsyncEngine, tenant_id: str
) -> None:
    await subscribe(client, auth, "order.*")
    event_id = await publish(client, auth)
    delivery = (await listed(client, auth))[0]
    start = datetime(2026, 3, 1, 10, 0, 0, 250000, tzinfo=UTC)
    recorded = [
        (3, start + timedelta(minutes=5), 15000, None, "TimeoutError: no answer in 15 s", None),
        (1, start, 120, 500, "HTTP 500", "upstream exploded"),
        (2, start + timedelta(seconds=5), 45, 503, "HTTP 503", "x" * 4096),
    ]
    async with engine.begin() as conn:
        for attempt, started, duration, code, error, body in recorded:
            await conn.execute(
                attempts.insert().values(
                    id=new_id("att"),
                    delivery_id=delivery["id"],
                    tenant_id=tenant_id,
                    attempt=attempt,
                    started_at=started,
                    duration_ms=duration,
                    status_code=code,
                    error=error,
                    response_body=body,
                )
            )
    await set_delivery(
        engine,
        delivery["id"],
        status="failed",
        attempt_count=3,
        last_status_code=None,
        last_attempt_at=start + timedelta(minutes=5),
        next_attempt_at=None,
    )

    response = await client.get(f"/v1/deliveries/{delivery['id']}", headers=auth)
    assert response.status_code == 200, response.text
    detail = response.json()
    assert detail["id"] == delivery["id"]
    assert detail["event_id"] == event_id
    assert detail["event_type"] == "order.created"
    assert detail["status"] == "failed"
    assert detail["attempt_count"] == 3
    got = [
        (
            a["attempt"],
            datetime.fromisoformat(a["started_at"]),
            a["duration_ms"],
            a["status_code"],
            a["error"],
            a["response_body"],
        )
        for a in detail["attempts"]
    ]
    assert got == sorted(recorded)
    assert set(detail["attempts"][0]) == {
        "attempt",
        "started_at",
        "duration_ms",
        "status_code",
        "error",
        "response_body",
    }


async def test_a_delivery_without_attempts_has_an_empty_list_and_unknown_id_is_404(
    client: Client, auth: dict[str, str]
) -> None:
    await subscribe(client, auth, "order.*")
    await publish(client, auth)
    delivery = (await listed(client, auth))[0]
    detail = (await client.get(f"/v1/deliveries/{delivery['id']}", headers=auth)).json()
    assert detail["attempts"] == []
    missing = await client.get(f"/v1/deliveries/{new_id('dlv')}", headers=auth)
    assert_problem(missing, 404)


# --- retry -------------------------------------------------------------------------------


async def test_retry_makes_a_failed_delivery_pending_now_with_the_next_attempt_number(
    client: Client,
    auth: dict[str, str],
    engine: AsyncEngine,
    tenant_id: str,
    queue: ArqRedis,
) -> None:
    await subscribe(client, auth, "order.*")
    await publish(client, auth)
    delivery_id = (await listed(client, auth))[0]["id"]
    await set_delivery(
        engine,
        delivery_id,
        status="failed",
        attempt_count=3,
        next_attempt_at=None,
        last_attempt_at=utcnow() - timedelta(hours=1),
        last_status_code=500,
    )
    await queue.flushdb()

    before = utcnow()
    response = await client.post(f"/v1/deliveries/{delivery_id}/retry", headers=auth)
    after = utcnow()
    assert response.status_code == 202, response.text
    assert response.json() == {"id": delivery_id, "attempt": 4, "status": "pending"}

    row = await delivery_row(engine, delivery_id)
    assert row.status == "pending"
    assert row.attempt_count == 3  # the attempt itself is counted when it runs
    assert row.next_attempt_at is not None
    assert before - timedelta(seconds=1) <= row.next_attempt_at <= after + timedelta(seconds=1)
    assert row.lease_until is None
    assert await queue.zcard(QUEUE_NAME) == 1

    audited = await audit_rows(engine, "delivery.retried")
    assert len(audited) == 1
    assert audited[0].target == delivery_id
    assert audited[0].tenant_id == tenant_id
    assert audited[0].actor == tenant_id
    assert audited[0].details == {"attempt": 4}


async def test_retry_works_whatever_the_status(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    await subscribe(client, auth, "order.*")
    await publish(client, auth)
    delivery_id = (await listed(client, auth))[0]["id"]
    for status, count in (("succeeded", 1), ("cancelled", 2), ("pending", 0)):
        await set_delivery(engine, delivery_id, status=status, attempt_count=count)
        response = await client.post(f"/v1/deliveries/{delivery_id}/retry", headers=auth)
        assert response.status_code == 202, (status, response.text)
        assert response.json()["attempt"] == count + 1
        assert (await delivery_row(engine, delivery_id)).status == "pending"


async def test_retry_on_a_disabled_subscription_is_409_and_changes_nothing(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    sub = await subscribe(client, auth, "order.*")
    await publish(client, auth)
    delivery_id = (await listed(client, auth))[0]["id"]
    assert (await client.post(f"/v1/subscriptions/{sub}/disable", headers=auth)).status_code == 200
    before = await delivery_snapshot(engine)
    assert (await delivery_row(engine, delivery_id)).status == "cancelled"

    response = await client.post(f"/v1/deliveries/{delivery_id}/retry", headers=auth)
    problem = assert_problem(response, 409)
    assert "disabled" in problem["detail"]
    assert await delivery_snapshot(engine) == before
    assert await audit_rows(engine, "delivery.retried") == []


async def test_retry_while_an_attempt_holds_the_lease_is_409(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    await subscribe(client, auth, "order.*")
    await publish(client, auth)
    delivery_id = (await listed(client, auth))[0]["id"]
    await set_delivery(engine, delivery_id, lease_until=utcnow() + timedelta(seconds=30))
    response = await client.post(f"/v1/deliveries/{delivery_id}/retry", headers=auth)
    assert_problem(response, 409)
    assert await audit_rows(engine, "delivery.retried") == []


async def test_retry_of_an_unknown_delivery_is_404(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    response = await client.post(f"/v1/deliveries/{new_id('dlv')}/retry", headers=auth)
    assert_problem(response, 404)
    assert await audit_rows(engine, "delivery.retried") == []


# --- replay one event --------------------------------------------------------------------


async def test_replay_without_a_body_delivers_to_every_currently_matching_subscription(
    client: Client, auth: dict[str, str], engine: AsyncEngine, tenant_id: str
) -> None:
    orders = await subscribe(client, auth, "order.*")
    everything = await subscribe(client, auth, "*")
    await subscribe(client, auth, "sale.*")
    paused = await subscribe(client, auth, "order.created")
    event_id = await publish(client, auth)
    original = {d.id for d in await deliveries_of_event(engine, event_id)}
    assert len(original) == 3
    await client.post(f"/v1/subscriptions/{paused}/disable", headers=auth)
    newcomer = await subscribe(client, auth, "order.created")

    response = await client.post(f"/v1/events/{event_id}/replay", headers=auth)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["event_id"] == event_id
    rows = await deliveries_of_event(engine, event_id)
    new = [r for r in rows if r.id not in original]
    assert sorted(body["deliveries"]) == sorted(r.id for r in new)
    assert sorted(r.subscription_id for r in new) == sorted([orders, everything, newcomer])
    for row in new:
        assert row.status == "pending"
        assert row.attempt_count == 0
        assert row.tenant_id == tenant_id
        assert row.next_attempt_at is not None

    audited = await audit_rows(engine, "event.replayed")
    assert len(audited) == 1
    assert audited[0].target == event_id
    assert audited[0].actor == tenant_id
    assert sorted(audited[0].details["subscription_ids"]) == sorted([orders, everything, newcomer])
    assert sorted(audited[0].details["deliveries"]) == sorted(body["deliveries"])


async def test_replay_to_named_subscriptions_creates_exactly_one_delivery_each_time(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    target = await subscribe(client, auth, "order.*")
    other = await subscribe(client, auth, "*")
    event_id = await publish(client, auth)

    first = await client.post(
        f"/v1/events/{event_id}/replay", json={"subscription_ids": [target]}, headers=auth
    )
    assert first.status_code == 202, first.text
    assert len(first.json()["deliveries"]) == 1
    second = await client.post(
        f"/v1/events/{event_id}/replay",
        json={"subscription_ids": [target, target]},
        headers=auth,
    )
    assert second.status_code == 202, second.text
    assert len(second.json()["deliveries"]) == 1

    rows = await deliveries_of_event(engine, event_id)
    per_subscription = {
        sub: sum(1 for r in rows if r.subscription_id == sub) for sub in (target, other)
    }
    assert per_subscription == {target: 3, other: 1}  # the original plus two replays
    replayed = {*first.json()["deliveries"], *second.json()["deliveries"]}
    assert {r.id for r in rows if r.id in replayed} == replayed
    assert len(await audit_rows(engine, "event.replayed")) == 2


async def queued_delivery_ids(queue: ArqRedis) -> set[str]:
    """Every delivery id some job waiting in the queue will attempt."""
    found: set[str] = set()
    for job_id in await queue.zrange(QUEUE_NAME, 0, -1):
        raw = await queue.get(job_key_prefix + job_id.decode())
        if raw is None:
            continue
        for args in deserialize_job(raw)["a"]:
            if isinstance(args, list):
                found.update(str(ref[0]) for ref in args if isinstance(ref, list))
    return found


async def test_replay_queues_jobs_for_its_new_deliveries(
    client: Client, auth: dict[str, str], engine: AsyncEngine, queue: ArqRedis
) -> None:
    await subscribe(client, auth, "order.*")
    event_id = await publish(client, auth)
    response = await client.post(f"/v1/events/{event_id}/replay", headers=auth)
    assert response.status_code == 202, response.text
    [new] = response.json()["deliveries"]
    assert new in await queued_delivery_ids(queue)


async def test_replay_to_several_subscriptions_queues_its_new_deliveries_at_once(
    client: Client, auth: dict[str, str], engine: AsyncEngine, queue: ArqRedis
) -> None:
    await subscribe(client, auth, "order.*")
    await subscribe(client, auth, "*")
    event_id = await publish(client, auth)  # its fan-out job is still waiting: no worker here
    response = await client.post(f"/v1/events/{event_id}/replay", headers=auth)
    assert response.status_code == 202, response.text
    new = set(response.json()["deliveries"])
    assert len(new) == 2
    assert new <= await queued_delivery_ids(queue)


@pytest.mark.parametrize("whose", ["unknown", "other tenant's"])
async def test_replay_to_a_subscription_not_of_this_tenant_is_422_and_creates_nothing(
    client: Client,
    auth: dict[str, str],
    engine: AsyncEngine,
    other_tenant_id: str,
    make_token: TokenFactory,
    whose: str,
) -> None:
    mine = await subscribe(client, auth, "order.*")
    event_id = await publish(client, auth)
    if whose == "unknown":
        foreign = new_id("sub")
    else:
        foreign = await subscribe(client, bearer(make_token(other_tenant_id)), "*")
    before = await delivery_snapshot(engine)

    response = await client.post(
        f"/v1/events/{event_id}/replay", json={"subscription_ids": [mine, foreign]}, headers=auth
    )
    assert_problem(response, 422)
    assert "subscription_ids" in error_fields(response)
    assert await delivery_snapshot(engine) == before
    assert await audit_rows(engine, "event.replayed") == []


async def test_replay_of_an_unknown_event_is_404(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    await subscribe(client, auth, "*")
    response = await client.post(f"/v1/events/{new_id('evt')}/replay", headers=auth)
    assert_problem(response, 404)
    assert await count_rows(engine, deliveries) == 0


async def test_replay_body_with_unknown_fields_is_422(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    await subscribe(client, auth, "*")
    event_id = await publish(client, auth)
    response = await client.post(
        f"/v1/events/{event_id}/replay", json={"subscriptions": []}, headers=auth
    )
    assert_problem(response, 422)
    assert await count_rows(engine, deliveries) == 1


# --- recover a subscription --------------------------------------------------------------


async def test_recover_counts_then_requeues_only_the_failed_deliveries_in_the_window(
    client: Client,
    auth: dict[str, str],
    engine: AsyncEngine,
    tenant_id: str,
    queue: ArqRedis,
) -> None:
    target = await subscribe(client, auth, "order.*")
    bystander = await subscribe(client, auth, "*")
    await publish_spaced(client, auth, 5)
    rows = [d["id"] for d in await oldest_first(client, auth, target)]
    created = [d["created_at"] for d in await oldest_first(client, auth, target)]
    assert len(rows) == 5
    before_window, failed_a, succeeded, failed_b, at_until = rows
    await set_status(engine, "failed", before_window, failed_a, failed_b, at_until)
    await set_status(engine, "succeeded", succeeded)
    others = [d["id"] for d in await listed(client, auth, subscription_id=bystander)]
    await set_status(engine, "failed", *others)

    response = await client.post(
        f"/v1/subscriptions/{target}/recover",
        json={"since": created[1], "until": created[4]},
        headers=auth,
    )
    assert response.status_code == 202, response.text
    assert set(response.json()) == {"replay_id"}
    replay_id = response.json()["replay_id"]
    assert replay_id.startswith("rpl_")

    progress = (await client.get(f"/v1/replays/{replay_id}", headers=auth)).json()
    assert progress["id"] == replay_id
    assert progress["subscription_id"] == target
    assert progress["status"] == "running"
    assert progress["delivery_status"] == "failed"
    assert (progress["total"], progress["enqueued"]) == (2, 0)
    assert (progress["succeeded"], progress["failed"]) == (0, 0)

    audited = await audit_rows(engine, "subscription.recover_started")
    assert len(audited) == 1
    assert audited[0].target == target
    assert audited[0].actor == tenant_id
    assert audited[0].details["replay_id"] == replay_id
    assert audited[0].details["total"] == 2

    untouched_before = {
        d: tuple(await delivery_row(engine, d))
        for d in (before_window, succeeded, at_until, *others)
    }
    await queue.flushdb()
    enqueued = await run_recover(engine, queue, replay_id)
    assert enqueued == 2
    for delivery_id in (failed_a, failed_b):
        row = await delivery_row(engine, delivery_id)
        assert (row.status, row.replay_id) == ("pending", replay_id)
        assert row.next_attempt_at is not None
    for delivery_id, snapshot in untouched_before.items():
        assert tuple(await delivery_row(engine, delivery_id)) == snapshot
    assert await queue.zcard(QUEUE_NAME) == 2

    progress = (await client.get(f"/v1/replays/{replay_id}", headers=auth)).json()
    assert progress["enqueued"] == progress["total"] == 2
    assert progress["status"] == "running"  # walked, but the attempts have not finished
    # A second run of the same job finds nothing more to do.
    assert await run_recover(engine, queue, replay_id) == 0

    await set_status(engine, "succeeded", failed_a, failed_b)
    done = (await client.get(f"/v1/replays/{replay_id}", headers=auth)).json()
    assert done["status"] == "completed"
    assert done["succeeded"] == done["total"] == 2
    assert done["failed"] == 0


async def test_recover_without_until_takes_everything_since(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    target = await subscribe(client, auth, "order.*")
    await publish_spaced(client, auth, 3)
    rows = await oldest_first(client, auth, target)
    await set_status(engine, "failed", *(d["id"] for d in rows))
    response = await client.post(
        f"/v1/subscriptions/{target}/recover", json={"since": rows[1]["created_at"]}, headers=auth
    )
    assert response.status_code == 202, response.text
    replay_id = response.json()["replay_id"]
    progress = (await client.get(f"/v1/replays/{replay_id}", headers=auth)).json()
    assert progress["total"] == 2
    assert progress["until"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "since"),
        ({"until": "2026-01-02T00:00:00Z"}, "since"),
        ({"since": "2026-01-01T00:00:00"}, "since"),
        ({"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
        ({"since": "2026-01-01T00:00:00Z", "status": "weird"}, "status"),
        ({"since": "2026-01-01T00:00:00Z", "colour": "red"}, "colour"),
    ],
)
async def test_invalid_recover_bodies_are_422_naming_the_field_and_start_nothing(
    client: Client,
    auth: dict[str, str],
    engine: AsyncEngine,
    body: dict[str, Any],
    field: str,
) -> None:
    target = await subscribe(client, auth, "order.*")
    response = await client.post(f"/v1/subscriptions/{target}/recover", json=body, headers=auth)
    assert_problem(response, 422)
    assert field in error_fields(response), response.text
    assert await count_rows(engine, replays) == 0
    assert await audit_rows(engine, "subscription.recover_started") == []


async def test_recover_on_a_disabled_subscription_is_409(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    target = await subscribe(client, auth, "order.*")
    await client.post(f"/v1/subscriptions/{target}/disable", headers=auth)
    response = await client.post(
        f"/v1/subscriptions/{target}/recover",
        json={"since": "2020-01-01T00:00:00Z"},
        headers=auth,
    )
    assert_problem(response, 409)
    assert await count_rows(engine, replays) == 0


async def test_recover_of_an_unknown_subscription_is_404(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    response = await client.post(
        f"/v1/subscriptions/{new_id('sub')}/recover",
        json={"since": "2020-01-01T00:00:00Z"},
        headers=auth,
    )
    assert_problem(response, 404)
    assert await count_rows(engine, replays) == 0


async def test_replay_progress_of_an_unknown_replay_is_404(
    client: Client, auth: dict[str, str]
) -> None:
    assert_problem(await client.get(f"/v1/replays/{new_id('rpl')}", headers=auth), 404)


# --- enable with recover_since -----------------------------------------------------------


async def test_enable_with_recover_since_replays_failed_and_cancelled_deliveries(
    client: Client,
    auth: dict[str, str],
    engine: AsyncEngine,
    queue: ArqRedis,
) -> None:
    target = await subscribe(client, auth, "order.*")
    await publish_spaced(client, auth, 3)
    rows = [d["id"] for d in await oldest_first(client, auth, target)]
    disabled = await client.post(f"/v1/subscriptions/{target}/disable", headers=auth)
    assert disabled.status_code == 200
    failed, succeeded, cancelled = rows
    assert (await delivery_row(engine, cancelled)).status == "cancelled"
    await set_status(engine, "failed", failed)
    await set_status(engine, "succeeded", succeeded)

    response = await client.post(
        f"/v1/subscriptions/{target}/enable",
        json={"recover_since": "2020-01-01T00:00:00Z"},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    enabled = response.json()
    assert enabled["status"] == "enabled"
    replay_id = enabled["replay_id"]
    assert replay_id.startswith("rpl_")
    progress = (await client.get(f"/v1/replays/{replay_id}", headers=auth)).json()
    assert progress["subscription_id"] == target
    assert progress["total"] == 2
    assert set(progress["delivery_status"].split(",")) == {"failed", "cancelled"}
    assert len(await audit_rows(engine, "subscription.recover_started")) == 1

    await queue.flushdb()
    assert await run_recover(engine, queue, replay_id) == 2
    assert (await delivery_row(engine, failed)).status == "pending"
    assert (await delivery_row(engine, cancelled)).status == "pending"
    assert (await delivery_row(engine, succeeded)).status == "succeeded"


async def test_enable_without_recover_since_starts_no_replay(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    target = await subscribe(client, auth, "order.*")
    await client.post(f"/v1/subscriptions/{target}/disable", headers=auth)
    response = await client.post(f"/v1/subscriptions/{target}/enable", headers=auth)
    assert response.status_code == 200
    assert response.json()["replay_id"] is None
    assert await count_rows(engine, replays) == 0


async def test_enable_with_recover_since_needs_the_replay_scope(
    client: Client,
    auth: dict[str, str],
    engine: AsyncEngine,
    tenant_id: str,
    make_token: TokenFactory,
) -> None:
    target = await subscribe(client, auth, "order.*")
    await client.post(f"/v1/subscriptions/{target}/disable", headers=auth)
    writer = bearer(make_token(tenant_id, scopes=("subscriptions:write", "subscriptions:read")))
    response = await client.post(
        f"/v1/subscriptions/{target}/enable",
        json={"recover_since": "2020-01-01T00:00:00Z"},
        headers=writer,
    )
    assert_problem(response, 403)
    assert await count_rows(engine, replays) == 0
    current = (await client.get(f"/v1/subscriptions/{target}", headers=auth)).json()
    assert current["status"] == "disabled"


# --- scopes ------------------------------------------------------------------------------


async def test_deliveries_read_can_look_but_not_replay(
    client: Client,
    auth: dict[str, str],
    engine: AsyncEngine,
    tenant_id: str,
    make_token: TokenFactory,
) -> None:
    target = await subscribe(client, auth, "order.*")
    event_id = await publish(client, auth)
    delivery_id = (await listed(client, auth))[0]["id"]
    started = await client.post(
        f"/v1/subscriptions/{target}/recover", json={"since": "2020-01-01T00:00:00Z"}, headers=auth
    )
    replay_id = started.json()["replay_id"]
    before = await delivery_snapshot(engine)
    reader = bearer(make_token(tenant_id, scopes=("deliveries:read",)))

    assert (await client.get("/v1/deliveries", headers=reader)).status_code == 200
    assert (await client.get(f"/v1/deliveries/{delivery_id}", headers=reader)).status_code == 200
    assert (await client.get(f"/v1/replays/{replay_id}", headers=reader)).status_code == 200
    assert_problem(await client.post(f"/v1/deliveries/{delivery_id}/retry", headers=reader), 403)
    assert_problem(await client.post(f"/v1/events/{event_id}/replay", headers=reader), 403)
    recover = await client.post(
        f"/v1/subscriptions/{target}/recover",
        json={"since": "2020-01-01T00:00:00Z"},
        headers=reader,
    )
    assert_problem(recover, 403)
    assert await delivery_snapshot(engine) == before
    assert await count_rows(engine, replays) == 1


async def test_without_deliveries_read_the_log_is_403(
    client: Client, auth: dict[str, str], tenant_id: str, make_token: TokenFactory
) -> None:
    await subscribe(client, auth, "order.*")
    await publish(client, auth)
    delivery_id = (await listed(client, auth))[0]["id"]
    other_scopes = ("events:read", "events:write", "subscriptions:read", "deliveries:replay")
    outsider = bearer(make_token(tenant_id, scopes=other_scopes))
    assert_problem(await client.get("/v1/deliveries", headers=outsider), 403)
    assert_problem(await client.get(f"/v1/deliveries/{delivery_id}", headers=outsider), 403)
    assert_problem(await client.get(f"/v1/replays/{new_id('rpl')}", headers=outsider), 403)
    assert_problem(await client.get("/v1/deliveries"), 401)


# --- tenants -----------------------------------------------------------------------------


async def test_another_tenants_deliveries_events_and_replays_are_404_and_untouched(
    client: Client,
    auth: dict[str, str],
    engine: AsyncEngine,
    other_tenant_id: str,
    make_token: TokenFactory,
) -> None:
    target = await subscribe(client, auth, "order.*")
    event_id = await publish(client, auth)
    delivery_id = (await listed(client, auth))[0]["id"]
    await set_status(engine, "failed", delivery_id)
    started = await client.post(
        f"/v1/subscriptions/{target}/recover", json={"since": "2020-01-01T00:00:00Z"}, headers=auth
    )
    replay_id = started.json()["replay_id"]
    deliveries_before = await delivery_snapshot(engine)
    audit_before = await count_rows(engine, audit_log)
    other = bearer(make_token(other_tenant_id))
    await subscribe(client, other, "*")  # the other tenant matches the event type too
    audit_before += 1

    assert_problem(await client.get(f"/v1/deliveries/{delivery_id}", headers=other), 404)
    assert_problem(await client.post(f"/v1/deliveries/{delivery_id}/retry", headers=other), 404)
    assert_problem(await client.post(f"/v1/events/{event_id}/replay", headers=other), 404)
    assert_problem(await client.get(f"/v1/replays/{replay_id}", headers=other), 404)
    assert (await client.get("/v1/deliveries", headers=other)).json()["data"] == []
    assert (
        await client.get("/v1/deliveries", params={"event_id": event_id}, headers=other)
    ).json()["data"] == []

    assert await delivery_snapshot(engine) == deliveries_before
    assert await count_rows(engine, replays) == 1
    assert await count_rows(engine, audit_log) == audit_before


async def test_recover_of_another_tenants_subscription_is_404(
    client: Client,
    auth: dict[str, str],
    engine: AsyncEngine,
    other_tenant_id: str,
    make_token: TokenFactory,
) -> None:
    target = await subscribe(client, auth, "order.*")
    other = bearer(make_token(other_tenant_id))
    response = await client.post(
        f"/v1/subscriptions/{target}/recover",
        json={"since": "2020-01-01T00:00:00Z"},
        headers=other,
    )
    assert await count_rows(engine, replays) == 0
    assert_problem(response, 404)


# --- audit log ---------------------------------------------------------------------------


async def test_audit_log_lists_only_the_tenants_rows_newest_first_in_pages(
    client: Client,
    auth: dict[str, str],
    engine: AsyncEngine,
    tenant_id: str,
    other_tenant_id: str,
    make_token: TokenFactory,
) -> None:
    target = await subscribe(client, auth, "order.*")
    event_id = await publish(client, auth)
    delivery_id = (await listed(client, auth))[0]["id"]
    await client.post(f"/v1/deliveries/{delivery_id}/retry", headers=auth)
    await client.post(f"/v1/events/{event_id}/replay", headers=auth)
    other = bearer(make_token(other_tenant_id))
    foreign = await subscribe(client, other, "*")
    await client.post(f"/v1/subscriptions/{foreign}/disable", headers=other)
    await client.post(f"/v1/subscriptions/{target}/disable", headers=auth)

    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await client.get("/v1/audit-log", params=params, headers=auth)
        assert page.status_code == 200, page.text
        seen += page.json()["data"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break

    async with engine.connect() as conn:
        expected = list(
            (
                await conn.execute(
                    sa.select(audit_log.c.id)
                    .where(audit_log.c.tenant_id == tenant_id)
                    .order_by(audit_log.c.id.desc())
                )
            ).scalars()
        )
    assert [e["id"] for e in seen] == expected
    assert [e["action"] for e in seen] == [
        "subscription.disabled",
        "event.replayed",
        "delivery.retried",
        "subscription.created",
        "tenant.created",
    ]
    assert all(e["target"] != foreign for e in seen)
    assert seen[1]["target"] == event_id
    assert seen[2]["details"] == {"attempt": 1}
    assert all(e["created_at"].endswith("Z") for e in seen)

    theirs = (await client.get("/v1/audit-log", headers=other)).json()["data"]
    assert [e["action"] for e in theirs] == [
        "subscription.disabled",
        "subscription.created",
        "tenant.created",
    ]


async def test_audit_log_needs_subscriptions_read(
    client: Client, tenant_id: str, make_token: TokenFactory
) -> None:
    scopes = ("deliveries:read", "deliveries:replay", "events:read")
    response = await client.get("/v1/audit-log", headers=bearer(make_token(tenant_id, scopes)))
    assert_problem(response, 403)
    reader = bearer(make_token(tenant_id, scopes=("subscriptions:read",)))
    assert (await client.get("/v1/audit-log", headers=reader)).status_code == 200
