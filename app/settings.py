"""One settings object, read from GATEWAY_* environment variables and validated at start."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from app.durations import parse_duration_s
from app.security.ssrf import IPNetwork, parse_allow_cidrs

PREFIX = "GATEWAY_"
DEFAULT_VAR_DIR = Path("var")
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
# How long a process may go on accepting a disabled tenant's tokens: an operator who
# disables a tenant expects its tokens to stop at once, so never more than a second.
DEFAULT_TENANT_CACHE_S = 0.5
MAX_TENANT_CACHE_S = 1.0

LogFormat = Literal["json", "console"]
T = TypeVar("T")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable, never its value."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str | None
    jwt_issuer: str = "pwbi-gateway"
    jwt_audience: str = "pwbi-gateway"
    jwt_secrets: Mapping[str, str] = field(default_factory=dict)
    jwt_public_keys: Mapping[str, str] = field(default_factory=dict)
    jwt_jwks_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    worker_metrics_port: int = 9108
    max_body_bytes: int = 1024 * 1024
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    delivery_timeout_s: float = 15.0
    ssrf_allow_cidrs: tuple[IPNetwork, ...] = ()
    allow_http: bool = False
    log_level: str = "INFO"
    log_format: LogFormat = "json"
    secret_key: tuple[str, ...] = ()
    disable_after_s: int = 5 * 86400
    retention_days: int = 30
    public_url: str | None = None
    tenant_cache_s: float = DEFAULT_TENANT_CACHE_S
    moka_api_url: str = "https://api.mokapos.com"
    moka_client_id: str | None = None
    moka_client_secret: str | None = None

    @property
    def has_jwt_keys(self) -> bool:
        return bool(self.jwt_secrets or self.jwt_public_keys or self.jwt_jwks_url)

    def base_url(self) -> str:
        """Where partners reach the gateway; used in links the API hands out."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


def default_database_url(var_dir: Path = DEFAULT_VAR_DIR) -> str:
    return f"sqlite+aiosqlite:///{(var_dir / 'gateway.db').as_posix()}"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment; raise SettingsError naming the first bad variable."""
    env = _Env(os.environ if environ is None else environ)
    return Settings(
        database_url=env.get("DATABASE_URL", _database_url, default_database_url()),
        redis_url=env.get("REDIS_URL", _redis_url, None),
        jwt_issuer=env.get("JWT_ISSUER", _non_empty, "pwbi-gateway"),
        jwt_audience=env.get("JWT_AUDIENCE", _non_empty, "pwbi-gateway"),
        jwt_secrets=env.get("JWT_SECRETS", _keyed_list, {}),
        jwt_public_keys=env.get("JWT_PUBLIC_KEYS", _keyed_list, {}),
        jwt_jwks_url=env.get("JWT_JWKS_URL", _non_empty, None),
        host=env.get("HOST", _host, "127.0.0.1"),
        port=env.get("PORT", _port, 8080),
        worker_metrics_port=env.get("WORKER_METRICS_PORT", _port_or_zero, 9108),
        max_body_bytes=env.get("MAX_BODY_BYTES", _int_between(1024, 64 * 1024 * 1024), 1048576),
        retry_schedule=env.get("RETRY_SCHEDULE", _schedule, DEFAULT_RETRY_SCHEDULE),
        delivery_timeout_s=env.get("DELIVERY_TIMEOUT_S", _float_between(0.05, 30.0), 15.0),
        ssrf_allow_cidrs=env.get("SSRF_ALLOW_CIDRS", parse_allow_cidrs, ()),
        allow_http=env.get("ALLOW_HTTP", _bool, False),
        log_level=env.get("LOG_LEVEL", _log_level, "INFO"),
        log_format=env.get("LOG_FORMAT", _log_format, "json"),
        secret_key=env.get("SECRET_KEY", _secret_keys, ()),
        disable_after_s=env.get("DISABLE_AFTER", parse_duration_s, 5 * 86400),
        retention_days=env.get("RETENTION_DAYS", _int_between(1, 3650), 30),
        public_url=env.get("PUBLIC_URL", _http_url, None),
        tenant_cache_s=env.get(
            "TENANT_CACHE_S", _float_between(0.0, MAX_TENANT_CACHE_S), DEFAULT_TENANT_CACHE_S
        ),
        moka_api_url=env.get("MOKA_API_URL", _http_url, "https://api.mokapos.com"),
        moka_client_id=env.get("MOKA_CLIENT_ID", _non_empty, None),
        moka_client_secret=env.get("MOKA_CLIENT_SECRET", _non_empty, None),
    )


class _Env:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def get(self, name: str, parse: Callable[[str], T], default: T) -> T:
        raw = self._environ.get(PREFIX + name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except ValueError as exc:
            raise SettingsError(f"{PREFIX}{name}: {exc}") from None


def _non_empty(raw: str) -> str:
    return raw


def _database_url(raw: str) -> str:
    if not raw.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://", "postgresql://")):
        raise ValueError("must be a sqlite+aiosqlite:/// or postgresql+asyncpg:// URL")
    if raw.startswith("postgresql://"):
        return "postgresql+asyncpg://" + raw.removeprefix("postgresql://")
    return raw


def _redis_url(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return raw


def _http_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return raw


def _host(raw: str) -> str:
    if raw == "localhost":
        return raw
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        raise ValueError("must be an IP address to listen on (or 'localhost')") from None
    return raw


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"must be a whole number between {low} and {high}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _float_between(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"must be a number of seconds between {low} and {high}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


_port = _int_between(1, 65535)
_port_or_zero = _int_between(0, 65535)


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return level


def _log_format(raw: str) -> LogFormat:
    if raw == "json":
        return "json"
    if raw == "console":
        return "console"
    raise ValueError("must be 'json' or 'console'")


def _schedule(raw: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(part) for part in raw.split(","))
    except ValueError:
        raise ValueError("must be comma-separated numbers of seconds, e.g. 5,300,1800") from None
    if not delays or any(not 0 <= d <= 7 * 86400 for d in delays):
        raise ValueError("each delay must be between 0 and 604800 seconds")
    return delays


def _keyed_list(raw: str) -> dict[str, str]:
    """Parse 'kid=value,kid2=value2' (values are secrets or file paths: never echo them)."""
    entries: dict[str, str] = {}
    for position, item in enumerate(raw.split(","), start=1):
        kid, sep, value = item.strip().partition("=")
        if not sep or not kid or not value:
            raise ValueError(f"entry {position} must look like KID=VALUE")
        if kid in entries:
            raise ValueError(f"key id {kid!r} appears twice")
        entries[kid] = value
    return entries


def _secret_keys(raw: str) -> tuple[str, ...]:
    keys = tuple(part.strip() for part in raw.split(",") if part.strip())
    if any(len(k) < 32 for k in keys):
        raise ValueError("each key must be at least 32 characters")
    return keys
