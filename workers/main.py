"""arq WorkerSettings: the list of jobs a worker runs, and the resources they share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, ClassVar

from arq import cron, func
from arq.connections import RedisSettings
from arq.cron import CronJob
from arq.worker import Function
from prometheus_client import start_http_server

from app.clock import utcnow
from app.delivery.attempts import AttemptRunner
from app.delivery.http_client import WebhookClient
from app.delivery.isolation import SubscriptionLimiter
from app.delivery.jobs import DELIVER_JOB
from app.delivery.replay import RECOVER_JOB, run_recover
from app.ingest.moka_poller import MokaApi, poll_all_moka_sources
from app.metrics import WORKER_REGISTRY
from app.security.secret_box import SecretBox
from app.security.ssrf import AddressPolicy
from app.settings import Settings, load_settings
from app.store.engine import create_engine
from workers.deliver import deliver_attempts
from workers.queue import QUEUE_NAME, deserialize_job, redis_settings, serialize_job
from workers.retention import purge_expired
from workers.sweeper import sweep_overdue

logger = logging.getLogger(__name__)

# Longer than the longest attempt (30 s) plus recording: arq only re-runs a job of a dead
# worker after this, and the delivery's SQL lease lets the sweeper take over anyway.
JOB_TIMEOUT_S = 60
RELEASE_WAIT_S = 5.0


async def purge_retention(ctx: dict[str, Any]) -> int:
    settings: Settings = ctx["settings"]
    return await purge_expired(ctx["engine"], settings.retention_days)


async def sweep(ctx: dict[str, Any]) -> int:
    return await sweep_overdue(ctx["engine"], ctx["redis"], utcnow())


async def recover(ctx: dict[str, Any], replay_id: str) -> int:
    return await run_recover(ctx["engine"], ctx["redis"], replay_id)


async def poll_moka(ctx: dict[str, Any]) -> int:
    settings: Settings = ctx["settings"]
    api = MokaApi(
        base_url=settings.moka_api_url,
        client_id=settings.moka_client_id,
        client_secret=settings.moka_client_secret,
    )
    return await poll_all_moka_sources(
        ctx["engine"], ctx["redis"], api, SecretBox(settings.secret_key)
    )


async def on_startup(ctx: dict[str, Any]) -> None:
    settings = load_settings()
    engine = create_engine(settings.database_url)
    client = WebhookClient(policy=AddressPolicy(allow_cidrs=settings.ssrf_allow_cidrs))
    await client.start()
    ctx["settings"] = settings
    ctx["engine"] = engine
    ctx["client"] = client
    ctx["runner"] = AttemptRunner(
        engine=engine,
        queue=ctx["redis"],
        client=client,
        limiter=SubscriptionLimiter(ctx["redis"]),
        secret_box=SecretBox(settings.secret_key),
        settings=settings,
    )
    if settings.worker_metrics_port:
        # The worker's own families only (app.metrics); the API process serves the others.
        start_http_server(
            settings.worker_metrics_port, addr=settings.host, registry=WORKER_REGISTRY
        )
    logger.info("worker started", extra={"metrics_port": settings.worker_metrics_port})


async def on_shutdown(ctx: dict[str, Any]) -> None:
    runner: AttemptRunner | None = ctx.get("runner")
    if runner is not None:
        # Free the slots of the last attempts now rather than when their leases run out.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runner.close(), RELEASE_WAIT_S)
    client: WebhookClient | None = ctx.get("client")
    if client is not None:
        await client.close()
    engine = ctx.get("engine")
    if engine is not None:
        await engine.dispose()


class WorkerSettings:
    functions: ClassVar[list[Function]] = [
        # keep_result=0: a finished attempt leaves no result key, so the sweeper can
        # enqueue the same job id again should the delivery still be due later.
        func(deliver_attempts, name=DELIVER_JOB, keep_result=0, timeout=JOB_TIMEOUT_S),
        func(recover, name=RECOVER_JOB, keep_result=0, timeout=JOB_TIMEOUT_S),
    ]
    cron_jobs: ClassVar[list[CronJob]] = [
        cron(sweep, second=set(range(0, 60, 3)), unique=True, run_at_startup=True, keep_result=0),
        # Every 10 minutes, off the round minute; unique=True keeps it to one worker.
        # Moka has no webhooks: its report is polled once a minute per Moka source.
        cron(poll_moka, second={30}, unique=True, keep_result=0, timeout=JOB_TIMEOUT_S),
        cron(purge_retention, minute=set(range(3, 60, 10)), second=17, unique=True),
    ]
    queue_name = QUEUE_NAME
    job_serializer = staticmethod(serialize_job)
    job_deserializer = staticmethod(deserialize_job)
    on_startup = on_startup
    on_shutdown = on_shutdown
    max_jobs = 100
    job_timeout = JOB_TIMEOUT_S
    keep_result = 0
    # arq sleeps this long between polls even when busy; it bounds delivery latency.
    poll_delay = 0.02
    handle_signals = True
    # On SIGTERM, let running attempts finish (the longest is 30 s) before cancelling;
    # deployments give workers a longer grace period than this.
    job_completion_wait = 40
    health_check_interval = 30


def worker_redis_settings(url: str) -> RedisSettings:
    return redis_settings(url)
