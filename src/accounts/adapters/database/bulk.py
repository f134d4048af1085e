"""Many rows through one statement: how every unit of work writes what it kept (see `journal.py`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

# A statement compiled once per dialect and set of keys: its SQL, and for each parameter (in the
# driver's order, or by name) the row key and SQLAlchemy's own converter, or a value fixed in the
# statement (such as the 1 of `version + 1`). The stored forms stay SQLAlchemy's.
_Parameter = tuple[str, Callable[[Any], Any] | None, bool, Any]
_Compiled = tuple[str, list[_Parameter], bool]
_COMPILED: dict[tuple[int, str, tuple[str, ...]], tuple[sa.Executable, _Compiled]] = {}


def _compile(connection: sa.Connection, statement: sa.Executable, keys: tuple[str, ...]) -> _Compiled:
    dialect = connection.dialect
    cache_key = (id(statement), dialect.name, keys)
    cached = _COMPILED.get(cache_key)
    if cached is not None and cached[0] is statement:
        return cached[1]
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))  # type: ignore[attr-defined]
    if compiled.literal_execute_params or compiled.post_compile_params:
        raise TypeError(f"not a statement for executemany: {compiled.string}")
    processors = compiled._bind_processors
    positional = compiled.positiontup is not None
    names = compiled.positiontup if positional else list(compiled.binds)
    parameters: list[_Parameter] = []
    for name in names:
        process = processors.get(name)
        if name in keys:
            parameters.append((name, process, False, None))
        else:
            value = compiled.binds[name].effective_value
            parameters.append((name, None, True, value if process is None else process(value)))
    result: _Compiled = (compiled.string, parameters, positional)
    _COMPILED[cache_key] = (statement, result)
    return result


def executemany(connection: sa.Connection, statement: sa.Executable, rows: Sequence[dict[str, Any]]) -> int:
    """Run `statement` once for each row, in order; return the number of rows it changed.

    `statement` is built once (a module constant): its compiled form is kept for reuse. The rows
    go straight to the driver's executemany (SQLite's, or psycopg's pipeline), converted by
    SQLAlchemy's own bind processors: half the cost of `Connection.execute`, which rebuilds
    every row's parameters through its generic machinery. Every row has the first row's keys.
    """
    if not rows:
        return 0
    if _copyable(connection, statement):
        return _copy(connection, statement, rows)  # type: ignore[arg-type]
    sql, parameters, positional = _compile(connection, statement, tuple(rows[0]))
    converted: list[Any]
    if positional:
        converted = [
            tuple(
                constant if fixed else row[name] if process is None else process(row[name])
                for name, process, fixed, constant in parameters
            )
            for row in rows
        ]
    else:
        converted = [
            {
                name: constant if fixed else row[name] if process is None else process(row[name])
                for name, process, fixed, constant in parameters
            }
            for row in rows
        ]
    with _driver_cursor(connection, sql) as cursor:
        cursor.executemany(sql, converted)
        return int(cursor.rowcount)


@contextlib.contextmanager
def _driver_cursor(connection: sa.Connection, sql: str) -> Iterator[Any]:
    """A cursor of the driver's own, in the connection's transaction; its errors as SQLAlchemy's (see `translate`)."""
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        yield cursor
    except Exception as error:
        base = connection.dialect.loaded_dbapi.Error
        if isinstance(error, base):
            raise sa.exc.DBAPIError.instance(sql, None, error, base, dialect=connection.dialect) from error
        raise
    finally:
        cursor.close()


def _copyable(connection: sa.Connection, statement: sa.Executable) -> bool:
    """A plain INSERT on PostgreSQL (no ON CONFLICT, no RETURNING): COPY takes its rows in one stream."""
    return (
        connection.dialect.driver == "psycopg"
        and isinstance(statement, sa.Insert)
        and statement._post_values_clause is None
        and not statement._returning
        and statement.select is None
    )


def _copy(connection: sa.Connection, statement: sa.Insert, rows: Sequence[dict[str, Any]]) -> int:
    """The rows through COPY ... FROM STDIN, converted by SQLAlchemy's bind processors as executemany's are."""
    keys = tuple(rows[0])
    _, parameters, _ = _compile(connection, statement, keys)
    process = {name: processor for name, processor, _fixed, _constant in parameters}
    order = [(key, process.get(key)) for key in keys]
    table = statement.table
    preparer = connection.dialect.identifier_preparer
    columns = ", ".join(preparer.quote(key) for key in keys)
    sql = f"COPY {preparer.format_table(table)} ({columns}) FROM STDIN"
    with _driver_cursor(connection, sql) as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row([row[key] if convert is None else convert(row[key]) for key, convert in order])
    return len(rows)
