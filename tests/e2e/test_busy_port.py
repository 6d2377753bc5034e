"""A port already taken at start-up is one line naming the setting, not a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.embedded_redis import free_port
from tests.e2e.stack import ROOT


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize(
    ("command", "setting"),
    [
        ("serve", "GATEWAY_PORT"),
        ("run", "GATEWAY_PORT"),
        ("worker", "GATEWAY_WORKER_METRICS_PORT"),
        ("run", "GATEWAY_WORKER_METRICS_PORT"),
    ],
)
def test_a_busy_port_names_its_setting(
    taken_port: int, tmp_path: Path, redis_url: str, command: str, setting: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_JWT_SECRETS": "dev=" + "x" * 40,
        "GATEWAY_PORT": str(free_port()),
        "GATEWAY_WORKER_METRICS_PORT": "0",
    }
    env[setting] = str(taken_port)
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{setting}: port {taken_port}" in result.stderr
    assert "already in use" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
