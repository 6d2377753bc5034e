"""Shared machinery for the benchmarks: a throwaway database, child processes, RSS sampling.

Every benchmark runs the real thing as separate processes on 127.0.0.1:

* a receiver (``bench/receiver.py``, uvicorn) that answers webhooks and records arrivals,
* ``python -m app.cli serve`` (the gateway) and ``python -m app.cli worker`` (arq workers),
* load generators (``wrk``, ``bench/loadgen.py``, ``bench/raw_post.py``),

against the machine's PostgreSQL (a fresh ``pwbi_bench_<hex>`` database, dropped at the end)
and Redis db 12 (FLUSHDB before each run and at the end; never FLUSHALL).
Nothing here is part of the test suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
import asyncpg
import redis

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
# A run from a snapshot (bench/snapshot.sh) writes back into the repository's bench/results.
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or BENCH / "results")
PYTHON = sys.executable

PG_ADMIN_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
# 40 characters; only for these throwaway databases.
JWT_SECRET = "bench-only-jwt-secret-0123456789abcdefgh"
assert len(JWT_SECRET) == 40

HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine_info() -> dict[str, Any]:
    """What the run ran on, and how busy the machine already was (other work skews numbers)."""
    source = ROOT / ".bench_source"
    if source.exists():  # a snapshot made by bench/snapshot.sh: a clean copy of one commit
        snapshot = json.loads(source.read_text())
        return {
            "date": now_iso(),
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "git_head": snapshot["commit"][:7],
            "source": snapshot["source"],
            "dirty_files": [],
        }
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    return {
        "date": now_iso(),
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "git_head": git,
        "dirty_files": [line[3:] for line in dirty],
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    (RESULTS / f"{name}-latest.json").write_text(json.dumps(result, indent=2, default=str))
    return path


# --- child processes -----------------------------------------------------------------------


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Processes:
    """Every child a benchmark starts; stop_all() ends them (TERM, then KILL) in reverse order."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Child:
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                list(argv),
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal reaches only the orchestrator
            )
        child = Child(name, process, log)
        self.children.append(child)
        return child

    def stop(self, child: Child, timeout_s: float = STOP_TIMEOUT_S) -> None:
        if child.alive():
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
            try:
                child.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait(timeout=timeout_s)
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        for child in list(reversed(self.children)):
            try:
                self.stop(child)
            except Exception as exc:  # keep stopping the others
                print(f"warning: stopping {child.name}: {exc!r}", file=sys.stderr)


def read_status_kib(pid: int, field_name: str) -> int | None:
    """VmRSS / VmHWM from /proc (kB), or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler:
    """Samples the RSS (MiB) of named children every interval in a thread; keeps peaks."""

    def __init__(self, interval_s: float = 1.0, max_samples: int = 100_000) -> None:
        self.interval_s = interval_s
        self.max_samples = max_samples
        self.watched: dict[str, int] = {}
        self.peak_mib: dict[str, float] = {}
        self.hwm_mib: dict[str, float] = {}
        self.series: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()

    def watch(self, child: Child) -> None:
        self.watched[child.name] = child.pid

    def unwatch(self, child: Child) -> None:
        """Record the kernel's high-water mark before the process goes away."""
        hwm = read_status_kib(child.pid, "VmHWM")
        if hwm is not None:
            self.hwm_mib[child.name] = max(self.hwm_mib.get(child.name, 0.0), hwm / 1024)
        self.watched.pop(child.name, None)

    def sample(self) -> dict[str, float]:
        row: dict[str, float] = {}
        for name, pid in list(self.watched.items()):
            rss = read_status_kib(pid, "VmRSS")
            if rss is None:
                continue
            mib = rss / 1024
            row[name] = round(mib, 1)
            self.peak_mib[name] = max(self.peak_mib.get(name, 0.0), mib)
            hwm = read_status_kib(pid, "VmHWM")
            if hwm is not None:
                self.hwm_mib[name] = max(self.hwm_mib.get(name, 0.0), hwm / 1024)
        if len(self.series) < self.max_samples:
            self.series.append({"t": round(time.monotonic() - self._t0, 1), **row})
        return row

    def reset_series(self) -> None:
        """Start the series (and its clock) afresh; peaks are kept."""
        self.series.clear()
        self._t0 = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def summary(self) -> dict[str, dict[str, float]]:
        names = sorted(set(self.peak_mib) | set(self.hwm_mib))
        return {
            n: {
                "peak_sampled_rss_mib": round(self.peak_mib.get(n, 0.0), 1),
                "vm_hwm_mib": round(self.hwm_mib.get(n, 0.0), 1),
            }
            for n in names
        }


# --- the stack ------------------------------------------------------------------------------


@dataclass
class Subscription:
    id: str
    path: str
    secret: str


@dataclass
class BenchStack:
    """A database, Redis db, receiver and (on demand) gateway + workers, all torn down on exit."""

    name: str
    receiver_hang_s: float = 20.0
    database: str = field(default_factory=lambda: f"pwbi_bench_{secrets.token_hex(4)}")
    log_dir: Path = field(init=False)
    processes: Processes = field(init=False)
    rss: RssSampler = field(default_factory=RssSampler)
    env: dict[str, str] = field(default_factory=dict)
    tenant_id: str = ""
    token: str = ""
    receiver: Child | None = None
    receiver_port: int = 0
    gateway: Child | None = None
    gateway_port: int = 0
    workers: list[Child] = field(default_factory=list)
    _db_created: bool = False
    _pool: asyncpg.Pool | None = None
    _worker_serial: int = 0

    def __post_init__(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.log_dir = RESULTS / "logs" / f"{self.name}-{stamp}"
        self.processes = Processes(self.log_dir)

    # lifecycle

    async def __aenter__(self) -> Self:
        try:
            await self._setup()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def database_dsn(self) -> str:
        return PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{self.database}"

    async def _setup(self) -> None:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'CREATE DATABASE "{self.database}"')
            self._db_created = True
        finally:
            await admin.close()
        flush_redis()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
            "GATEWAY_DATABASE_URL": "postgresql+asyncpg://"
            + self.database_dsn.removeprefix("postgresql://"),
            "GATEWAY_REDIS_URL": REDIS_URL,
            "GATEWAY_JWT_SECRETS": f"bench={JWT_SECRET}",
            "GATEWAY_SSRF_ALLOW_CIDRS": "127.0.0.1/32",
            "GATEWAY_ALLOW_HTTP": "true",
            "GATEWAY_LOG_LEVEL": "WARNING",
            "GATEWAY_WORKER_METRICS_PORT": "0",
            "GATEWAY_HOST": HOST,
        }
        self._cli("migrate")
        self.tenant_id = self._cli("tenants", "create", f"bench {self.name}")
        self.token = self._cli("tokens", "issue", "--tenant", self.tenant_id, "--ttl", "1d")
        self._pool = await asyncpg.create_pool(self.database_dsn, min_size=1, max_size=2)
        self.rss.start()

    def _cli(self, *args: str) -> str:
        done = subprocess.run(
            [PYTHON, "-m", "app.cli", *args],
            cwd=ROOT,
            env={**self.env, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pwbi-gateway {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout.strip().splitlines()[-1]

    async def aclose(self) -> None:
        for child in [*self.workers, self.gateway, self.receiver]:
            if child is not None:
                self.rss.unwatch(child)
        self.rss.stop()
        self.processes.stop_all()
        self.workers.clear()
        self.gateway = None
        self.receiver = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._db_created:
            admin = await asyncpg.connect(PG_ADMIN_DSN)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
                self._db_created = False
            finally:
                await admin.close()
        flush_redis()

    # processes

    async def start_receiver(self) -> None:
        self.receiver_port = free_port()
        self.receiver = self.processes.spawn(
            "receiver",
            [
                PYTHON,
                str(BENCH / "receiver.py"),
                "--port",
                str(self.receiver_port),
                "--hang-s",
                str(self.receiver_hang_s),
            ],
        )
        await wait_http(f"{self.receiver_url}/stats", self.receiver)
        self.rss.watch(self.receiver)

    @property
    def receiver_url(self) -> str:
        return f"http://{HOST}:{self.receiver_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{HOST}:{self.gateway_port}"

    async def start_gateway(self) -> Child:
        self.gateway_port = free_port()
        self.gateway = self.processes.spawn(
            "gateway",
            [PYTHON, "-m", "app.cli", "serve"],
            {**self.env, "GATEWAY_PORT": str(self.gateway_port)},
        )
        await wait_http(f"{self.gateway_url}/readyz", self.gateway)
        self.rss.watch(self.gateway)
        return self.gateway

    def start_workers(self, count: int) -> list[Child]:
        started = []
        for _ in range(count):
            name = f"worker{self._worker_serial}"
            self._worker_serial += 1
            child = self.processes.spawn(name, [PYTHON, "-m", "app.cli", "worker"], self.env)
            self.workers.append(child)
            self.rss.watch(child)
            started.append(child)
        return started

    def stop_workers(self) -> None:
        for child in list(self.workers):
            self.rss.unwatch(child)
            self.processes.stop(child)
            self.workers.remove(child)

    def children(self) -> list[Child]:
        return [c for c in (self.receiver, self.gateway, *self.workers) if c is not None]

    async def own_pids(self, *extra: Child) -> dict[str, list[int]]:
        """Our children, plus the PostgreSQL backends connected to our database."""
        pids = {c.name: [c.pid] for c in [*self.children(), *extra]}
        pids["orchestrator"] = [os.getpid()]
        rows = await self.sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            self.database,
        )
        pids["postgres_own"] = [int(r["pid"]) for r in rows]
        return pids

    async def cpu_meter(self, *extra: Child) -> CpuMeter:
        meter = CpuMeter(await self.own_pids(*extra))
        meter.start()
        return meter

    async def cpu_meter_stop(self, meter: CpuMeter, *extra: Child) -> dict[str, Any]:
        meter.add(await self.own_pids(*extra))
        return meter.stop()

    async def wait_for_quiet(self, *extra: Child) -> float:
        return await wait_for_quiet(lambda: self.own_pids(*extra))

    def check_alive(self) -> None:
        for child in [self.receiver, self.gateway, *self.workers]:
            if child is not None and not child.alive():
                raise RuntimeError(f"{child.name} exited early:\n{child.tail()}")

    # API helpers

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def subscribe(
        self, path: str, event_types: Sequence[str] = ("*",), **extra: Any
    ) -> Subscription:
        body = {"url": f"{self.receiver_url}{path}", "event_types": list(event_types), **extra}
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{self.gateway_url}/v1/subscriptions", json=body, headers=self.auth
            ) as response,
        ):
            text = await response.text()
            if response.status != 201:
                raise RuntimeError(f"subscribe {path}: {response.status} {text}")
            created = json.loads(text)
        return Subscription(id=created["id"], path=path, secret=created["secret"])

    async def publish_many(self, body: bytes, count: int, concurrency: int = 20) -> list[str]:
        """POST the same event `count` times; returns the event ids (raises on any non-202)."""
        ids: list[str] = []
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(count):
            queue.put_nowait(index)
        headers = {**self.auth, "content-type": "application/json"}

        async def worker(session: aiohttp.ClientSession) -> None:
            while True:
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                async with session.post(
                    f"{self.gateway_url}/v1/events", data=body, headers=headers
                ) as response:
                    text = await response.text()
                    if response.status != 202:
                        raise RuntimeError(f"publish: {response.status} {text}")
                    ids.append(json.loads(text)["id"])

        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return ids

    # observation

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        assert self._pool is not None
        return list(await self._pool.fetch(query, *args))

    async def delivery_counts(self) -> dict[str, int]:
        rows = await self.sql("SELECT status, count(*) AS n FROM deliveries GROUP BY status")
        return {r["status"]: int(r["n"]) for r in rows}

    async def receiver_get(self, path: str) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.receiver_url}{path}") as response,
        ):
            return await response.json(content_type=None)

    async def receiver_reset(self) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.receiver_url}/reset") as response,
        ):
            await response.read()


async def wait_http(url: str, child: Child, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
        while time.monotonic() < deadline:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited:\n{child.tail()}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{child.name} not ready at {url} in {timeout_s:.0f} s:\n{child.tail()}")


def flush_redis() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert (
            client.connection_pool.connection_kwargs.get("db") == 12
            or "BENCH_REDIS_URL" in os.environ
        )
        client.flushdb()
    finally:
        client.close()


def event_body(event_type: str = "order.created") -> bytes:
    """A valid publish body from the contract's examples."""
    from contracts.canonical import EXAMPLES

    return json.dumps(EXAMPLES[event_type], separators=(",", ":")).encode()


async def sample_payload(stack: BenchStack) -> bytes:
    """The envelope the gateway actually sends (stored verbatim in events.payload)."""
    rows = await stack.sql("SELECT payload FROM events LIMIT 1")
    return str(rows[0]["payload"]).encode()


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    started = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - started)


async def run_json(
    argv: Sequence[str], timeout_s: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run a helper process (killed after timeout_s) and parse the JSON line it prints last."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
    except (TimeoutError, asyncio.CancelledError):
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"{argv[1]} failed ({process.returncode}): {stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


async def run_text(argv: Sequence[str], timeout_s: float, env: dict[str, str] | None = None) -> str:
    """Run a tool (killed after timeout_s) and return its stdout."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        stdout, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    except (TimeoutError, asyncio.CancelledError):
        process.kill()
        await process.wait()
        raise
    return stdout.decode(errors="replace")


def cpu_seconds(pid: int) -> float | None:
    """user+system CPU seconds a process has used so far (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def cpu_by_command(names: Sequence[str]) -> dict[str, float]:
    """Total CPU seconds of every process whose command name starts with one of names
    (postgres, redis-server): their share of a run is the difference of two readings."""
    totals = dict.fromkeys(names, 0.0)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as comm:
                command = comm.read().strip()
        except OSError:
            continue
        for name in names:
            if command.startswith(name):
                totals[name] += cpu_seconds(int(entry)) or 0.0
    return totals


def machine_busy() -> tuple[float, float, float, float]:
    """(busy, total, irq+softirq, steal) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])
    return float(total - idle), float(total), float(values[5] + values[6]), float(values[7])


class CpuMeter:
    """CPU used between start() and stop(): the machine, each named pid, all postgres/redis.

    `pids` maps a name to one or more pids (e.g. "postgres_own": the backends serving our
    database, as opposed to "postgres", every postgres process on the machine).
    """

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self._machine = (0.0, 0.0, 0.0, 0.0)
        self._own: dict[int, float] = {}
        self._shared: dict[str, float] = {}
        self._wall = 0.0

    def start(self) -> None:
        self._machine = machine_busy()
        self._own = {pid: cpu_seconds(pid) or 0.0 for pids in self.pids.values() for pid in pids}
        self._shared = cpu_by_command(["postgres", "redis-server"])
        self._wall = time.monotonic()

    def add(self, pids: dict[str, list[int]]) -> None:
        """Processes that appeared during the window (new pool connections): all their CPU
        time was spent inside it."""
        for name, more in pids.items():
            known = self.pids.setdefault(name, [])
            for pid in more:
                if pid not in self._own:
                    known.append(pid)
                    self._own[pid] = 0.0

    def stop(self) -> dict[str, Any]:
        busy, total, irq, steal = machine_busy()
        wall = time.monotonic() - self._wall
        shared = cpu_by_command(["postgres", "redis-server"])
        used: dict[str, float] = {}
        for name, pids in self.pids.items():
            spent = 0.0
            for pid in pids:
                now = cpu_seconds(pid)
                if now is not None:
                    spent += now - self._own.get(pid, 0.0)
            used[name] = round(spent, 2)
        for name, value in shared.items():
            used[f"{name}_all"] = round(value - self._shared.get(name, 0.0), 2)
        spent_total = total - self._machine[1]
        ticks = os.sysconf("SC_CLK_TCK")
        # Interrupt time (loopback networking runs in softirq) is charged to no process.
        irq_s = (irq - self._machine[2]) / ticks
        used["irq_softirq"] = round(irq_s, 2)
        ours = sum(used[name] for name in self.pids) + used["redis-server_all"] + irq_s
        cpus = os.cpu_count() or 1
        return {
            "wall_s": round(wall, 2),
            "machine_busy_pct": round(100 * (busy - self._machine[0]) / spent_total, 1)
            if spent_total
            else None,
            # Everything not ours (other users' work on the machine), % of all CPUs.
            "foreign_busy_pct": round(
                max(0.0, 100 * (busy - self._machine[0]) / spent_total - 100 * ours / wall / cpus),
                1,
            )
            if spent_total and wall
            else None,
            # Time the VM's host gave to others while we had work (counted in foreign too):
            # the source of most stalls on a shared VM.
            "steal_pct": round(100 * (steal - self._machine[3]) / spent_total, 1)
            if spent_total
            else None,
            "cpu_s": used,
        }


QUIET_BUSY_PCT = 10.0


async def wait_for_quiet(
    own_pids: Callable[[], Awaitable[dict[str, list[int]]]],
    max_wait_s: float = 120.0,
    window_s: float = 2.0,
) -> float:
    """Wait (bounded) until work other than ours uses < QUIET_BUSY_PCT of the machine.

    Other work on the machine (test suites, builds) steals the same 2 cores and skews a
    benchmark. Returns the foreign busy % of the last window, recorded with the results.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        pids = own_pids
        meter = CpuMeter(await pids())
        meter.start()
        await asyncio.sleep(window_s)
        meter.add(await pids())
        foreign = float(meter.stop()["foreign_busy_pct"] or 0.0)
        if foreign < QUIET_BUSY_PCT or time.monotonic() >= deadline:
            if foreign >= QUIET_BUSY_PCT:
                print(
                    f"warning: other work still uses {foreign:.0f}% of the machine; "
                    "measuring anyway",
                    file=sys.stderr,
                )
            return round(foreign, 1)


def py_spy_available() -> bool:
    return shutil.which("py-spy") is not None or (Path(PYTHON).parent / "py-spy").exists()


def py_spy_argv(pid: int, seconds: float, out: Path) -> list[str]:
    """`py-spy record` of one process as collapsed stacks (text; see bench/profile_top.py).

    BENCH_PROFILE_NATIVE=1 adds C frames (uvloop, asyncpg's and aiohttp's compiled parts),
    which the default profile charges to the Python frame that called them.
    """
    exe = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    # py-spy reads native stacks only while the process is paused (no --nonblocking).
    native = os.environ.get("BENCH_PROFILE_NATIVE") == "1"
    mode = ["--native"] if native else ["--nonblocking"]
    return [
        exe,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--format",
        "raw",
        "--rate",
        "200",
        *mode,
        "--output",
        str(out),
    ]


async def run_rate_load(
    stack: BenchStack,
    body: bytes,
    *,
    rate: float,
    duration_s: float,
    sent_file: Path | None = None,
    slack_s: float = 120.0,
) -> dict[str, Any]:
    """Open-loop load (`loadgen.py rate`, its own process) on POST /v1/events; its summary.

    With `sent_file`, the send time, status and event id of every request are kept there.
    """
    with tempfile.TemporaryDirectory() as tmp:
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)
        argv = [
            PYTHON,
            str(BENCH / "loadgen.py"),
            "rate",
            "--url",
            f"{stack.gateway_url}/v1/events",
            "--token",
            stack.token,
            "--body",
            str(body_file),
            "--rate",
            str(rate),
            "--duration",
            str(duration_s),
        ]
        if sent_file is not None:
            argv += ["--out", str(sent_file)]
        return await run_json(argv, timeout_s=duration_s + slack_s)


async def measure_ops(
    op: Callable[[], Awaitable[Any]], ops: int, concurrency: int
) -> dict[str, float]:
    """CPU (this process) and wall time of `ops` calls of `op` from `concurrency` tasks,
    after 50 warm-up calls."""
    for _ in range(50):
        await op()
    per_task = ops // concurrency

    async def loop() -> None:
        for _ in range(per_task):
            await op()

    wall = time.perf_counter()
    cpu = time.process_time()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    done = per_task * concurrency
    return {
        "ops_per_s": round(done / wall, 1),
        "cpu_us_per_op": round(cpu / done * 1e6, 1),
        "wall_us_per_op_at_c1": round(wall / done * 1e6, 1) if concurrency == 1 else -1,
    }
