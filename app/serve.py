"""`pwbi-gateway serve`: the API under uvicorn, with our logging."""

from __future__ import annotations

import uvicorn

from app.gc_tuning import tune_gc
from app.log_config import configure_logging
from app.port_check import ensure_port_free
from app.settings import Settings


def serve(settings: Settings, *, workers: int = 1) -> None:
    ensure_port_free(settings.host, settings.port, "GATEWAY_PORT")
    configure_logging(settings.log_level, settings.log_format)
    tune_gc()  # in this process; a worker process started by `workers > 1` keeps the defaults
    uvicorn.run(
        "app.http.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        server_header=False,
        # Longer than a load balancer's idle timeout, so it closes first, never us mid-request.
        timeout_keep_alive=75,
        timeout_graceful_shutdown=20,
    )
