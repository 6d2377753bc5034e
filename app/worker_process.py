"""`pwbi-gateway worker`: one arq worker process with the gateway's settings."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from arq.worker import get_kwargs

from app.gc_tuning import tune_gc
from app.log_config import configure_logging
from app.port_check import ensure_port_free
from app.settings import Settings
from workers.job_start import DeliveryWorker
from workers.main import WorkerSettings, worker_redis_settings


def run_worker(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)
    if settings.redis_url is None:
        raise SystemExit(
            "pwbi-gateway: configuration error: GATEWAY_REDIS_URL: required for a worker"
        )
    if settings.worker_metrics_port:
        ensure_port_free(settings.host, settings.worker_metrics_port, "GATEWAY_WORKER_METRICS_PORT")
    _use_uvloop()
    options: dict[str, Any] = {
        **get_kwargs(WorkerSettings),  # type: ignore[arg-type]
        "redis_settings": worker_redis_settings(settings.redis_url),
    }
    worker = DeliveryWorker(**options)
    tune_gc()
    worker.run()


def _use_uvloop() -> None:
    """Run the worker on uvloop where it exists (the gateway gets it through uvicorn).

    A worker's CPU goes mostly to the event loop's own work: socket writes and wake-ups for
    every Redis, SQL and HTTP round trip; uvloop does that work in C. arq takes the loop
    that is current when the worker is created.
    """
    if sys.platform == "win32":
        return
    import uvloop

    asyncio.set_event_loop(uvloop.new_event_loop())
