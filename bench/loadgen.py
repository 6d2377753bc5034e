"""HTTP load generator for POST /v1/events (aiohttp, run as its own process).

Two modes:

* ``closed``: ``--concurrency`` tasks POST back to back for ``--duration`` seconds
  (the fallback when ``wrk`` is not installed).
* ``rate``: open loop, one POST every 1/``--rate`` seconds for ``--duration`` seconds,
  whatever the server's speed (at most ``--max-outstanding`` in flight; beyond that a
  send is counted as ``skipped``). With ``--out`` it writes every request as
  [t_send, t_response, status, event_id] (time.monotonic(), comparable with the
  receiver's clock on Linux) for latency matching.

Prints one JSON summary line.

    .venv/bin/python bench/loadgen.py rate --url http://127.0.0.1:8080/v1/events \
        --token "$TOKEN" --body body.json --rate 200 --duration 30 --out sent.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp

MAX_DURATION_S = 3600.0


def _summary(records: list[list[Any]], seconds: float, skipped: int = 0) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    latencies = []
    for _sent, done, status, _id in records:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if done is not None:
            latencies.append(done - _sent)
    latencies.sort()

    def pct(q: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))] * 1000, 2)

    ok = statuses.get("202", 0)
    return {
        "requests": len(records),
        "seconds": round(seconds, 3),
        "rps": round(len(records) / seconds, 1) if seconds else 0.0,
        "ok_rps": round(ok / seconds, 1) if seconds else 0.0,
        "statuses": statuses,
        "skipped": skipped,
        "response_ms": {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": pct(100)},
    }


async def _post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> list[Any]:
    sent = time.monotonic()
    try:
        async with session.post(url, data=body, headers=headers) as response:
            text = await response.read()
            done = time.monotonic()
            event_id = None
            if response.status == 202:
                event_id = json.loads(text).get("id")
            return [sent, done, response.status, event_id]
    except (aiohttp.ClientError, TimeoutError) as exc:
        return [sent, None, type(exc).__name__, None]


async def closed(args: argparse.Namespace, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    records: list[list[Any]] = []
    duration = min(args.duration, MAX_DURATION_S)

    async def worker(session: aiohttp.ClientSession, deadline: float) -> None:
        while time.monotonic() < deadline:
            records.append(await _post(session, args.url, body, headers))

    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        started = time.monotonic()
        deadline = started + duration
        await asyncio.gather(*(worker(session, deadline) for _ in range(args.concurrency)))
        seconds = time.monotonic() - started
    return _summary(records, seconds)


async def rate(args: argparse.Namespace, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    records: list[list[Any]] = []
    total = int(args.rate * min(args.duration, MAX_DURATION_S))
    interval = 1.0 / args.rate
    skipped = 0
    outstanding: set[asyncio.Task[list[Any]]] = set()

    def finished(task: asyncio.Task[list[Any]]) -> None:
        outstanding.discard(task)
        if not task.cancelled():
            records.append(task.result())

    connector = aiohttp.TCPConnector(limit=args.max_outstanding)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        started = time.monotonic()
        for index in range(total):
            due = started + index * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(outstanding) >= args.max_outstanding:
                skipped += 1
                continue
            task = asyncio.create_task(_post(session, args.url, body, headers))
            outstanding.add(task)
            task.add_done_callback(finished)
        sending = time.monotonic() - started
        if outstanding:
            await asyncio.wait(outstanding, timeout=60)
    summary = _summary(records, sending, skipped)
    summary["target_rate"] = args.rate
    if args.out:
        with open(args.out, "w") as out:
            json.dump(records, out)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["closed", "rate"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--body", required=True, help="file holding the JSON body")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--max-outstanding", type=int, default=500)
    parser.add_argument("--out", help="rate mode: write per-request records here")
    args = parser.parse_args()
    with open(args.body, "rb") as f:
        body = f.read()
    headers = {"content-type": "application/json"}
    if args.token:
        headers["authorization"] = f"Bearer {args.token}"
    run = closed if args.mode == "closed" else rate
    print(json.dumps(asyncio.run(run(args, body, headers))))


if __name__ == "__main__":
    main()
