"""Baseline for publish throughput: a bare Litestar app that decodes the body and answers 202.

POST /v1/events reads the body, decodes it with msgspec into the same ``PublishEvent`` type
the gateway uses (``contracts.canonical.publish_decoder``), and answers 202 with a body
shaped like the gateway's ``{"id", "deliveries"}``. No auth, no SQL, no Redis: it is the
ceiling the framework and server impose. Served exactly as ``app/serve.py`` serves the
gateway (uvicorn, one process, same options).

    .venv/bin/python bench/bare_app.py --port 9001
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

import msgspec
import uvicorn
from litestar import Litestar, Request, Response, get, post

from contracts.api import PublishAccepted
from contracts.canonical import publish_decoder

_encoder = msgspec.json.Encoder()
_ids = itertools.count()


@post("/v1/events", status_code=202)
async def publish(request: Request[Any, Any, Any]) -> Response[bytes]:
    data = publish_decoder.decode(await request.body())
    accepted = PublishAccepted(id=f"evt_{next(_ids):026d}", deliveries=3 if data.type else 0)
    return Response(
        content=_encoder.encode(accepted), status_code=202, media_type="application/json"
    )


@get("/readyz")
async def readyz() -> dict[str, bool]:
    return {"ok": True}


def create_app() -> Litestar:
    return Litestar(route_handlers=[publish, readyz], openapi_config=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    # The same uvicorn options as app/serve.py.
    uvicorn.run(
        "bench.bare_app:create_app",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        server_header=False,
        timeout_keep_alive=75,
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
