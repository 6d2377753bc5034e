"""Hot statements run on the database driver's own connections, compiled once.

The delivery batch's two statements run hundreds of times a second per worker. Through
SQLAlchemy each execution also checks a connection out of the pool and back, processes
every parameter (element by element for arrays), wraps the result, and switches greenlets;
on asyncpg's connection directly, with the statement compiled once by SQLAlchemy, only
asyncpg's work is left (its statement cache prepares each text once per connection). The
caller gives parameters as asyncpg takes them: timezone-aware datetimes, lists for arrays.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler


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

    @classmethod
    def compile_text(cls, sql: str) -> DriverStatement:
        """PostgreSQL text with `:name` parameters (each given a type by a CAST)."""
        return cls.compile(sa.text(sql))

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] if name in params else self.fixed[name] for name in self.names]


class HeldConnections:
    """A few pooled connections kept checked out for hot statements, handed out in turn.

    Taking a connection from SQLAlchemy's pool and giving it back costs about as much CPU as
    running the statement (measured: ~130 us a checkout against ~120 us for the execution
    of a ten-row record), and a delivery batch runs two statements. These connections are
    taken once and reused; one that breaks is closed, and the next use opens another. One
    lost during a statement raises the driver's error (asyncpg's InterfaceError or
    PostgresConnectionError; whether the statement committed is then unknown).
    `session_settings` (names and values of our own, not user input) are SET on each
    connection when it is opened and RESET before it goes back to the pool.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        size: int = 2,
        *,
        session_settings: Mapping[str, str] | None = None,
    ) -> None:
        # Autocommit: each statement stands alone (no BEGIN/COMMIT round trips).
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._size = size
        self._settings = dict(session_settings or {})
        self._opened = 0
        self._free: list[_Held] = []
        self._waiting: deque[asyncio.Future[_Held | None]] = deque()

    async def fetch(
        self, statement: DriverStatement, params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """The statement's rows (asyncpg records: read them by position)."""
        rows: Sequence[Sequence[Any]] = await self._run("fetch", statement, params)
        return rows

    async def execute(self, statement: DriverStatement, params: Mapping[str, Any]) -> None:
        await self._run("execute", statement, params)

    async def _run(self, method: str, statement: DriverStatement, params: Mapping[str, Any]) -> Any:
        held = await self._take()
        try:
            result = await getattr(held.driver, method)(statement.text, *statement.args(params))
        except BaseException as exc:
            await self._give_back(held, exc)
            raise
        await self._give_back(held, None)
        return result

    async def close(self) -> None:
        free, self._free = self._free, []
        for held in free:
            try:
                for name in self._settings:
                    await held.driver.execute(f"RESET {name}")
            except Exception:
                await self._drop(held)  # broken: not back to the pool with our settings
                continue
            self._opened -= 1
            await held.conn.close()

    async def _take(self) -> _Held:
        while True:
            if self._free:
                idle = self._free.pop()
                if await self._alive(idle):
                    return idle
                continue
            if self._opened < self._size:
                self._opened += 1
                try:
                    return await self._open()
                except BaseException:
                    self._opened -= 1
                    self._hand(None)  # a waiter may try its own luck
                    raise
            waiter: asyncio.Future[_Held | None] = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._hand(waiter.result())  # handed over just as we gave up
                raise
            if handed is not None and await self._alive(handed):
                return handed
            # None (or lost): a connection was dropped, there is room to open one.

    async def _open(self) -> _Held:
        conn = await self._engine.connect()
        try:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection  # asyncpg.Connection
            for name, value in self._settings.items():
                await driver.execute(f"SET {name} = {value}")
        except BaseException:
            await _discard(conn)
            raise
        return _Held(conn, driver)

    async def _alive(self, held: _Held) -> bool:
        """False for a connection lost while idle (a database restart, an idle timeout):
        nothing was sent on it, so the statement goes to a new one instead of failing."""
        if not held.driver.is_closed():
            return True
        await self._drop(held)
        return False

    async def _give_back(self, held: _Held, error: BaseException | None) -> None:
        if error is not None and not _statement_refused(held, error):
            # Broken, or interrupted mid-statement (cancelled): its state is unknown.
            await self._drop(held)
            self._hand(None)
            return
        self._hand(held)

    async def _drop(self, held: _Held) -> None:
        self._opened -= 1
        await _discard(held.conn)

    def _hand(self, held: _Held | None) -> None:
        """To the first waiter (None: room to open a connection), or back to the free list."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(held)
                return
        if held is not None:
            self._free.append(held)


async def _discard(conn: AsyncConnection) -> None:
    """Close a connection whose state is unknown, not back into the pool."""
    with contextlib.suppress(Exception):
        await conn.invalidate()
        await conn.close()


def _statement_refused(held: _Held, error: BaseException) -> bool:
    """Whether PostgreSQL refused the statement on a connection that is still good.

    asyncpg reports a lost connection as a PostgresError too (PostgresConnectionError), and
    a server shutting the session down (AdminShutdownError) closes it.
    """
    return (
        isinstance(error, asyncpg.PostgresError)
        and not isinstance(error, asyncpg.PostgresConnectionError)
        and not held.driver.is_closed()
    )


@dataclass(frozen=True, slots=True)
class _Held:
    conn: AsyncConnection
    driver: Any  # asyncpg.Connection
