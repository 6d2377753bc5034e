"""What the workers' HTTP client costs per POST against raw aiohttp, in one process.

`app.delivery.http_client.WebhookClient.post` (SSRF-vetted connector, per-request timeout,
the first 4 KiB of the response read) and a plain `aiohttp.ClientSession.post` send the
same 1.9 KB body with gateway-shaped headers to `bench/receiver.py` at concurrency 50
(tasks in one uvloop event loop), alternating for `--rounds` rounds. Reports CPU per
request in this process and requests/s: the share of a worker's CPU per delivery that is
the HTTP request itself, and how much of it is ours rather than aiohttp's.

    .venv/bin/python -m bench.client_overhead [--requests 6000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from app.delivery.http_client import WebhookClient
from app.security.ssrf import AddressPolicy
from bench.common import (
    BENCH,
    PYTHON,
    Processes,
    free_port,
    machine_info,
    measure_ops,
    median,
    wait_http,
    write_result,
)

BODY = b'{"type": "order.created", "data": "' + b"x" * 1880 + b'"}'
HEADERS = {
    "content-type": "application/json",
    "webhook-id": "msg_01M8M5YPBEK5T3DR1FHCMM4M5N",
    "webhook-timestamp": "1795973668",
    "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    "user-agent": "pwbi-gateway",
}
CONCURRENCY = 50


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    client = WebhookClient(AddressPolicy(allow_cidrs=(ipaddress.ip_network("127.0.0.0/8"),)))
    await client.start()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=CONCURRENCY),
        timeout=aiohttp.ClientTimeout(total=15),
    )

    async def ours() -> None:
        result = await client.post(url, BODY, HEADERS, timeout_s=15)
        if result.status_code != 204:
            raise RuntimeError(f"receiver answered {result}")

    async def raw() -> None:
        async with session.post(url, data=BODY, headers=HEADERS) as response:
            await response.read()
            if response.status != 204:
                raise RuntimeError(f"receiver answered {response.status}")

    rounds = []
    try:
        # Every pooled connection opened before anything is measured.
        await measure_ops(raw, 500, CONCURRENCY)
        await measure_ops(ours, 500, CONCURRENCY)
        for number in range(args.rounds):
            result = {"raw": await measure_ops(raw, args.requests, CONCURRENCY)}
            result["webhook_client"] = await measure_ops(ours, args.requests, CONCURRENCY)
            result["cpu_factor"] = round(
                result["webhook_client"]["cpu_us_per_op"] / result["raw"]["cpu_us_per_op"], 3
            )
            print(f"round {number + 1}: {json.dumps(result)}", file=sys.stderr)
            rounds.append(result)
    finally:
        await client.close()
        await session.close()
    return {
        "benchmark": "client_overhead",
        "machine": machine_info(),
        "params": vars(args),
        "cpu_factor_median": median([r["cpu_factor"] for r in rounds]),
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--name", default="client_overhead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as logs:
        processes = Processes(Path(logs))
        try:
            port = free_port()
            receiver = processes.spawn(
                "receiver", [PYTHON, str(BENCH / "receiver.py"), "--port", str(port)]
            )
            url = f"http://127.0.0.1:{port}/client"
            result = uvloop.run(_ready_then_run(args, url, receiver))
        finally:
            processes.stop_all()
    path = write_result(args.name, result)
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}, indent=2))
    print(f"results: {path}", file=sys.stderr)


async def _ready_then_run(args: argparse.Namespace, url: str, receiver: Any) -> dict[str, Any]:
    await wait_http(url.rsplit("/", 1)[0] + "/stats", receiver)
    return await run(args, url)


if __name__ == "__main__":
    main()
