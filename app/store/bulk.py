"""Many rows in one statement: on PostgreSQL an INSERT ... SELECT from unnest() of arrays.

executemany sends one Bind/Execute per row: PostgreSQL starts its executor for every row, and
SQLAlchemy builds and processes a parameter set per row. The hot paths (the outbox write of a
publish batch, the attempts of a delivery batch) write tens of rows at a time, so there one
statement with a column of values per parameter costs both sides a fraction of that.
SQLite, where a statement is a function call, keeps executemany.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection


@cache
def unnest_insert(
    table: sa.Table, columns: tuple[str, ...], parameters: tuple[str, ...] | None = None
) -> sa.Insert:
    """PostgreSQL: INSERT of the rows given as one array per column, parameters `a_{column}`
    (or the names in `parameters`, column for column: an array the statement already has)."""
    # asyncpg's dialect casts each parameter to its array type, so unnest() knows its type.
    arrays = [
        sa.func.unnest(sa.bindparam(parameter, type_=postgresql.ARRAY(table.c[name].type)))
        for name, parameter in zip(
            columns, parameters or tuple(f"a_{name}" for name in columns), strict=True
        )
    ]
    return table.insert().from_select(list(columns), sa.select(*arrays))


def column_arrays(
    rows: Sequence[dict[str, Any]], prefix: str, names: Sequence[str] | None = None
) -> dict[str, list[Any]]:
    """Rows (same keys) as one list per column (every key, or `names`), keyed
    `{prefix}{column}`: unnest()'s arrays.

    A column that is NULL in every row goes as an empty array: unnest() pads the shorter
    arrays of a statement with NULLs (several arrays in one unnest() call, or several
    unnest() calls in one select list), and asyncpg encodes each array element in Python,
    checking it against abstract base classes first. A batch of successful attempts has
    three such columns (next attempt, error, response body) of eleven.
    """
    arrays: dict[str, list[Any]] = {}
    for name in names or rows[0]:
        values = [row[name] for row in rows]
        arrays[f"{prefix}{name}"] = values if any(v is not None for v in values) else []
    return arrays


async def insert_rows(
    conn: AsyncConnection, table: sa.Table, rows: Sequence[dict[str, Any]]
) -> None:
    """INSERT every row; all rows must have the same keys."""
    if not rows:
        return
    if len(rows) == 1 or conn.dialect.name != "postgresql":
        await conn.execute(table.insert(), list(rows))
        return
    await conn.execute(unnest_insert(table, tuple(rows[0])), column_arrays(rows, "a_"))
