"""`pwbi-gateway run`: migrate, start Redis if needed, the gateway and a worker, print a token."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import httpx

from app.child_process import stop_with_parent
from app.embedded_redis import EmbeddedRedis, EmbeddedRedisUnavailable, start_embedded_redis
from app.port_check import ensure_port_free
from app.security.jwt_auth import ALL_SCOPES, issue_token
from app.settings import DEFAULT_VAR_DIR, Settings, SettingsError, load_settings
from app.store.engine import create_engine
from app.store.migrate import upgrade_to_head
from app.store.tenants import create_tenant, find_tenant_by_name

DEMO_TENANT = "demo"
DEV_KID = "dev"
READY_TIMEOUT_S = 60
DEFAULT_GATEWAY_URL = "http://127.0.0.1:8080"  # what `listen` assumes without --gateway
# Local mode: a receiver on this machine (`pwbi-gateway listen`, a local dev server) can be
# subscribed. `serve` keeps the production rule (public https URLs only).
LOCAL_MODE = {
    "GATEWAY_SSRF_ALLOW_CIDRS": "127.0.0.0/8,::1/128",
    "GATEWAY_ALLOW_HTTP": "true",
}


def _dev_jwt_secret(var_dir: Path) -> str:
    """A per-checkout signing secret, kept so demo tokens survive restarts."""
    path = var_dir / "dev-jwt-secret"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return secret


async def _demo_tenant_id(settings: Settings) -> str:
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            tenant = await find_tenant_by_name(conn, DEMO_TENANT)
            if tenant is None:
                tenant = await create_tenant(conn, DEMO_TENANT, actor="operator:run")
            return tenant.id
    finally:
        await engine.dispose()


def _wait_ready(url: str, children: list[subprocess.Popen[bytes]]) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            return False
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def _stop(children: list[subprocess.Popen[bytes]], redis: EmbeddedRedis | None) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=25)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    if redis is not None:
        redis.stop()


def run_everything(settings: Settings) -> int:
    var_dir = DEFAULT_VAR_DIR
    env = dict(os.environ)
    if not settings.has_jwt_keys:
        env["GATEWAY_JWT_SECRETS"] = f"{DEV_KID}={_dev_jwt_secret(var_dir)}"
    env.setdefault("GATEWAY_LOG_FORMAT", "console")
    for name, value in LOCAL_MODE.items():
        if not env.get(name, "").strip():
            env[name] = value

    # Before anything starts: a taken port is then one clear line, not two children failing.
    try:
        ensure_port_free(settings.host, settings.port, "GATEWAY_PORT")
        if settings.worker_metrics_port:
            ensure_port_free(
                settings.host, settings.worker_metrics_port, "GATEWAY_WORKER_METRICS_PORT"
            )
    except SettingsError as exc:
        print(f"pwbi-gateway: {exc}", file=sys.stderr)
        return 1

    print(f"migrating {settings.database_url.split('@')[-1]}", flush=True)
    upgrade_to_head(settings.database_url)

    redis: EmbeddedRedis | None = None
    if settings.redis_url is None:
        try:
            redis = start_embedded_redis(var_dir / "redis")
        except EmbeddedRedisUnavailable as exc:
            print(f"pwbi-gateway: {exc}", file=sys.stderr)
            return 1
        env["GATEWAY_REDIS_URL"] = redis.url
        print(f"embedded Redis on {redis.url}", flush=True)
    settings = load_settings(env)

    command = [sys.executable, "-m", "app.cli"]
    children = [
        subprocess.Popen([*command, "serve"], env=env, preexec_fn=stop_with_parent),  # noqa: S603
        subprocess.Popen([*command, "worker"], env=env, preexec_fn=stop_with_parent),  # noqa: S603
    ]

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    # Ctrl-C must stop everything even when started from a shell that ignores SIGINT for
    # its background jobs (Python then keeps SIGINT ignored instead of raising on it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        url = settings.base_url()
        if not _wait_ready(url, children):
            print(
                "pwbi-gateway: the gateway did not become ready; see the log above", file=sys.stderr
            )
            return 1
        tenant_id = asyncio.run(_demo_tenant_id(settings))
        kid, secret = next(iter(settings.jwt_secrets.items()))
        token = issue_token(
            kid=kid,
            secret=secret,
            subject=tenant_id,
            scopes=ALL_SCOPES,
            ttl_s=30 * 86400,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
        print(
            f"\npwbi-gateway is ready at {url}  (API docs: {url}/schema)\n"
            "local mode: webhooks may go to loopback and plain-http receivers "
            "(`serve` allows neither)\n"
            f"  GATEWAY_SSRF_ALLOW_CIDRS={env['GATEWAY_SSRF_ALLOW_CIDRS']}"
            f" GATEWAY_ALLOW_HTTP={env['GATEWAY_ALLOW_HTTP']}\n"
            f"demo tenant: {tenant_id}\n"
            f"demo token (all scopes, 30 days):\n\n"
            f"export TOKEN={token}\n\n"
            "See a first webhook: paste the export line into another shell, then run\n"
            "  .venv/bin/pwbi-gateway listen"
            + ("" if url == DEFAULT_GATEWAY_URL else f" --gateway {url}")
            + "\n\nCtrl-C stops everything.",
            flush=True,
        )
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("pwbi-gateway: a child process exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
        return 0
    finally:
        _stop(children, redis)
