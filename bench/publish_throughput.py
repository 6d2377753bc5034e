"""Goal 2: POST /v1/events throughput vs a bare Litestar msgspec-decode-and-202 handler.

Both servers run under uvicorn with the same options, one process each (``app/serve.py``,
``bench/bare_app.py``). The gateway has ``--subscriptions`` subscriptions that match the
event (pointing at the loopback receiver), so every request writes 1 event + N delivery
rows to PostgreSQL in one transaction and enqueues a job in Redis. By default no worker
runs (jobs pile up in Redis; publishing is measured alone); ``--workers N`` runs N workers
at the same time (they compete for the same 2 cores).

Load: ``wrk -t2 -c50 -d15s`` with ``bench/post.lua`` (body + bearer token), alternating
bare / gateway for ``--repeat`` rounds after a short warm-up; without wrk,
``bench/loadgen.py closed`` at the same concurrency and duration. Goal: gateway >= 0.3 x bare.

    .venv/bin/python bench/publish_throughput.py [--duration 15] [--connections 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH,
    PYTHON,
    BenchStack,
    Child,
    event_body,
    free_port,
    machine_info,
    median,
    py_spy_argv,
    py_spy_available,
    run_json,
    run_text,
    wait_http,
    write_result,
)

GOAL_RATIO = 0.3
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        return float("nan")
    return round(float(match[1]) * _UNITS[match[2]], 2)


def parse_wrk(output: str) -> dict[str, Any]:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    latency = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.MULTILINE))
    if rps is None or total is None:
        raise RuntimeError(f"cannot parse wrk output:\n{output}")
    requests = int(total[1])
    bad = int(non2xx[1]) if non2xx else 0
    return {
        "rps": float(rps[1]),
        "requests": requests,
        "non_2xx": bad,
        "ok_rps": round(float(rps[1]) * (requests - bad) / requests, 1) if requests else 0.0,
        "socket_errors": errors[1].strip() if errors else None,
        "latency_ms": {f"p{q}": _ms(v) for q, v in latency.items()},
    }


async def load(
    url: str, token: str, body_file: Path, args: argparse.Namespace, duration: float
) -> dict[str, Any]:
    if shutil.which("wrk") and not args.no_wrk:
        output = await run_text(
            [
                "wrk",
                f"-t{args.threads}",
                f"-c{args.connections}",
                f"-d{duration:.0f}s",
                "--timeout",
                "10s",
                "--latency",
                "-s",
                str(BENCH / "post.lua"),
                url,
            ],
            timeout_s=duration + 60,
            env={"BENCH_BODY_FILE": str(body_file), "BENCH_TOKEN": token},
        )
        return {"tool": "wrk", **parse_wrk(output)}
    result = await run_json(
        [
            PYTHON,
            str(BENCH / "loadgen.py"),
            "closed",
            "--url",
            url,
            "--token",
            token,
            "--body",
            str(body_file),
            "--duration",
            str(duration),
            "--concurrency",
            str(args.connections),
        ],
        timeout_s=duration + 90,
    )
    return {
        "tool": "loadgen",
        "rps": result["rps"],
        "requests": result["requests"],
        "non_2xx": result["requests"] - result["statuses"].get("202", 0),
        "ok_rps": result["ok_rps"],
        "latency_ms": result["response_ms"],
    }


async def measure(
    stack: BenchStack,
    server: Child,
    url: str,
    token: str,
    body_file: Path,
    args: argparse.Namespace,
    profile_out: Path | None = None,
) -> dict[str, Any]:
    extra = [server] if server is not stack.gateway else []
    quiet = await stack.wait_for_quiet(*extra)
    meter = await stack.cpu_meter(*extra)
    profile: asyncio.Task[str] | None = None
    if profile_out is not None:
        seconds = max(1.0, args.duration - 4)
        await_later = run_text(py_spy_argv(server.pid, seconds, profile_out), seconds + 60)
        profile = asyncio.create_task(_delayed(2.0, await_later))
    result = await load(url, token, body_file, args, args.duration)
    if profile is not None:
        await profile
    cpu = await stack.cpu_meter_stop(meter, *extra)
    result["cpu"] = cpu
    requests = max(1, result["requests"])
    result["cpu_ms_per_request"] = {
        name: round(1000 * spent / requests, 3) for name, spent in cpu["cpu_s"].items()
    }
    result["foreign_busy_pct_before"] = quiet
    stack.check_alive()
    return result


async def _delayed(seconds: float, work: Any) -> Any:
    await asyncio.sleep(seconds)
    return await work


async def run(args: argparse.Namespace) -> dict[str, Any]:
    info = machine_info()
    async with BenchStack("publish") as stack:
        await stack.start_receiver()
        await stack.start_gateway()
        for index in range(args.subscriptions):
            await stack.subscribe(f"/pub{index}", event_types=["order.*"])
        if args.workers:
            stack.start_workers(args.workers)
        bare_port = free_port()
        bare = stack.processes.spawn(
            "bare_app", [PYTHON, str(BENCH / "bare_app.py"), "--port", str(bare_port)]
        )
        await wait_http(f"http://127.0.0.1:{bare_port}/readyz", bare)
        stack.rss.watch(bare)
        assert stack.gateway is not None
        gateway_url = f"{stack.gateway_url}/v1/events"
        bare_url = f"http://127.0.0.1:{bare_port}/v1/events"
        with tempfile.TemporaryDirectory() as tmp:
            body_file = Path(tmp) / "body.json"
            body_file.write_bytes(event_body())
            # Sanity: the body is accepted and fans out to every subscription.
            accepted = await stack.publish_many(body_file.read_bytes(), 1, concurrency=1)
            assert accepted
            warm = argparse.Namespace(**{**vars(args), "duration": args.warmup})
            await load(bare_url, "", body_file, warm, args.warmup)
            await load(gateway_url, stack.token, body_file, warm, args.warmup)
            rounds = []
            for rep in range(args.repeat):
                bare_result = await measure(stack, bare, bare_url, "", body_file, args)
                profile_out = None
                if args.profile and rep == 0 and py_spy_available():
                    profile_out = stack.log_dir / "gateway-profile.txt"
                gw_result = await measure(
                    stack, stack.gateway, gateway_url, stack.token, body_file, args, profile_out
                )
                ratio = gw_result["ok_rps"] / bare_result["ok_rps"]
                print(
                    f"round {rep + 1}: bare {bare_result['ok_rps']}/s, "
                    f"gateway {gw_result['ok_rps']}/s, ratio {ratio:.3f}",
                    file=sys.stderr,
                )
                rounds.append(
                    {
                        "bare": bare_result,
                        "gateway": gw_result,
                        "ratio": round(ratio, 3),
                        "profile": str(profile_out) if profile_out else None,
                    }
                )
        counts = await stack.sql(
            "SELECT (SELECT count(*) FROM events) AS events, "
            "(SELECT count(*) FROM deliveries) AS deliveries"
        )
        stack.rss.unwatch(bare)
        rss = stack.rss.summary()
    ratios = [r["ratio"] for r in rounds]
    return {
        "benchmark": "publish_throughput",
        "machine": info,
        "params": vars(args),
        "bare_rps_median": median([r["bare"]["ok_rps"] for r in rounds]),
        "gateway_rps_median": median([r["gateway"]["ok_rps"] for r in rounds]),
        "ratio_median": round(median(ratios), 3),
        "goal_ratio": GOAL_RATIO,
        "pass": median(ratios) >= GOAL_RATIO,
        "rows_written": {k: int(v) for k, v in dict(counts[0]).items()},
        "rounds": rounds,
        "rss_mib": rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--subscriptions", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="workers running meanwhile")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-wrk", action="store_true", help="use bench/loadgen.py instead")
    parser.add_argument("--profile", action="store_true", help="py-spy the gateway (round 1)")
    parser.add_argument("--name", default="publish_throughput", help="results file prefix")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    path = write_result(args.name, result)
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}, indent=2))
    print(f"results: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
