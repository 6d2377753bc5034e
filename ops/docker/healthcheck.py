"""Container liveness check for both roles of the pwbi-gateway image (stdlib only).

`serve`  -> GET http://<host>:$GATEWAY_PORT/healthz must answer 200.
`worker` -> GET http://<host>:$GATEWAY_WORKER_METRICS_PORT/metrics must answer 200
            (with the metrics port turned off, 0, there is nothing to probe: healthy).
other    -> one-shot commands (migrate, tenants, ...) are healthy while they run.

The role is the first argument, else the subcommand on PID 1's command line (the image's
ENTRYPOINT is `pwbi-gateway`, so PID 1 is `python .../pwbi-gateway serve|worker|...`).
Exit 0 healthy, 1 unhealthy (Docker's HEALTHCHECK contract); the reason goes to stdout,
which `docker inspect` shows.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROLES = ("serve", "worker")
TIMEOUT_S = 3.0


def role_from_pid1(cmdline: Path = Path("/proc/1/cmdline")) -> str:
    try:
        words = cmdline.read_bytes().split(b"\0")
    except OSError:
        return "unknown"
    for word in words:
        text = word.decode("utf-8", "replace")
        if text in ROLES:
            return text
    return "other"


def probe_url(role: str, environ: dict[str, str]) -> str | None:
    host = environ.get("GATEWAY_HOST", "127.0.0.1").strip() or "127.0.0.1"
    if host in ("0.0.0.0", "::"):  # noqa: S104 - listening on all interfaces: probe loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    if role == "serve":
        port = environ.get("GATEWAY_PORT", "8080").strip() or "8080"
        return f"http://{host}:{port}/healthz"
    if role == "worker":
        port = environ.get("GATEWAY_WORKER_METRICS_PORT", "9108").strip() or "9108"
        return None if port == "0" else f"http://{host}:{port}/metrics"
    return None


def check(url: str) -> tuple[bool, str]:
    # No proxy: the probe is always to this container's own loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=TIMEOUT_S) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return False, f"{url} answered {exc.code}"
    except (OSError, ValueError) as exc:
        return False, f"{url} unreachable: {type(exc).__name__}: {exc}"
    return status == 200, f"{url} answered {status}"


def main(argv: list[str]) -> int:
    role = argv[1] if len(argv) > 1 else role_from_pid1()
    url = probe_url(role, dict(os.environ))
    if url is None:
        print(f"healthy: role {role} has nothing to probe")
        return 0
    ok, message = check(url)
    print(("healthy: " if ok else "UNHEALTHY: ") + message)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
