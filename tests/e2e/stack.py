"""Real processes for end-to-end tests: the gateway, workers, and webhook receivers on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from app.child_process import stop_with_parent
from app.embedded_redis import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    verified: bool


Behaviour = Callable[[web.Request, int], Any]  # (request, nth call to this path) -> response


@dataclass
class Receiver:
    """A webhook receiver that verifies every delivery with the official verifier."""

    secrets: dict[str, list[str]] = field(default_factory=dict)  # path -> accepted secrets
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = False
        for secret in self.secrets.get(request.path, []):
            try:
                Webhook(secret).verify(body, headers)
                verified = True
                break
            except Exception:  # noqa: S112 - the official verifier raises its own error types
                continue
        self.received.append(Received(request.path, headers, body, time.monotonic(), verified))
        behaviour = self.behaviours.get(request.path)
        if behaviour is None:
            return web.Response(status=204)
        result = behaviour(request, len(self.at(request.path)))
        if asyncio.iscoroutine(result):
            result = await result
        assert isinstance(result, web.StreamResponse)
        return result


@dataclass
class Stack:
    """`pwbi-gateway serve` plus workers as child processes, configured for fast tests."""

    env: dict[str, str]
    port: int = 0
    gateway: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    log_dir: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, command: str, name: str) -> subprocess.Popen[bytes]:
        assert self.log_dir is not None
        with (self.log_dir / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "app.cli", command],
                env={**self.env, "PYTHONPATH": str(ROOT)},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=stop_with_parent,
            )

    def start(self, log_dir: Path, workers: int = 1) -> None:
        self.log_dir = log_dir
        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
            **self.env,
            "GATEWAY_PORT": str(self.port),
            "GATEWAY_WORKER_METRICS_PORT": "0",
        }
        self.gateway = self._spawn("serve", "gateway")
        for _ in range(workers):
            self.start_worker()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"gateway not ready; see {log_dir}/gateway.log")

    def start_worker(self) -> subprocess.Popen[bytes]:
        worker = self._spawn("worker", f"worker{len(self.workers)}")
        self.workers.append(worker)
        return worker

    def kill_worker(self, index: int) -> None:
        worker = self.workers[index]
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)

    def stop(self) -> None:
        processes = [p for p in (self.gateway, *self.workers) if p is not None]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
