"""`pwbi-gateway run` (what `make run` starts) on a fresh folder, used the way the README says."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from app.embedded_redis import free_port

ROOT = Path(__file__).resolve().parents[2]


def _read_until_token(process: subprocess.Popen[str], deadline: float) -> tuple[str, str]:
    assert process.stdout is not None
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if match := re.match(r"^export TOKEN=(\S+)$", line.strip()):
            return match.group(1), "".join(seen)
    raise AssertionError("no token printed:\n" + "".join(seen))


def _drain(process: subprocess.Popen[str], into: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        into.append(line)


def test_run_starts_everything_prints_a_working_token_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env |= {
        "GATEWAY_PORT": str(port),
        "GATEWAY_WORKER_METRICS_PORT": str(metrics_port),
        "PYTHONPATH": str(ROOT),
    }
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "run"],
        cwd=tmp_path,  # a fresh folder: the database and Redis live under its var/
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    later_output: list[str] = []
    try:
        token, output = _read_until_token(process, started + 60)
        banner_at = time.monotonic()
        # Keep reading: the children log to this pipe, and a full pipe would block them.
        threading.Thread(target=_drain, args=(process, later_output), daemon=True).start()
        assert f"http://127.0.0.1:{port}" in output
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/readyz").status_code == 200
        assert time.monotonic() - started < 60
        assert (tmp_path / "var" / "gateway.db").exists()

        auth = {"Authorization": f"Bearer {token}"}
        created = httpx.post(
            f"{base}/v1/subscriptions",
            json={"url": "https://93.184.216.34/webhooks", "event_types": ["order.*"]},
            headers=auth,
        )
        assert created.status_code == 201, created.text
        sub_id = created.json()["id"]
        listed = httpx.get(f"{base}/v1/subscriptions", headers=auth).json()
        assert [s["id"] for s in listed["data"]] == [sub_id]
        rotated = httpx.post(f"{base}/v1/subscriptions/{sub_id}/rotate-secret", headers=auth)
        assert rotated.status_code == 200
        assert rotated.json()["secret"] != created.json()["secret"]
        assert httpx.delete(f"{base}/v1/subscriptions/{sub_id}", headers=auth).status_code == 204

        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert metrics.status_code == 200  # the worker is up and serving its metrics

        # Local mode, said in the banner: a plain-http receiver on this machine is accepted.
        assert "local mode" in output
        assert "GATEWAY_SSRF_ALLOW_CIDRS" in output
        local = httpx.post(
            f"{base}/v1/subscriptions",
            json={"url": "http://127.0.0.1:9/webhooks", "event_types": ["*"]},
            headers=auth,
        )
        assert local.status_code == 201, local.text
        httpx.delete(f"{base}/v1/subscriptions/{local.json()['id']}", headers=auth)

        # A chunked body over the limit is refused without being read to the end.
        def chunks() -> object:
            yield b'{"url": "https://93.184.216.34/", "event_types": ["*"], "description": "'
            for _ in range(2048):
                yield b"x" * 1024
            yield b'"}'

        too_big = httpx.post(
            f"{base}/v1/subscriptions",
            content=chunks(),  # type: ignore[arg-type]
            headers={**auth, "content-type": "application/json"},
        )
        assert too_big.status_code == 413
        assert too_big.headers["content-type"].startswith("application/problem+json")
        # The sweep runs every 3 s: at least one runs after the banner.
        time.sleep(max(0.0, banner_at + 3.5 - time.monotonic()))
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            tail = "".join(later_output[-60:])
            message = f"still running 40 s after Ctrl-C; its last output:\n{tail}"
            raise AssertionError(message) from None
    assert process.returncode == 0, "".join(later_output[-60:])
    # The sweep's start/finish lines stay off the console.
    assert not [line for line in later_output if "cron:sweep" in line]
    # Every child is gone: nothing answers on either port any more.
    for gone in (port, metrics_port):
        try:
            httpx.get(f"http://127.0.0.1:{gone}/healthz", timeout=1)
        except httpx.TransportError:
            continue
        raise AssertionError(f"port {gone} still answers after Ctrl-C")
