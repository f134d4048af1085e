"""Engines for SQLite (embedded) and PostgreSQL.

SQLite: WAL so readers never wait for the writer, a busy timeout so writers queue
rather than fail, and write transactions started with BEGIN IMMEDIATE: a deferred
transaction that reads and then writes can fail at once when another writer got in
between, which is exactly the race the API's PATCH and the listener create.
"""

from __future__ import annotations

import contextlib
import json
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from accounts.domain.events import strict_json

WRITE = "accounts_write"
WRITER_WAIT_SECONDS = 30.0  # as SQLite's busy timeout: then the caller hears the database is busy

# One lock per SQLite engine: see `writer_turn`.
_writer_turns: weakref.WeakKeyDictionary[sa.Engine, threading.RLock] = weakref.WeakKeyDictionary()
_turns_lock = threading.Lock()


class WriterBusy(Exception):
    """No turn to write within WRITER_WAIT_SECONDS."""


@contextlib.contextmanager
def writer_turn(engine: sa.Engine) -> Iterator[None]:
    """Hold this process's turn to write to an SQLite file (PostgreSQL: no-op).

    SQLite lets one writer in at a time; the others wait in its busy handler, which sleeps
    between tries (up to 100 ms a sleep). Twenty API threads writing at once waited up to a
    second that way (p99) for transactions of a few milliseconds. Queued on a lock, each goes
    as soon as the one before commits. Other processes still meet SQLite's busy handler.
    Re-entrant, so a thread that opens a second write transaction fails as it did before
    (SQLite's busy timeout) rather than waiting for itself.
    """
    if engine.dialect.name != "sqlite":
        yield
        return
    with _turns_lock:
        turn = _writer_turns.setdefault(engine, threading.RLock())
    if not turn.acquire(timeout=WRITER_WAIT_SECONDS):
        raise WriterBusy(f"no turn to write within {WRITER_WAIT_SECONDS:.0f} s: the database is busy")
    try:
        yield
    finally:
        turn.release()


def json_text(value: Any) -> str:
    """The text of a JSON column: orjson, about a tenth of json.dumps's cost (the tenure copies, every event).

    json.dumps for what orjson will not write (integers past 64 bits, a lone surrogate,
    keys that are not text), so such values are stored as before. NaN and infinities
    never get here: they are not JSON, and events holding them are refused as malformed.
    """
    try:
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value)


def json_value(text: str | bytes | memoryview) -> Any:
    """A stored JSON column read back: orjson where it reads exactly (`domain.events.strict_json`), a third of json's cost."""
    return strict_json(bytes(text) if isinstance(text, memoryview) else text)


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


# Every PostgreSQL session of the service: its statements are all short (a batch's index probes, one
# account), and the JIT compiler, which PostgreSQL starts for any plan it believes costly, spent a
# tenth of a second compiling probes that then ran in ten milliseconds.
POSTGRESQL_SESSION_OPTIONS = "-c jit=off"


def create_engine(url: str, **options: Any) -> sa.Engine:
    parsed = make_url(url)
    # A failed statement's error (logged, or a dead letter's reason) must not quote its parameters: the
    # tenure copies, events and interim rows they carry hold tenants' names and dates of birth.
    options.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Enough pooled connections for every request thread (AnyIO's 40) and the worker's
        # threads: a connection opened per request, with its PRAGMAs, cost a fifth of a read.
        if "poolclass" not in options and parsed.database not in (None, "", ":memory:"):
            options.setdefault("pool_size", 48)
            options.setdefault("max_overflow", 16)
        engine = sa.create_engine(
            parsed,
            connect_args={"isolation_level": None, "timeout": 30, "check_same_thread": False},
            json_serializer=json_text,
            json_deserializer=json_value,
            **options,
        )
        sa.event.listen(engine, "connect", configure_sqlite_connection)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    options.setdefault("pool_pre_ping", True)
    options.setdefault("pool_size", 10)
    options.setdefault("max_overflow", 20)
    if "options" not in parsed.query:
        options.setdefault("connect_args", {}).setdefault("options", POSTGRESQL_SESSION_OPTIONS)
    engine = sa.create_engine(parsed, json_serializer=json_text, json_deserializer=json_value, **options)
    if parsed.get_driver_name() == "psycopg":
        sa.event.listen(engine, "connect", _configure_psycopg_connection)
    return engine


def _configure_psycopg_connection(dbapi_connection: Any, _record: Any = None) -> None:
    """psycopg reads json columns itself (with the json module): our reader instead."""
    from psycopg.types.json import set_json_loads

    set_json_loads(json_value, dbapi_connection)


def configure_sqlite_connection(dbapi_connection: Any, _record: Any = None) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    mode = "IMMEDIATE" if connection.get_execution_options().get(WRITE) else "DEFERRED"
    connection.exec_driver_sql(f"BEGIN {mode}")
