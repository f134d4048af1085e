"""The API's read side: the stored wire JSON of accounts, straight from the database driver.

Two implementations of one asynchronous port, both without SQLAlchemy (which cost several
times the query) and without a worker thread per read:

- `PostgresAccountReads`: psycopg's asynchronous driver through a pool of connections
  (`psycopg_pool.AsyncConnectionPool`), with prepared statements, awaited on the event loop.
- `SqliteAccountReads`: an embedded SQLite file read through the driver itself. An indexed
  read there takes microseconds, so it runs on the event loop without awaiting anything.

Both order a target's accounts oldest first (created_at, then id), as the repositories do.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar
from uuid import UUID

import psycopg
import sqlalchemy as sa
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from accounts.adapters.database import tables as t
from accounts.adapters.database.engine import POSTGRESQL_SESSION_OPTIONS, configure_sqlite_connection
from accounts.service.ports import StoredAccount, TransientError

# A target's accounts, oldest first: as the repositories order them (`tables.OLDEST_FIRST`).
_OLDEST_FIRST = "ORDER BY " + ", ".join(column.name for column in t.OLDEST_FIRST)
# SQLite: one account or target per statement (a read takes microseconds, on the event loop).
_ACCOUNT = "SELECT wire, version FROM accounts WHERE id = ?"
_BY_TARGET = f"SELECT wire FROM accounts WHERE target_id = ? {_OLDEST_FIRST}"
_BY_TARGET_AND_TYPE = f"SELECT wire FROM accounts WHERE target_id = ? AND account_type = ? {_OLDEST_FIRST}"
# PostgreSQL: every read asked for in one turn of the event loop, in one statement (see `_Coalesced`).
_ACCOUNTS = "SELECT id, wire, version FROM accounts WHERE id = ANY(%s)"
_BY_TARGETS = f"SELECT target_id, wire FROM accounts WHERE target_id = ANY(%s) {_OLDEST_FIRST}"
_BY_TARGETS_AND_TYPE = (
    f"SELECT target_id, wire FROM accounts WHERE target_id = ANY(%s) AND account_type = %s {_OLDEST_FIRST}"
)

# How long a read waits for a pooled connection before answering that the database is unavailable
# (a 503). Under load a read waits milliseconds; with the database down the pool cannot connect.
CONNECTION_WAIT_SECONDS = 5.0

# The pool logs every connection lent and returned at INFO: on the hottest path, far too chatty.
logging.getLogger("psycopg.pool").setLevel(logging.WARNING)

Connection = psycopg.AsyncConnection[tuple[Any, ...]]
T = TypeVar("T")


ACCOUNT = "account"  # the kinds of read, to `_read`: an account by id, a target's accounts of any type
ANY_TYPE = "any type"  # (or of the one named)


def _missing(kind: str) -> Any:
    return None if kind == ACCOUNT else []


class _Coalesced(Generic[T]):
    """Reads of one kind asked for in one turn of the event loop, answered by one statement.

    Under load many requests wait on the database at once; one statement for all of them
    (`WHERE id = ANY(...)`) costs about a tenth of one per request, on both sides of the
    connection. A read alone waits one more turn of the loop, microseconds.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        answer: Callable[[list[UUID]], Awaitable[dict[UUID, T]]],
        missing: Callable[[], T],
    ) -> None:
        self.loop = loop
        self.answer = answer
        self.missing = missing  # the answer for a key not found
        self.waiting: dict[UUID, list[asyncio.Future[T]]] = {}
        self.answering: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references to tasks

    def get(self, key: UUID) -> asyncio.Future[T]:
        future: asyncio.Future[T] = self.loop.create_future()
        if not self.waiting:
            self.loop.call_soon(self._flush)  # after the other requests of this turn have asked
        self.waiting.setdefault(key, []).append(future)
        return future

    def _flush(self) -> None:
        batch, self.waiting = self.waiting, {}
        task = self.loop.create_task(self._answer(batch))
        self.answering.add(task)
        task.add_done_callback(self.answering.discard)

    async def _answer(self, batch: dict[UUID, list[asyncio.Future[T]]]) -> None:
        try:
            found = await self.answer(list(batch))
        except Exception as error:  # every read of the batch fails alike (a 503 when the database is down)
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
            return
        for key, futures in batch.items():
            value = found[key] if key in found else self.missing()
            for future in futures:
                if not future.done():  # not cancelled (the client went away)
                    future.set_result(value)


class PostgresAccountReads:
    """Reads through an asynchronous pool of at most `pool_size` connections, on the server's event loop.

    A pool belongs to the event loop it was opened on: `open` is awaited at the server's
    startup and `aclose` at its shutdown (the application's lifespan). A read on any other
    loop (a test client's, `asyncio.run` in a script) opens a connection of its own and
    closes it after, which is slower but leaves nothing behind on a loop that may end.
    """

    def __init__(self, url: sa.URL, pool_size: int) -> None:
        self.conninfo = make_conninfo(
            "",
            host=url.host,
            port=url.port,
            dbname=url.database,
            user=url.username,
            password=url.password,
            **{"options": POSTGRESQL_SESSION_OPTIONS, **{key: str(value) for key, value in url.query.items()}},
        )
        self.pool_size = pool_size
        self.pool: AsyncConnectionPool[Connection] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.connections: weakref.WeakSet[Connection] = weakref.WeakSet()  # the pool's, to close without its loop
        self.coalesced: dict[str | None, _Coalesced[Any]] = {}  # per kind of read; the pool's loop's

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        if self.pool is not None:
            if self.loop is loop:
                return
            self._abandon()  # left open by a server whose loop ended without its shutdown (tests do that)
        connections: weakref.WeakSet[Connection] = weakref.WeakSet()

        async def configure(connection: Connection) -> None:
            connections.add(connection)

        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            self.conninfo,
            min_size=1,
            max_size=self.pool_size,  # it grows while reads wait for a connection
            kwargs={"autocommit": True},  # a read is one statement: no BEGIN and COMMIT round trips
            configure=configure,
            open=False,
            timeout=CONNECTION_WAIT_SECONDS,
            name="account-reads",
        )
        await pool.open()  # connecting in the background: a database down at startup is no failure
        self.pool, self.loop, self.connections = pool, loop, connections
        self.coalesced = {}

    async def aclose(self) -> None:
        if self.pool is None:
            return
        if self.loop is not asyncio.get_running_loop():
            self._abandon()
            return
        pool, self.pool, self.loop = self.pool, None, None
        await pool.close()

    def close(self) -> None:
        """Normally `aclose` has closed the pool on its loop; if not, its connections are closed here."""
        if self.pool is not None:
            self._abandon()

    def _abandon(self) -> None:
        """Forget a pool whose loop is gone or elsewhere, closing its connections without that loop."""
        for connection in list(self.connections):
            connection.pgconn.finish()
        self.pool, self.loop, self.connections = None, None, weakref.WeakSet()

    async def account(self, account_id: UUID) -> StoredAccount | None:
        return await self._read(ACCOUNT, account_id)  # type: ignore[no-any-return]

    async def by_target(self, target_id: UUID, account_type: str | None) -> list[bytes]:
        return await self._read(account_type or ANY_TYPE, target_id)  # type: ignore[no-any-return]

    async def _read(self, kind: str, key: UUID) -> Any:
        """One read; on the pool's loop, answered with the others of its kind asked for in the same turn."""
        loop = asyncio.get_running_loop()
        if self.pool is None or self.loop is not loop:
            found = await self._answer(kind, [key])
            return found[key] if key in found else _missing(kind)
        coalesced = self.coalesced.get(kind)
        if coalesced is None:
            coalesced = self.coalesced[kind] = _Coalesced(
                loop, lambda keys: self._answer(kind, keys), lambda: _missing(kind)
            )
        return await coalesced.get(key)

    async def _answer(self, kind: str, keys: list[UUID]) -> dict[UUID, Any]:
        """The answers for many keys of one kind of read, from one statement."""
        if kind == ACCOUNT:
            rows = await self._rows(_ACCOUNTS, (keys,))
            return {row[0]: StoredAccount(row[0], row[1].encode(), row[2]) for row in rows}
        if kind == ANY_TYPE:
            rows = await self._rows(_BY_TARGETS, (keys,))
        else:
            rows = await self._rows(_BY_TARGETS_AND_TYPE, (keys, kind))
        found: dict[UUID, Any] = {}
        for target_id, wire in rows:  # oldest first across targets, so within each
            found.setdefault(target_id, []).append(wire.encode())
        return found

    async def _rows(self, sql: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        pool = self.pool
        if pool is None or self.loop is not asyncio.get_running_loop():
            return await self._rows_on_own_connection(sql, parameters)
        # A connection found broken (the server restarted, the network was cut) is replaced by the
        # pool; a read can be repeated safely, so it is tried once more on another connection.
        for last in (False, True):
            try:
                connection = await pool.getconn()
            except PoolTimeout as error:
                raise TransientError(f"database unavailable: no connection in {CONNECTION_WAIT_SECONDS} s") from error
            try:
                # Autocommit, one statement: no transaction to end, so no `async with connection`.
                cursor = await connection.execute(sql, parameters, prepare=True)
                return await cursor.fetchall()
            except psycopg.OperationalError as error:
                if last or not connection.broken:
                    raise TransientError(f"database unavailable: {error}") from error
            finally:
                await pool.putconn(connection)  # a broken one is replaced by the pool
        raise AssertionError("unreachable")

    async def _rows_on_own_connection(self, sql: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as connection:
                cursor = await connection.execute(sql, parameters)
                return await cursor.fetchall()
        except psycopg.OperationalError as error:
            raise TransientError(f"database unavailable: {error}") from error


class SqliteAccountReads:
    """A driver connection of its own per thread (in practice the event loop's), with the engine's
    settings (WAL, busy timeout); it closes with its thread. Uuids are stored as 32 hex digits."""

    def __init__(self, engine: sa.Engine, cache_mb: int = 0) -> None:
        self.path = str(engine.url.database)
        self.cache_mb = cache_mb  # 0: SQLite's default
        self.local = threading.local()
        # Every connection opened, with its thread: those of finished threads are closed.
        self.opened: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = []
        self.lock = threading.Lock()

    async def open(self) -> None:
        """Nothing to ready: each thread opens its connection on its first read."""

    async def aclose(self) -> None:
        """Connections are closed by `close`, with the application."""

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self.local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            configure_sqlite_connection(connection)
            connection.execute("PRAGMA query_only=ON")
            if self.cache_mb:
                connection.execute(f"PRAGMA cache_size=-{int(self.cache_mb) * 1024}")  # negative: KiB
            self.local.connection = connection
            with self.lock:
                finished = [c for thread, c in self.opened if not ((owner := thread()) and owner.is_alive())]
                self.opened = [(thread, c) for thread, c in self.opened if c not in finished]
                self.opened.append((weakref.ref(threading.current_thread()), connection))
            for old in finished:
                old.close()
        return connection

    async def account(self, account_id: UUID) -> StoredAccount | None:
        rows = self._rows(_ACCOUNT, (account_id.hex,))
        return StoredAccount(account_id, rows[0][0].encode(), rows[0][1]) if rows else None

    async def by_target(self, target_id: UUID, account_type: str | None) -> list[bytes]:
        if account_type is None:
            rows = self._rows(_BY_TARGET, (target_id.hex,))
        else:
            rows = self._rows(_BY_TARGET_AND_TYPE, (target_id.hex, account_type))
        return [row[0].encode() for row in rows]

    def _rows(self, sql: str, parameters: tuple[str, ...]) -> list[Any]:
        try:
            return self._connection().execute(sql, parameters).fetchall()
        except sqlite3.OperationalError as error:
            raise TransientError(f"database unavailable: {error}") from error

    def close(self) -> None:
        with self.lock:
            opened, self.opened = self.opened, []
            self.local = threading.local()
        for _thread, connection in opened:
            connection.close()
