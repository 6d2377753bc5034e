"""arq WorkerSettings: the list of jobs a worker runs, and the resources they share."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from arq import cron
from arq.connections import RedisSettings
from arq.cron import CronJob
from arq.typing import WorkerCoroutine
from prometheus_client import start_http_server

from app.settings import Settings, load_settings
from app.store.engine import create_engine
from workers.queue import QUEUE_NAME, deserialize_job, redis_settings, serialize_job
from workers.retention import purge_expired

logger = logging.getLogger(__name__)


async def purge_retention(ctx: dict[str, Any]) -> int:
    settings: Settings = ctx["settings"]
    return await purge_expired(ctx["engine"], settings.retention_days)


async def on_startup(ctx: dict[str, Any]) -> None:
    settings = load_settings()
    ctx["settings"] = settings
    ctx["engine"] = create_engine(settings.database_url)
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr=settings.host)
    logger.info("worker started", extra={"metrics_port": settings.worker_metrics_port})


async def on_shutdown(ctx: dict[str, Any]) -> None:
    engine = ctx.get("engine")
    if engine is not None:
        await engine.dispose()


class WorkerSettings:
    functions: ClassVar[list[WorkerCoroutine]] = []
    cron_jobs: ClassVar[list[CronJob]] = [
        # Every 10 minutes, not on the minute every worker shares: unique=True keeps it single.
        cron(
            purge_retention,
            minute=set(range(3, 60, 10)),
            second=17,
            unique=True,
            run_at_startup=False,
        ),
    ]
    queue_name = QUEUE_NAME
    job_serializer = staticmethod(serialize_job)
    job_deserializer = staticmethod(deserialize_job)
    on_startup = on_startup
    on_shutdown = on_shutdown
    max_jobs = 50
    poll_delay = 0.05
    handle_signals = True
    health_check_interval = 30


def worker_redis_settings(url: str) -> RedisSettings:
    return redis_settings(url)
