"""Goal 1: delivery throughput of the workers vs raw aiohttp to the same loopback receiver.

Per repetition:

1. with no worker running, publish ``--deliveries / --subscriptions`` events through
   POST /v1/events (each matches every subscription), so the jobs wait in Redis;
2. baseline: ``bench/raw_post.py`` (its own process) POSTs ``--deliveries`` copies of the
   real envelope (taken from events.payload) to the receiver at ``--concurrency``;
3. start ``--workers`` worker processes and poll PostgreSQL every 50 ms until every
   delivery row is ``succeeded``;
4. the baseline again. The ratio is to the mean of the two baselines, which bracket the
   workers' run: the speed of a shared VM drifts within a minute.

Each baseline runs twice: on asyncio's default event loop (``ratio``, as every earlier
result was measured) and on uvloop, which the workers use (``ratio_uvloop_baseline``: the
stricter comparison, the same client on the same loop).

Reported: deliveries/s measured from the first arrival at the receiver until the last row
is ``succeeded`` in SQL (worker start-up excluded; SQL recording included), the same from
worker spawn (start-up included), the ratio to the raw baseline (goal >= 0.5), CPU seconds
per process and peak RSS, and CPU per delivery past the workers' start-up
(``cpu_ms_per_delivery_steady``: the comparison to use between two versions of the code,
which the VM's drifting speed disturbs less than a rate).

    .venv/bin/python bench/delivery_throughput.py [--deliveries 3000] [--subscriptions 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench.common import (
    PYTHON,
    REDIS_URL,
    BenchStack,
    CpuMeter,
    event_body,
    machine_info,
    median,
    py_spy_argv,
    py_spy_available,
    run_json,
    run_text,
    sample_payload,
    write_result,
)
from workers.queue import QUEUE_NAME

GOAL_RATIO = 0.5
POLL_S = 0.05
MAX_WAIT_S = 600.0
# The steady-state CPU meter starts once this share of the deliveries has arrived.
STEADY_FROM = 0.05
# Besides the workers, what a delivery's steady-state CPU counts (cpu_ms_per_delivery_steady).
STEADY_TOTAL = ("receiver", "postgres_own", "redis-server_all", "irq_softirq")


def queue_depth() -> int:
    """Jobs waiting in the arq queue (a sorted set in Redis db 12)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return int(client.zcard(QUEUE_NAME))
    finally:
        client.close()


async def wait_all_succeeded(stack: BenchStack, expected: int, timeout_s: float) -> float:
    """Poll SQL until `expected` deliveries are succeeded; returns time.monotonic() then."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = await stack.sql("SELECT count(*) AS n FROM deliveries WHERE status = 'succeeded'")
        if int(rows[0]["n"]) >= expected:
            return time.monotonic()
        stack.check_alive()
        await asyncio.sleep(POLL_S)
    counts = await stack.delivery_counts()
    raise RuntimeError(f"deliveries not all succeeded after {timeout_s:.0f} s: {counts}")


async def raw_post(
    stack: BenchStack,
    args: argparse.Namespace,
    bodies_file: Path,
    count: int,
    loop: str = "asyncio",
) -> dict[str, Any]:
    """raw_post.py: the same bodies to the same receiver at the same concurrency."""
    await stack.receiver_reset()
    return await run_json(
        [
            PYTHON,
            str(Path(__file__).parent / "raw_post.py"),
            "--url",
            f"{stack.receiver_url}/raw",
            "--bodies",
            str(bodies_file),
            "--count",
            str(count),
            "--concurrency",
            str(args.concurrency),
            "--loop",
            loop,
        ],
        timeout_s=360,
    )


async def steady_meter(stack: BenchStack, deliveries: int) -> tuple[CpuMeter, int] | None:
    """A CPU meter started once the workers are past start-up (5 % delivered), and the
    receiver's count then; None if the run ended first."""
    while True:
        stats: dict[str, Any] = await stack.receiver_get("/stats")
        count = int(stats["count"])
        if count >= deliveries:
            return None  # all arrived before a poll saw the workers past start-up
        if count >= deliveries * STEADY_FROM:
            return await stack.cpu_meter(), count
        await asyncio.sleep(POLL_S / 2)


async def steady_cost(
    stack: BenchStack, task: asyncio.Task[tuple[CpuMeter, int] | None], deliveries: int
) -> dict[str, Any] | None:
    """CPU per delivery from steady_meter's start to the last delivery recorded: the
    workers' cost without their start-up (imports, connections), which the whole-run figure
    includes. Less sensitive to the VM's speed than a rate: compare code by this."""
    if not task.done():
        task.cancel()
        return None
    started = task.result()
    if started is None:
        return None
    meter, count = started
    cpu = await stack.cpu_meter_stop(meter)
    done = deliveries - count
    per = {name: round(1000 * spent / done, 3) for name, spent in cpu["cpu_s"].items()}
    workers = sum(v for k, v in per.items() if k.startswith("worker"))
    total = workers + sum(per.get(k, 0.0) for k in STEADY_TOTAL)
    return {
        "deliveries": done,
        "wall_s": cpu["wall_s"],
        "machine_busy_pct": cpu["machine_busy_pct"],
        "ms": per,
        "workers_ms": round(workers, 3),
        "total_ms": round(total, 3),
    }


async def one_repetition(
    stack: BenchStack, args: argparse.Namespace, bodies_file: Path, body: bytes, rep: int
) -> dict[str, Any]:
    events = math.ceil(args.deliveries / args.subscriptions)
    deliveries = events * args.subscriptions

    await stack.receiver_reset()
    publish_started = time.perf_counter()
    await stack.publish_many(body, events, concurrency=20)
    publish_s = time.perf_counter() - publish_started
    already = rep * deliveries
    pending = (await stack.delivery_counts()).get("pending", 0)
    assert pending == deliveries, f"expected {deliveries} pending deliveries, found {pending}"
    queued_jobs = queue_depth()

    # The baseline right before and right after the workers' run: this VM's speed drifts
    # over tens of seconds, so a baseline taken before the publishing would measure a
    # different machine.
    quiet_raw = await stack.wait_for_quiet()
    raw = await raw_post(stack, args, bodies_file, deliveries)
    # The same client on uvloop, the workers' event loop: the stricter baseline.
    raw_uvloop = await raw_post(stack, args, bodies_file, deliveries, "uvloop")
    await stack.receiver_reset()
    quiet_gateway = await stack.wait_for_quiet()
    spawned = time.monotonic()
    workers = stack.start_workers(args.workers)
    meter = await stack.cpu_meter()
    profile: asyncio.Task[str] | None = None
    profile_out = stack.log_dir / f"worker-profile-rep{rep}.txt"
    if args.profile and py_spy_available():
        await asyncio.sleep(1.5)  # past the imports, into the work
        profile = asyncio.create_task(
            run_text(py_spy_argv(workers[0].pid, args.profile_seconds, profile_out), 120)
        )
    steady_task = asyncio.create_task(steady_meter(stack, deliveries))
    done_at = await wait_all_succeeded(stack, already + deliveries, MAX_WAIT_S)
    cpu = await stack.cpu_meter_stop(meter)
    steady = await steady_cost(stack, steady_task, deliveries)
    stats = await stack.receiver_get("/stats")
    if profile is not None:
        await profile
    stack.stop_workers()
    raw_uvloop_after = await raw_post(stack, args, bodies_file, deliveries, "uvloop")
    raw_after = await raw_post(stack, args, bodies_file, deliveries)
    raw_rps = round((raw["rps"] + raw_after["rps"]) / 2, 1)
    raw_uvloop_rps = round((raw_uvloop["rps"] + raw_uvloop_after["rps"]) / 2, 1)

    first = float(stats["first"])
    attempts = await stack.sql("SELECT count(*) AS n FROM attempts")
    rate = deliveries / (done_at - first)
    return {
        "deliveries": deliveries,
        "events": events,
        "publish_s": round(publish_s, 2),
        "raw": raw,
        "raw_after": raw_after,
        "raw_rps": raw_rps,
        "raw_uvloop": raw_uvloop,
        "raw_uvloop_after": raw_uvloop_after,
        "raw_uvloop_rps": raw_uvloop_rps,
        "jobs_queued_before_workers": queued_jobs,
        "receiver_count": stats["count"],
        "attempt_rows_total": int(attempts[0]["n"]),
        "gateway_first_arrival_to_all_succeeded_s": round(done_at - first, 3),
        "gateway_spawn_to_all_succeeded_s": round(done_at - spawned, 3),
        "gateway_rate": round(rate, 1),
        "gateway_rate_incl_startup": round(deliveries / (done_at - spawned), 1),
        "ratio": round(rate / raw_rps, 3),
        "ratio_uvloop_baseline": round(rate / raw_uvloop_rps, 3),
        "cpu_during_delivery": cpu,
        "cpu_ms_per_delivery": {
            name: round(1000 * spent / deliveries, 2) for name, spent in cpu["cpu_s"].items()
        },
        "cpu_ms_per_delivery_steady": steady,
        "profile": str(profile_out) if profile is not None else None,
        "foreign_busy_pct_before": {"raw": quiet_raw, "gateway": quiet_gateway},
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    info = machine_info()
    body = event_body()
    async with BenchStack("delivery") as stack:
        await stack.start_receiver()
        await stack.start_gateway()
        # One event before any subscription exists: it gives the real envelope bytes.
        await stack.publish_many(body, 1, concurrency=1)
        payload = await sample_payload(stack)
        for index in range(args.subscriptions):
            await stack.subscribe(f"/sub{index}", max_in_flight=args.max_in_flight)
        with tempfile.TemporaryDirectory() as tmp:
            bodies_file = Path(tmp) / "bodies.json"
            bodies_file.write_text(json.dumps([payload.decode()]))
            reps = []
            for rep in range(args.repeat):
                result = await one_repetition(stack, args, bodies_file, body, rep)
                print(
                    f"rep {rep + 1}: raw {result['raw']['rps']}/s before, "
                    f"{result['raw_after']['rps']}/s after, "
                    f"gateway {result['gateway_rate']}/s "
                    f"(incl. start-up {result['gateway_rate_incl_startup']}/s), "
                    f"ratio {result['ratio']} "
                    f"(raw on uvloop {result['raw_uvloop_rps']}/s: "
                    f"{result['ratio_uvloop_baseline']}); steady CPU per delivery "
                    f"{(result['cpu_ms_per_delivery_steady'] or {}).get('total_ms')} ms, "
                    f"workers {(result['cpu_ms_per_delivery_steady'] or {}).get('workers_ms')} ms",
                    file=sys.stderr,
                )
                reps.append(result)
        rss = stack.rss.summary()
    raw_med = median([r["raw_rps"] for r in reps])
    gw_med = median([r["gateway_rate"] for r in reps])
    return {
        "benchmark": "delivery_throughput",
        "machine": info,
        "params": vars(args),
        "envelope_bytes": len(payload),
        "raw_rps_median": raw_med,
        "gateway_rate_median": gw_med,
        "gateway_rate_incl_startup_median": median([r["gateway_rate_incl_startup"] for r in reps]),
        "ratio_median": round(median([r["ratio"] for r in reps]), 3),
        "raw_uvloop_rps_median": median([r["raw_uvloop_rps"] for r in reps]),
        "ratio_uvloop_baseline_median": round(
            median([r["ratio_uvloop_baseline"] for r in reps]), 3
        ),
        "steady_total_ms_per_delivery_median": _steady_median(reps, "total_ms"),
        "steady_workers_ms_per_delivery_median": _steady_median(reps, "workers_ms"),
        "goal_ratio": GOAL_RATIO,
        "pass": median([r["ratio"] for r in reps]) >= GOAL_RATIO,
        "repetitions": reps,
        "rss_mib": rss,
    }


def _steady_median(reps: list[dict[str, Any]], key: str) -> float | None:
    values = [r["cpu_ms_per_delivery_steady"][key] for r in reps if r["cpu_ms_per_delivery_steady"]]
    return round(median(values), 3) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=10000)
    parser.add_argument("--subscriptions", type=int, default=1, help="each event matches all")
    parser.add_argument("--max-in-flight", type=int, default=100, help="per subscription (1-100)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=50, help="raw baseline concurrency")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="py-spy one worker (if installed)")
    parser.add_argument("--profile-seconds", type=float, default=3.0)
    parser.add_argument("--name", default="delivery_throughput", help="results file prefix")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    path = write_result(args.name, result)
    print(json.dumps({k: v for k, v in result.items() if k != "repetitions"}, indent=2))
    print(f"results: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
