"""Shared fixtures: real SQL (SQLite and PostgreSQL), real Redis, the app, tenants, tokens."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.embedded_redis import EmbeddedRedis, start_embedded_redis
from app.http.app import create_app
from app.security.jwt_auth import ALL_SCOPES, issue_token
from app.settings import Settings, load_settings
from app.store.engine import create_engine
from app.store.migrate import upgrade_to_head
from app.store.tables import metadata
from app.store.tenants import create_tenant
from tests import backends
from tests.unfinished_check import unfinished_out_of_step
from workers.queue import queue_connection

HS_KID = "test-hs"
HS_SECRET = "test-secret-0123456789-0123456789-abcdef"
RSA_KID = "test-rsa"
TEST_REDIS_DB = 11


def pytest_report_header() -> list[str]:
    return [
        f"backends: PostgreSQL {backends.POSTGRES_URL.split('@')[-1]}, Redis {backends.REDIS_URL}"
    ]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.section("backends")
    for name, where in sorted(backends.report.used.items()):
        terminalreporter.write_line(f"used     {name}: {where}")
    for name, why in sorted(backends.report.skipped.items()):
        terminalreporter.write_line(f"SKIPPED  {name}: {why}")


# --- Redis -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = (
        backends.REDIS_URL
        if backends.REDIS_DB_GIVEN
        else f"{backends.REDIS_URL.rstrip('/')}/{TEST_REDIS_DB}"
    )
    base = url.rsplit("/", 1)[0]
    embedded: EmbeddedRedis | None = None
    if backends.redis_reachable(url):
        backends.report.used["redis"] = base
    else:
        if "redis" in backends.REQUIRED:
            pytest.fail(f"Redis required but unreachable at {base}")
        embedded = start_embedded_redis(tmp_path_factory.mktemp("redis"))
        url = embedded.url
        backends.report.used["redis"] = f"embedded redis-server ({url})"
        backends.report.skipped["redis (machine)"] = f"{base} unreachable; used an embedded one"
    yield url
    if embedded is not None:
        embedded.stop()


# --- SQL ---------------------------------------------------------------------------------


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Each SQL test runs once per backend; PostgreSQL gets a throwaway database."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "gateway.db"
        url = f"sqlite+aiosqlite:///{path}"
        upgrade_to_head(url)
        backends.report.used["sqlite"] = "temporary file"
        yield url
        return
    problem = backends.postgres_available()
    if problem:
        backends.report.skipped["postgresql"] = problem
        if "postgresql" in backends.REQUIRED:
            pytest.fail(f"PostgreSQL required: {problem}")
        pytest.skip(problem)
    url, name = backends.create_postgres_database()
    backends.report.used["postgresql"] = f"database {name} (dropped after the run)"
    try:
        upgrade_to_head(url)
        yield url
    finally:
        backends.drop_postgres_database(name)


@pytest.fixture
def backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    async with engine.connect() as conn:
        problems = await unfinished_out_of_step(conn)
    # Every test starts from empty tables; truncating is far cheaper than migrating again.
    async with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(sa.delete(table))
    await engine.dispose()
    assert not problems, "unfinished_deliveries out of step:\n" + "\n".join(problems[:20])


# --- keys and settings -------------------------------------------------------------------


@pytest.fixture(scope="session")
def rsa_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def rsa_public_key_file(
    rsa_private_key: rsa.RSAPrivateKey, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("keys") / "rsa.pem"
    path.write_bytes(
        rsa_private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.fixture
def gateway_env(database_url: str, redis_url: str, rsa_public_key_file: Path) -> dict[str, str]:
    return {
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_JWT_SECRETS": f"{HS_KID}={HS_SECRET}",
        "GATEWAY_JWT_PUBLIC_KEYS": f"{RSA_KID}={rsa_public_key_file}",
        "GATEWAY_LOG_FORMAT": "json",
        "GATEWAY_MAX_BODY_BYTES": "65536",
        # Tests disable tenants and expect the very next request to be refused.
        "GATEWAY_TENANT_CACHE_S": "0",
    }


@pytest.fixture
def settings(gateway_env: dict[str, str]) -> Settings:
    return load_settings(gateway_env)


@pytest.fixture
async def app(settings: Settings, engine: AsyncEngine) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        yield client


# --- tenants and tokens ------------------------------------------------------------------


@pytest.fixture
async def tenant_id(engine: AsyncEngine) -> str:
    async with engine.begin() as conn:
        return (await create_tenant(conn, "Warung Nusantara", actor="test")).id


@pytest.fixture
async def other_tenant_id(engine: AsyncEngine) -> str:
    async with engine.begin() as conn:
        return (await create_tenant(conn, "Kopi Senja", actor="test")).id


TokenFactory = Callable[..., str]


@pytest.fixture
def make_token() -> TokenFactory:
    def make(tenant: str, scopes: tuple[str, ...] = ALL_SCOPES, ttl_s: int = 3600) -> str:
        return issue_token(
            kid=HS_KID,
            secret=HS_SECRET,
            subject=tenant,
            scopes=scopes,
            ttl_s=ttl_s,
            issuer="pwbi-gateway",
            audience="pwbi-gateway",
        )

    return make


@pytest.fixture
def auth(tenant_id: str, make_token: TokenFactory) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(tenant_id)}"}


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Loopback only: a proxy variable in the environment must never reroute test traffic.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    os.environ.setdefault("GATEWAY_LOG_LEVEL", "WARNING")


@pytest.fixture
def auth_token(tenant_id: str, make_token: TokenFactory) -> str:
    return make_token(tenant_id)


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[ArqRedis]:
    """The job queue the app uses, emptied first so job counts mean this test's jobs."""
    connection = queue_connection(redis_url)
    await connection.flushdb()
    yield connection
    await connection.aclose()
