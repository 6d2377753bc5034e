"""The operator CLI as a shell user runs it: migrate, tenants, tokens, exit codes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from app.security.jwt_auth import KeyConfig, KeyRing, TokenVerifier
from tests.conftest import HS_KID, HS_SECRET

ROOT = Path(__file__).resolve().parents[2]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.usefixtures("engine")
def test_tenants_and_tokens_from_the_shell(gateway_env: dict[str, str]) -> None:
    assert cli(gateway_env, "migrate").returncode == 0
    created = cli(gateway_env, "tenants", "create", "Bakmi Jaya")
    assert created.returncode == 0, created.stderr
    tenant_id = created.stdout.strip()
    assert tenant_id.startswith("ten_")
    listed = cli(gateway_env, "tenants", "list")
    assert tenant_id in listed.stdout
    assert "Bakmi Jaya" in listed.stdout

    issued = cli(
        gateway_env,
        "tokens",
        "issue",
        "--tenant",
        tenant_id,
        "--scope",
        "subscriptions:read",
        "--scope",
        "events:write",
        "--ttl",
        "2h",
    )
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip().splitlines()[-1]
    keyring = KeyRing.load(KeyConfig(hs256_secrets={HS_KID: HS_SECRET}, public_key_files={}))
    verifier = TokenVerifier(keyring, issuer="pwbi-gateway", audience="pwbi-gateway")
    verified = asyncio.run(verifier.verify(token))
    assert verified.subject == tenant_id
    assert verified.scopes == {"subscriptions:read", "events:write"}

    disabled = cli(gateway_env, "tenants", "disable", tenant_id)
    assert disabled.returncode == 0
    refused = cli(gateway_env, "tokens", "issue", "--tenant", tenant_id)
    assert refused.returncode == 1
    assert "disabled" in refused.stderr


@pytest.mark.usefixtures("engine")
def test_cli_failures_say_why_with_the_right_exit_code(gateway_env: dict[str, str]) -> None:
    unknown = cli(gateway_env, "tokens", "issue", "--tenant", "ten_nobody")
    assert unknown.returncode == 1
    assert "no tenant ten_nobody" in unknown.stderr
    bad_ttl = cli(gateway_env, "tokens", "issue", "--tenant", "ten_x", "--ttl", "soon")
    assert bad_ttl.returncode == 1
    assert "--ttl" in bad_ttl.stderr
    bad_scope = cli(gateway_env, "tokens", "issue", "--tenant", "ten_x", "--scope", "root")
    assert bad_scope.returncode == 2
    usage = cli(gateway_env, "tenants")
    assert usage.returncode == 2
    no_keys = cli({**gateway_env, "GATEWAY_JWT_SECRETS": ""}, "tokens", "issue", "--tenant", "x")
    assert no_keys.returncode == 1
    assert "GATEWAY_JWT_SECRETS" in no_keys.stderr
    bad_setting = cli({**gateway_env, "GATEWAY_DELIVERY_TIMEOUT_S": "forever"}, "migrate")
    assert bad_setting.returncode == 1
    assert "GATEWAY_DELIVERY_TIMEOUT_S" in bad_setting.stderr


def _saved_request(secret: str, body: bytes, timestamp: int) -> bytes:
    from app.delivery.signing import webhook_headers

    headers = webhook_headers(
        msg_id="evt_01TEST", timestamp=timestamp, body=body, secrets=[secret], user_agent="t"
    )
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"POST /hooks HTTP/1.1\r\n{head}\r\n".encode() + body


def test_verify_tells_a_partner_whether_a_saved_delivery_is_genuine() -> None:
    import time

    from app.security.secret_box import new_webhook_secret

    secret = new_webhook_secret()
    body = b'{"id": "evt_01TEST", "type": "ping"}'

    def verify(raw: bytes, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.cli", "verify", "--secret", secret, *extra],
            input=raw.decode(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    good = verify(_saved_request(secret, body, int(time.time())))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "signature valid" in good.stdout
    tampered = verify(_saved_request(secret, body, int(time.time())).replace(b"ping", b"pong"))
    assert tampered.returncode == 1
    assert "FAILED" in tampered.stdout
    old = _saved_request(secret, body, int(time.time()) - 7200)
    stale = verify(old)
    assert stale.returncode == 1
    assert "too old" in stale.stdout
    assert verify(old, "--ignore-timestamp").returncode == 0
    assert secret not in good.stdout + tampered.stdout + stale.stdout
