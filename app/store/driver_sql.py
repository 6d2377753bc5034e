"""A hot statement run on the database driver's own connection, compiled once.

The delivery batch's two statements run hundreds of times a second per worker. Through
SQLAlchemy each execution also processes every parameter (element by element for arrays),
wraps the result, and switches greenlets; on asyncpg's connection directly, with the
statement compiled once by SQLAlchemy, only asyncpg's work is left (its statement cache
prepares each text once per connection). The caller gives parameters as asyncpg takes them:
timezone-aware datetimes, lists for arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler

# A connection that failed like this is dropped from the pool, as SQLAlchemy would drop it.
_BROKEN = (OSError, asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError)


@dataclass(frozen=True)
class DriverStatement:
    text: str
    names: tuple[str, ...]  # the parameters in $1, $2, ... order
    fixed: Mapping[str, Any]  # values of the statement's own literals

    @classmethod
    def compile(cls, statement: sa.ClauseElement) -> DriverStatement:
        compiled = statement.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
        assert isinstance(compiled, SQLCompiler)
        # Required parameters are the caller's to give (a missing one is a KeyError, not NULL).
        fixed = {
            compiled.bind_names[bind]: bind.value
            for bind in compiled.binds.values()
            if not bind.required
        }
        return cls(compiled.string, tuple(compiled.positiontup or ()), fixed)

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] if name in params else self.fixed[name] for name in self.names]


async def fetch(
    conn: AsyncConnection, statement: DriverStatement, params: Mapping[str, Any]
) -> Sequence[Sequence[Any]]:
    """The statement's rows (asyncpg records: read them by position)."""
    driver = await _driver(conn)
    try:
        rows: Sequence[Sequence[Any]] = await driver.fetch(statement.text, *statement.args(params))
    except _BROKEN:
        await conn.invalidate()
        raise
    return rows


async def execute(
    conn: AsyncConnection, statement: DriverStatement, params: Mapping[str, Any]
) -> None:
    driver = await _driver(conn)
    try:
        await driver.execute(statement.text, *statement.args(params))
    except _BROKEN:
        await conn.invalidate()
        raise


async def _driver(conn: AsyncConnection) -> Any:
    raw = await conn.get_raw_connection()
    return raw.driver_connection
