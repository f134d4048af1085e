"""Many rows through one statement, for the write paths that handle thousands of rows at a time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

# SQLite: a statement compiled once per set of keys, with its parameter order and SQLAlchemy's own
# converters (the stored forms stay SQLAlchemy's), for the driver's executemany. See `executemany`.
_Compiled = tuple[str, list[tuple[str, Callable[[Any], Any] | None, bool, Any]]]
_COMPILED: dict[tuple[int, tuple[str, ...]], tuple[sa.Executable, _Compiled]] = {}


def _compile_for_sqlite(connection: sa.Connection, statement: sa.Executable, keys: tuple[str, ...]) -> _Compiled:
    cache_key = (id(statement), keys)
    cached = _COMPILED.get(cache_key)
    if cached is not None and cached[0] is statement:
        return cached[1]
    compiled = statement.compile(dialect=connection.dialect, column_keys=list(keys))  # type: ignore[attr-defined]
    if compiled.positiontup is None or compiled.literal_execute_params or compiled.post_compile_params:
        raise TypeError(f"not a statement for executemany: {compiled.string}")
    processors = compiled._bind_processors
    order = []
    for name in compiled.positiontup:
        process = processors.get(name)
        if name in keys:
            order.append((name, process, False, None))
        else:  # a value fixed in the statement, such as the 1 of `version + 1`
            value = compiled.binds[name].effective_value
            order.append((name, None, True, value if process is None else process(value)))
    result: _Compiled = (compiled.string, order)
    _COMPILED[cache_key] = (statement, result)
    return result


def executemany(connection: sa.Connection, statement: sa.Executable, rows: Sequence[dict[str, Any]]) -> int:
    """Run `statement` once for each row, in order; return the number of rows it changed.

    `statement` is built once (a module constant): on SQLite its compiled form is kept for reuse.

    On SQLite the rows go straight to the driver's executemany, converted by SQLAlchemy's own
    bind processors: half the cost of `Connection.execute`, which rebuilds every row's parameters
    through its generic machinery. Elsewhere (PostgreSQL) `Connection.execute` as usual.
    """
    if not rows:
        return 0
    if connection.dialect.name != "sqlite":
        return int(connection.execute(statement, list(rows)).rowcount)
    sql, order = _compile_for_sqlite(connection, statement, tuple(rows[0]))
    parameters = [
        tuple(
            constant if fixed else row[name] if process is None else process(row[name])
            for name, process, fixed, constant in order
        )
        for row in rows
    ]
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, parameters)
        return int(cursor.rowcount)
    except Exception as error:
        base = connection.dialect.loaded_dbapi.Error
        if isinstance(error, base):
            raise sa.exc.DBAPIError.instance(sql, None, error, base, dialect=connection.dialect) from error
        raise
    finally:
        cursor.close()
