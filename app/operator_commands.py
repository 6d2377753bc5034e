"""Operator support commands: list and retry deliveries, recover a subscription, by tenant."""

from __future__ import annotations

import argparse
from datetime import datetime

from app.delivery.replay import (
    ReplayNotFound,
    ReplayRefused,
    enqueue_recover,
    retry_delivery,
    start_recover,
)
from app.settings import Settings
from app.store.deliveries import list_deliveries
from app.store.engine import create_engine
from app.store.tenants import get_tenant
from workers.queue import queue_connection

OPERATOR_ACTOR = "operator:cli"


class OperatorCommandFailed(Exception):
    pass


def add_operator_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    deliveries = commands.add_parser("deliveries", help="inspect and retry a tenant's deliveries")
    actions = deliveries.add_subparsers(dest="deliveries_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="newest first, tab-separated")
    listing.add_argument("--tenant", required=True)
    listing.add_argument("--status", choices=("pending", "succeeded", "failed", "cancelled"))
    listing.add_argument("--subscription")
    listing.add_argument("--event")
    listing.add_argument("--limit", type=int, default=50)
    retry = actions.add_parser("retry", help="attempt one delivery again now")
    retry.add_argument("--tenant", required=True)
    retry.add_argument("delivery_id")

    subscriptions = commands.add_parser("subscriptions", help="operator actions on subscriptions")
    sub_actions = subscriptions.add_subparsers(
        dest="subscriptions_command", required=True, metavar="ACTION"
    )
    recover = sub_actions.add_parser("recover", help="re-attempt deliveries in a time window")
    recover.add_argument("--tenant", required=True)
    recover.add_argument("subscription_id")
    recover.add_argument("--since", required=True, type=_aware_time, help="RFC 3339, with zone")
    recover.add_argument("--until", type=_aware_time)
    recover.add_argument("--status", choices=("failed", "cancelled", "succeeded"), default="failed")


def _aware_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time zone, e.g. 2026-01-31T00:00:00+07:00")
    return value


async def run_operator_command(args: argparse.Namespace, settings: Settings) -> None:
    engine = create_engine(settings.database_url, pool_size=1)
    queue = queue_connection(settings.redis_url) if settings.redis_url else None
    try:
        async with engine.connect() as conn:
            if await get_tenant(conn, args.tenant) is None:
                raise OperatorCommandFailed(f"no tenant {args.tenant}")
        if args.command == "deliveries" and args.deliveries_command == "list":
            async with engine.connect() as conn:
                rows = await list_deliveries(
                    conn,
                    args.tenant,
                    limit=max(1, min(args.limit, 500)),
                    subscription_id=args.subscription,
                    event_id=args.event,
                    status=args.status,
                )
            for row in rows:
                last = row.last_status_code if row.last_status_code is not None else "-"
                print(
                    f"{row.id}\t{row.status}\t{row.attempt_count}\t{last}\t"
                    f"{row.event_type}\t{row.subscription_id}\t{row.created_at:%Y-%m-%dT%H:%M:%SZ}"
                )
            return
        if queue is None:
            raise OperatorCommandFailed("GATEWAY_REDIS_URL: required to queue the work")
        if args.command == "deliveries":
            retried = await retry_delivery(
                engine,
                queue,
                tenant_id=args.tenant,
                delivery_id=args.delivery_id,
                actor=OPERATOR_ACTOR,
            )
            print(f"{retried.delivery_id} attempt {retried.attempt} queued")
            return
        replay_id = await start_recover(
            engine,
            queue,
            tenant_id=args.tenant,
            subscription_id=args.subscription_id,
            since=args.since,
            until=args.until,
            statuses=[args.status],
            actor=OPERATOR_ACTOR,
        )
        await enqueue_recover(queue, replay_id)
        print(replay_id)
    except (ReplayNotFound, ReplayRefused) as exc:
        raise OperatorCommandFailed(str(exc)) from None
    finally:
        if queue is not None:
            await queue.aclose()
        await engine.dispose()
