"""Goal 5: resident memory of the gateway and worker processes under sustained load.

Starts a fresh stack (receiver, gateway, ``--workers`` workers, one subscription), then
publishes at ``--rate`` events/s (``bench/loadgen.py rate``, its own process) for
``--sustain-minutes`` minutes, sampling every process's RSS (/proc/<pid>/status VmRSS)
every ``--sample-s`` seconds (10). Reports the series, each process's peak (VmHWM), the RSS
after the first minute vs at the end, and a least-squares slope over the second half of the
run in MiB/min: flat memory means a slope near 0.

The rate should be one the machine sustains (the default, 20/s, is; see
docs/performance.md): above it, queues of unserved requests grow and so does memory,
which measures the backlog, not a leak.

    .venv/bin/python bench/memory.py --sustain-minutes 10 [--rate 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from bench.common import (
    BenchStack,
    RssSampler,
    event_body,
    machine_info,
    run_rate_load,
    write_result,
)


def slope_mib_per_min(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return round(cov / var * 60, 3)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    info = machine_info()
    duration = args.sustain_minutes * 60
    sampler = RssSampler(interval_s=args.sample_s)
    async with BenchStack("memory", rss=sampler) as stack:
        await stack.start_receiver()
        await stack.start_gateway()
        await stack.subscribe("/mem")
        stack.start_workers(args.workers)
        body = event_body()
        await stack.publish_many(body, 3, concurrency=1)
        quiet = await stack.wait_for_quiet()
        sampler.reset_series()  # series times count from the start of the load
        start_rows = sampler.sample()
        meter = await stack.cpu_meter()
        load = await run_rate_load(stack, body, rate=args.rate, duration_s=duration, slack_s=180.0)
        cpu = await stack.cpu_meter_stop(meter)
        end_rows = sampler.sample()
        accepted = int(load["statuses"].get("202", 0))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            stats = await stack.receiver_get("/stats")
            if int(stats["by_path"].get("/mem", 0)) >= accepted + 3:
                break
            await asyncio.sleep(0.5)
        stats = await stack.receiver_get("/stats")
        counts = await stack.delivery_counts()
        series = list(sampler.series)
        summary = stack.rss.summary()
    processes: dict[str, Any] = {}
    for name in sorted(summary):
        points = [(row["t"], row[name]) for row in series if name in row]
        after_first_minute = next((v for t, v in points if t >= 60), None)
        second_half = [(t, v) for t, v in points if t >= duration / 2]
        processes[name] = {
            "start_mib": start_rows.get(name),
            "after_1_min_mib": after_first_minute,
            "end_mib": end_rows.get(name),
            **summary[name],
            "slope_second_half_mib_per_min": slope_mib_per_min(second_half),
        }
        print(
            f"{name}: start {start_rows.get(name)} MiB, after 1 min {after_first_minute}, "
            f"end {end_rows.get(name)}, peak {summary[name]['vm_hwm_mib']}, "
            f"slope {processes[name]['slope_second_half_mib_per_min']} MiB/min",
            file=sys.stderr,
        )
    return {
        "benchmark": "memory",
        "machine": info,
        "params": vars(args),
        "foreign_busy_pct_before": quiet,
        "loadgen": load,
        "delivered": stats["by_path"].get("/mem", 0),
        "delivery_status_counts": counts,
        "cpu_during_load": cpu,
        "processes": processes,
        "series": series,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sustain-minutes", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--name", default="memory", help="results file prefix")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    path = write_result(args.name, result)
    print(json.dumps({k: v for k, v in result.items() if k != "series"}, indent=2))
    print(f"results: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
