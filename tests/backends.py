"""Which real backends this test run has: PostgreSQL and Redis, found or started."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis

POSTGRES_URL = os.environ.get(
    "GATEWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379")
# Tests flush their Redis database: they use db 11 unless the URL names one explicitly.
REDIS_DB_GIVEN = urlsplit(REDIS_URL).path.strip("/").isdigit()
# Comma-separated backends that must be present (CI sets "postgresql"): skipping them fails.
REQUIRED = {b.strip() for b in os.environ.get("GATEWAY_TEST_REQUIRE", "").split(",") if b.strip()}


@dataclass
class BackendReport:
    """What ran where, printed at the end of the run so skipped backends are never silent."""

    used: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


report = BackendReport()


@functools.cache
def postgres_available() -> str | None:
    """None when reachable, else the reason."""

    async def probe() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:  # any failure to connect means "not available"
        return f"PostgreSQL at {POSTGRES_URL.split('@')[-1]} unreachable ({type(exc).__name__})"
    return None


def create_postgres_database() -> tuple[str, str]:
    """A throwaway database for this run: (sqlalchemy url, name)."""
    name = f"pwbi_test_{secrets.token_hex(4)}"

    async def create() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    base = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}", name


@contextlib.contextmanager
def throwaway_postgres_database() -> Iterator[str]:
    """A fresh database's SQLAlchemy url for one test, dropped after it; the test skips
    without PostgreSQL, or fails when the run requires it."""
    problem = postgres_available()
    if problem:
        if "postgresql" in REQUIRED:
            pytest.fail(f"PostgreSQL required: {problem}")
        pytest.skip(problem)
    url, name = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(name)


def drop_postgres_database(name: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


def redis_reachable(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False
