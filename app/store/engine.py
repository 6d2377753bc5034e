"""Async engine creation: SQLite in WAL mode with a busy timeout, or PostgreSQL via asyncpg."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def ensure_sqlite_directory(url: str) -> None:
    """The default database lives under var/; create the folder so a fresh clone just works."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str, *, pool_size: int = 20) -> AsyncEngine:
    if is_sqlite(url):
        ensure_sqlite_directory(url)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; take the write lock up front
        # so concurrent writers queue on busy_timeout instead of failing on upgrade.
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    # No overflow: under load, overflow connections are opened and closed per checkout (a TLS
    # negotiation and authentication each time); waiting briefly for a pooled one is cheaper.
    # No pre-ping either: it costs a round trip per checkout; a dead connection is replaced
    # when it fails (pool_recycle bounds their age).
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=30,
        pool_recycle=1800,
        connect_args={"ssl": False} if _is_loopback(url) else {},
    )


def _is_loopback(url: str) -> bool:
    host = make_url(url).host or ""
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("/")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, issue BEGIN (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")
