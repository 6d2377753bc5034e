"""How many network writes one publish and one delivery cost, by peer (PostgreSQL, Redis, HTTP).

On a machine where every syscall is expensive (see sql_roundtrip.py), the number of round
trips is what the hot paths pay for. This attaches ``strace -f -yy`` (send/write syscalls
only) to the gateway and to one warm worker, publishes ``--events`` events one at a time
(each matching ``--subscriptions`` subscriptions), waits until all are delivered, and
counts the writes per socket peer: 5432 = PostgreSQL, 6379 = Redis, the gateway's port =
HTTP responses, the receiver's port = webhook POSTs. The worker's idle polling (arq polls
Redis every ``poll_delay``) is measured first for a few seconds and subtracted.
strace slows the processes down; only the counts are meaningful, not the times.

    .venv/bin/python bench/roundtrips.py [--events 100] [--subscriptions 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import BenchStack, Child, event_body, machine_info, write_result

_CALL = re.compile(
    r"^(?P<tid>\d+)\s+(?P<call>sendto|sendmsg|write|writev)\((?P<fd>\d+)<(?P<what>.+?)>, "
    r"(?P<data>\[?\{?.*)$"
)
# One byte as strace prints it: an escape (\\0, \\16, \\v, \\") or a plain character.
_BYTE = r'(?:\\(?:\d{1,3}|x[0-9a-f]{2}|[a-z"\\])|[^\\])'
_PG_MESSAGE = re.compile(r'^"(?P<kind>[A-Za-z])' + _BYTE + "{4}" + r"(?P<sql>[A-Za-z ;]*)")
_TCP = re.compile(r"TCP(?:v6)?:\[(?P<src>[^\]]+?)->(?P<dst>[^\]]+?)\]")


def classify(what: str, ports: dict[int, str]) -> str:
    match = _TCP.search(what)
    if not match:
        return "other (pipes, files, eventfd)" if what else "other"
    for end in (match["dst"], match["src"]):
        port = int(end.rsplit(":", 1)[1])
        if port in ports:
            return ports[port]
    return "other tcp"


def pg_kind(data: str) -> str:
    """What a write to PostgreSQL starts with: a simple query's text, or the message type."""
    match = _PG_MESSAGE.search(data)
    if not match:
        return "?"
    kind = match["kind"]
    if kind == "Q":
        return f"simple query {(match['sql'] or '').strip()}"
    return {"B": "bind+execute (prepared)", "P": "parse (prepare)", "X": "terminate"}.get(
        kind, f"message {kind}"
    )


def count_writes(path: Path, ports: dict[int, str]) -> tuple[Counter[str], Counter[str]]:
    """Writes per peer, and PostgreSQL writes per kind."""
    counts: Counter[str] = Counter()
    pg: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        match = _CALL.match(line)
        if match:
            peer = classify(match["what"], ports)
            counts[peer] += 1
            if peer == "postgresql":
                pg[pg_kind(match["data"])] += 1
    return counts, pg


def attach(stack: BenchStack, target: Child, label: str) -> tuple[Child, Path]:
    out = stack.log_dir / f"strace-{label}.txt"
    child = stack.processes.spawn(
        f"strace-{label}",
        ["strace", "-f", "-yy", "-e", "trace=sendto,sendmsg,write,writev", "-o", str(out),
         "-p", str(target.pid)],
    )  # fmt: skip
    return child, out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("strace") is None:
        raise SystemExit("strace is not installed (apt-get install -y strace)")
    info = machine_info()
    async with BenchStack("roundtrips") as stack:
        await stack.start_receiver()
        gateway = await stack.start_gateway()
        for index in range(args.subscriptions):
            await stack.subscribe(f"/rt{index}")
        [worker] = stack.start_workers(1)
        body = event_body()
        await stack.publish_many(body, 20, concurrency=1)  # warm both processes
        await wait_delivered(stack, 20 * args.subscriptions)
        ports = {
            5432: "postgresql",
            6379: "redis",
            stack.gateway_port: "http in (gateway)",
            stack.receiver_port: "http out (webhooks)",
        }

        idle_tracer, idle_out = attach(stack, worker, "worker-idle")
        await asyncio.sleep(1.0)
        started = time.monotonic()
        await asyncio.sleep(args.idle_s)
        idle_s = time.monotonic() - started
        stack.processes.stop(idle_tracer)
        idle, idle_pg = count_writes(idle_out, ports)

        gw_tracer, gw_out = attach(stack, gateway, "gateway")
        wk_tracer, wk_out = attach(stack, worker, "worker")
        await asyncio.sleep(1.0)
        started = time.monotonic()
        await stack.publish_many(body, args.events, concurrency=1)
        await wait_delivered(stack, (20 + args.events) * args.subscriptions)
        window_s = time.monotonic() - started
        await asyncio.sleep(0.5)
        stack.processes.stop(gw_tracer)
        stack.processes.stop(wk_tracer)
        gateway_counts, gateway_pg = count_writes(gw_out, ports)
        worker_counts, worker_pg = count_writes(wk_out, ports)
    deliveries = args.events * args.subscriptions
    per_publish = {k: round(v / args.events, 2) for k, v in gateway_counts.items()}
    per_delivery = {
        k: round(max(0.0, v - idle.get(k, 0) * window_s / idle_s) / deliveries, 2)
        for k, v in worker_counts.items()
    }
    pg_per_publish = {k: round(v / args.events, 2) for k, v in gateway_pg.most_common()}
    pg_per_delivery = {
        k: round(max(0.0, v - idle_pg.get(k, 0) * window_s / idle_s) / deliveries, 2)
        for k, v in worker_pg.most_common()
    }
    return {
        "benchmark": "roundtrips",
        "gateway_postgresql_writes_per_publish": pg_per_publish,
        "worker_postgresql_writes_per_delivery": pg_per_delivery,
        "machine": info,
        "params": vars(args),
        "gateway_writes_per_publish": per_publish,
        "worker_writes_per_delivery": per_delivery,
        "worker_idle_writes_per_s": {k: round(v / idle_s, 1) for k, v in idle.items()},
        "window_s": round(window_s, 2),
    }


async def wait_delivered(stack: BenchStack, expected: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (await stack.delivery_counts()).get("succeeded", 0) >= expected:
            return
        stack.check_alive()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"not delivered in {timeout_s} s: {await stack.delivery_counts()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--subscriptions", type=int, default=1)
    parser.add_argument("--idle-s", type=float, default=5.0)
    parser.add_argument("--name", default="roundtrips", help="results file prefix")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    path = write_result(args.name, result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    print(f"results: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
