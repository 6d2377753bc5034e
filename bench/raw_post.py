"""Baseline for delivery throughput: raw aiohttp POSTs of the same bodies to the same receiver.

One ClientSession, `--concurrency` tasks, `--count` POSTs in all, headers shaped like the
gateway's (webhook-id/-timestamp/-signature, user-agent, content-type) but not computed per
request, on asyncio's default event loop or (`--loop uvloop`) on uvloop, as the workers run.
Prints one JSON line: {"count", "seconds", "rps", "errors", "body_bytes", "loop"}.

    .venv/bin/python bench/raw_post.py --url http://127.0.0.1:9000/raw \
        --bodies /tmp/bodies.json --count 3000 --concurrency 50
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time

import aiohttp
import uvloop

MAX_SECONDS = 300.0


async def run(url: str, bodies: list[bytes], count: int, concurrency: int) -> dict[str, float]:
    signature = "v1," + base64.b64encode(b"x" * 32).decode()
    next_index = 0
    errors = 0

    async def worker(session: aiohttp.ClientSession, deadline: float) -> None:
        nonlocal next_index, errors
        while next_index < count and time.monotonic() < deadline:
            index = next_index
            next_index += 1
            headers = {
                "content-type": "application/json",
                "user-agent": "pwbi-gateway/bench",
                "webhook-id": f"raw_{index:026d}",
                "webhook-timestamp": str(int(time.time())),
                "webhook-signature": signature,
            }
            try:
                async with session.post(
                    url, data=bodies[index % len(bodies)], headers=headers
                ) as r:
                    await r.read()
                    if not 200 <= r.status < 300:
                        errors += 1
            except (aiohttp.ClientError, TimeoutError):
                errors += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # Warm the pool so connection set-up is not counted (the gateway's pool is warm too).
        async def warm() -> None:
            async with session.post(url, data=bodies[0], headers={"webhook-id": "warm"}) as r:
                await r.read()

        await asyncio.gather(*(warm() for _ in range(concurrency)))
        started = time.perf_counter()
        deadline = time.monotonic() + MAX_SECONDS
        await asyncio.gather(*(worker(session, deadline) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {
        "count": next_index,
        "seconds": round(seconds, 3),
        "rps": round(next_index / seconds, 1),
        "errors": errors,
        "body_bytes": len(bodies[0]),
        "concurrency": concurrency,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--bodies", required=True, help="JSON array of body strings")
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    with open(args.bodies) as f:
        bodies = [b.encode() for b in json.load(f)]
    runner = uvloop.run if args.loop == "uvloop" else asyncio.run
    result = {**runner(run(args.url, bodies, args.count, args.concurrency)), "loop": args.loop}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
