"""Specifications for GATEWAY_* settings: defaults, parsing, and errors that name the variable."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.settings import DEFAULT_RETRY_SCHEDULE, Settings, SettingsError, load_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NEW_SECRET_KEY = "new-key-0123456789-0123456789-abc"
OLD_SECRET_KEY = "old-key-0123456789-0123456789-abc"


def test_defaults_without_any_variable() -> None:
    settings = load_settings({})
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.database_url.endswith("var/gateway.db")
    assert settings.redis_url is None
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.max_body_bytes == 1048576
    assert settings.retry_schedule == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert settings.retry_schedule == DEFAULT_RETRY_SCHEDULE
    assert settings.delivery_timeout_s == 15.0
    assert settings.log_format == "json"
    assert settings.log_level == "INFO"
    assert settings.allow_http is False
    assert settings.ssrf_allow_cidrs == ()
    assert settings.secret_key == ()
    assert dict(settings.jwt_secrets) == {}
    assert settings.jwt_issuer == settings.jwt_audience == "pwbi-gateway"
    assert settings.disable_after_s == 5 * 86400
    assert not settings.has_jwt_keys


def test_blank_values_fall_back_to_defaults() -> None:
    settings = load_settings({"GATEWAY_PORT": "  ", "GATEWAY_LOG_FORMAT": ""})
    assert settings.port == 8080
    assert settings.log_format == "json"


def test_variables_without_the_gateway_prefix_are_ignored() -> None:
    assert load_settings({"PORT": "abc", "DATABASE_URL": "mysql://x"}).port == 8080


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("PORT", "0"),
        ("MAX_BODY_BYTES", "-1"),
        ("RETRY_SCHEDULE", "5,soon"),
        ("RETRY_SCHEDULE", "5,-1"),
        ("DELIVERY_TIMEOUT_S", "99"),
        ("SSRF_ALLOW_CIDRS", "10.0.0.0/33"),
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "loud"),
        ("DATABASE_URL", "mysql://x"),
        ("REDIS_URL", "http://x"),
        ("JWT_SECRETS", "nokey"),
        ("SECRET_KEY", "short"),
        ("ALLOW_HTTP", "maybe"),
        ("DISABLE_AFTER", "soon"),
        ("HOST", "example.com"),
        ("PUBLIC_URL", "ftp://x"),
        ("RETENTION_DAYS", "0"),
    ],
)
def test_a_malformed_value_raises_an_error_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({f"GATEWAY_{name}": raw})
    message = str(caught.value)
    assert message.startswith(f"GATEWAY_{name}")
    assert message.removeprefix(f"GATEWAY_{name}").strip(": ")


@pytest.mark.parametrize(
    ("name", "raw", "secrets"),
    [
        ("JWT_SECRETS", "nokey", ["nokey"]),
        ("JWT_SECRETS", "Sup3rSecretWithoutKid", ["Sup3rSecretWithoutKid"]),
        ("JWT_SECRETS", "kid1=Sup3rSecretValueOne,=Sup3rSecretValueTwo", ["Sup3rSecretValue"]),
        ("JWT_SECRETS", "kid1=Sup3rSecretValueOne,kid1=Sup3rSecretValueTwo", ["Sup3rSecret"]),
        ("SECRET_KEY", "short", ["short"]),
        ("SECRET_KEY", "Sup3rShortSecret", ["Sup3rShortSecret"]),
        ("SECRET_KEY", "a-long-enough-secret-key-0123456789,Sup3rShort", ["Sup3r", "long-enough"]),
    ],
)
def test_errors_about_secret_variables_never_contain_the_secret(
    name: str, raw: str, secrets: list[str]
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({f"GATEWAY_{name}": raw})
    message = str(caught.value)
    assert message.startswith(f"GATEWAY_{name}")
    for secret in secrets:
        assert secret not in message
    assert raw not in message


def test_the_first_bad_variable_is_reported_even_when_others_are_fine() -> None:
    with pytest.raises(SettingsError, match=r"^GATEWAY_LOG_FORMAT"):
        load_settings({"GATEWAY_PORT": "9000", "GATEWAY_LOG_FORMAT": "xml"})


def test_valid_values_parse() -> None:
    settings = load_settings(
        {
            "GATEWAY_DATABASE_URL": "postgresql://gw:pw@127.0.0.1:5432/gateway",
            "GATEWAY_REDIS_URL": "redis://127.0.0.1:6379/2",
            "GATEWAY_PORT": "9000",
            "GATEWAY_MAX_BODY_BYTES": "2048",
            "GATEWAY_RETRY_SCHEDULE": "1, 2.5,60",
            "GATEWAY_DELIVERY_TIMEOUT_S": "2.5",
            "GATEWAY_SSRF_ALLOW_CIDRS": "10.0.0.0/8, 127.0.0.1/32",
            "GATEWAY_ALLOW_HTTP": "yes",
            "GATEWAY_LOG_LEVEL": "debug",
            "GATEWAY_LOG_FORMAT": "console",
            "GATEWAY_JWT_SECRETS": "a=s1,b=s2",
            "GATEWAY_SECRET_KEY": f"{NEW_SECRET_KEY},{OLD_SECRET_KEY}",
            "GATEWAY_DISABLE_AFTER": "120h",
            "GATEWAY_PUBLIC_URL": "https://gateway.pwbi.test",
        }
    )
    assert settings.database_url == "postgresql+asyncpg://gw:pw@127.0.0.1:5432/gateway"
    assert settings.redis_url == "redis://127.0.0.1:6379/2"
    assert settings.port == 9000
    assert settings.max_body_bytes == 2048
    assert settings.retry_schedule == (1.0, 2.5, 60.0)
    assert settings.delivery_timeout_s == 2.5
    assert settings.ssrf_allow_cidrs == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("127.0.0.1/32"),
    )
    assert settings.allow_http is True
    assert settings.log_level == "DEBUG"
    assert settings.log_format == "console"
    assert dict(settings.jwt_secrets) == {"a": "s1", "b": "s2"}
    assert settings.secret_key == (NEW_SECRET_KEY, OLD_SECRET_KEY)
    assert settings.disable_after_s == 432000
    assert settings.has_jwt_keys
    assert settings.base_url() == "https://gateway.pwbi.test"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:///var/other.db",
        "postgresql+asyncpg://gw@127.0.0.1/gateway",
    ],
)
def test_supported_database_urls_are_kept_as_given(url: str) -> None:
    assert load_settings({"GATEWAY_DATABASE_URL": url}).database_url == url


def test_jwt_secret_values_may_contain_equals_signs() -> None:
    settings = load_settings({"GATEWAY_JWT_SECRETS": "k1=c2VjcmV0==, k2=a=b"})
    assert dict(settings.jwt_secrets) == {"k1": "c2VjcmV0==", "k2": "a=b"}


@pytest.mark.parametrize(
    ("raw", "seconds"), [("90s", 90), ("15m", 900), ("120h", 432000), ("30d", 2592000)]
)
def test_disable_after_accepts_units(raw: str, seconds: int) -> None:
    assert load_settings({"GATEWAY_DISABLE_AFTER": raw}).disable_after_s == seconds


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("on", True), ("OFF", False)])
def test_allow_http_accepts_the_usual_spellings(raw: str, expected: bool) -> None:
    assert load_settings({"GATEWAY_ALLOW_HTTP": raw}).allow_http is expected


def test_base_url_without_public_url_points_at_the_listener() -> None:
    assert Settings(database_url="sqlite+aiosqlite://", redis_url=None).base_url() == (
        "http://127.0.0.1:8080"
    )
    wildcard = load_settings({"GATEWAY_HOST": "0.0.0.0", "GATEWAY_PORT": "9000"})  # noqa: S104
    assert wildcard.base_url() == "http://127.0.0.1:9000"
    assert load_settings({"GATEWAY_HOST": "::1"}).base_url() == "http://[::1]:8080"


# --- the CLI -----------------------------------------------------------------------------


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env={**clean, **env},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_exits_1_naming_a_malformed_variable() -> None:
    result = run_cli("tenants", "list", GATEWAY_PORT="abc")
    assert result.returncode == 1, result.stderr
    assert "GATEWAY_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_cli_never_prints_a_malformed_secret() -> None:
    result = run_cli("tenants", "list", GATEWAY_SECRET_KEY="Sup3rShortSecret")
    assert result.returncode == 1, result.stderr
    assert "GATEWAY_SECRET_KEY" in result.stderr
    assert "Sup3rShortSecret" not in result.stdout + result.stderr


def test_the_cli_exits_2_on_an_unknown_command() -> None:
    result = run_cli("no-such-command")
    assert result.returncode == 2, result.stderr
    assert "usage" in result.stderr.lower()
