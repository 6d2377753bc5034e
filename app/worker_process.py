"""`pwbi-gateway worker`: one arq worker process with the gateway's settings."""

from __future__ import annotations

from arq.worker import create_worker

from app.log_config import configure_logging
from app.settings import Settings
from workers.main import WorkerSettings, worker_redis_settings


def run_worker(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)
    if settings.redis_url is None:
        raise SystemExit(
            "pwbi-gateway: configuration error: GATEWAY_REDIS_URL: required for a worker"
        )
    worker = create_worker(
        WorkerSettings,  # type: ignore[arg-type]
        redis_settings=worker_redis_settings(settings.redis_url),
    )
    worker.run()
