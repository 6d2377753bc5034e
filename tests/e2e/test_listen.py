"""`pwbi-gateway listen` against a real gateway and worker, run as a newcomer runs it."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

from app.embedded_redis import free_port
from tests.e2e.conftest import StackFactory
from tests.e2e.stack import ROOT
from tests.e2e.test_delivery import api, publish

Lines = queue.Queue[str]


def _reader(process: subprocess.Popen[str], into: Lines) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        into.put(line)


def _wait_for(lines: Lines, pattern: str, seen: list[str], timeout: float = 30) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if match := re.search(pattern, line):
            return match
    raise AssertionError(f"no line matching {pattern!r}; output:\n{''.join(seen)}")


async def test_listen_prints_verified_deliveries_and_unsubscribes_on_ctrl_c(
    make_stack: StackFactory, auth_token: str
) -> None:
    stack = make_stack()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env |= {"TOKEN": auth_token, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "listen", "--gateway", stack.base_url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: Lines = queue.Queue()
    seen: list[str] = []
    threading.Thread(target=_reader, args=(process, lines), daemon=True).start()
    try:
        subscription_id = _wait_for(lines, r"subscription (sub_\S+)", seen).group(1)
        listed = await api(stack, "GET", f"/v1/subscriptions/{subscription_id}", auth_token)
        assert listed.status_code == 200
        assert listed.json()["url"].startswith("http://127.0.0.1:")

        event_id = await publish(stack, auth_token)
        line = _wait_for(lines, re.escape(event_id), seen).string
        assert "order.created" in line
        assert "signature verified" in line
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    assert process.returncode == 0, "".join(seen)
    _wait_for(lines, rf"deleted subscription {subscription_id}", seen, timeout=5)
    gone = await api(stack, "GET", f"/v1/subscriptions/{subscription_id}", auth_token)
    assert gone.status_code == 404


def test_listen_without_a_gateway_says_so() -> None:

    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env |= {"TOKEN": "x.y.z", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "listen",
            "--gateway",
            f"http://127.0.0.1:{free_port()}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot reach the gateway" in result.stderr
    assert "x.y.z" not in result.stderr + result.stdout
