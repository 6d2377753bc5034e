"""A minimal webhook receiver for the benchmarks: a raw ASGI app under uvicorn on 127.0.0.1.

POST <any path>        read the body, record (path, webhook-id, arrival time), answer 204
POST /hang...          the same, but sleep --hang-s first (an endpoint that hangs)
GET  /stats            {"count": n, "by_path": {...}, "first": t, "last": t}
GET  /dump             every record as [path, webhook-id, t_arrival] (time.monotonic(), which
                       on Linux is CLOCK_MONOTONIC and so comparable across processes)
POST /reset            forget every record

    .venv/bin/python bench/receiver.py --port 9000 [--hang-s 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

MAX_RECORDS = 2_000_000

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Receiver:
    def __init__(self, hang_s: float) -> None:
        self.hang_s = hang_s
        self.records: list[tuple[str, str, float]] = []
        self.by_path: dict[str, int] = {}
        self.dropped = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if method == "GET" and path == "/stats":
            await self._json(send, self.stats())
            return
        if method == "GET" and path == "/dump":
            await self._json(send, self.records)
            return
        if method == "POST" and path == "/reset":
            self.records.clear()
            self.by_path.clear()
            self.dropped = 0
            await self._json(send, {"ok": True})
            return
        more = True
        while more:  # read (and discard) the whole body, as a real receiver would
            message = await receive()
            more = bool(message.get("more_body"))
        arrived = time.monotonic()
        webhook_id = ""
        for name, value in scope["headers"]:
            if name == b"webhook-id":
                webhook_id = value.decode("latin-1")
                break
        if len(self.records) < MAX_RECORDS:
            self.records.append((path, webhook_id, arrived))
        else:
            self.dropped += 1
        self.by_path[path] = self.by_path.get(path, 0) + 1
        if path.startswith("/hang"):
            await asyncio.sleep(self.hang_s)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def stats(self) -> dict[str, Any]:
        return {
            "count": sum(self.by_path.values()),
            "by_path": self.by_path,
            "first": self.records[0][2] if self.records else None,
            "last": self.records[-1][2] if self.records else None,
            "dropped": self.dropped,
        }

    @staticmethod
    async def _json(send: Send, value: Any) -> None:
        body = json.dumps(value).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hang-s", type=float, default=20.0)
    args = parser.parse_args()
    uvicorn.run(
        Receiver(args.hang_s),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=75,
        # A hanging request must not delay shutdown past the orchestrator's patience.
        timeout_graceful_shutdown=1,
    )


if __name__ == "__main__":
    main()
