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
from typing import Any
from uuid import UUID

import psycopg
import sqlalchemy as sa
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from accounts.adapters.database.engine import configure_sqlite_connection
from accounts.service.ports import StoredAccount, TransientError

# The statements, with `{p}` for the driver's placeholder. "Oldest first": created_at, then id.
_ACCOUNT = "SELECT wire, version FROM accounts WHERE id = {p}"
_BY_TARGET = "SELECT wire FROM accounts WHERE target_id = {p} ORDER BY created_at, id"
_BY_TARGET_AND_TYPE = "SELECT wire FROM accounts WHERE target_id = {p} AND account_type = {p} ORDER BY created_at, id"

# How long a read waits for a pooled connection before answering that the database is unavailable
# (a 503). Under load a read waits milliseconds; with the database down the pool cannot connect.
CONNECTION_WAIT_SECONDS = 2.0

# The pool logs every connection lent and returned at INFO: on the hottest path, far too chatty.
logging.getLogger("psycopg.pool").setLevel(logging.WARNING)

Connection = psycopg.AsyncConnection[tuple[Any, ...]]


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
            **{key: str(value) for key, value in url.query.items()},
        )
        self.pool_size = pool_size
        self.pool: AsyncConnectionPool[Connection] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.connections: weakref.WeakSet[Connection] = weakref.WeakSet()  # the pool's, to close without its loop
        self.account_sql = _ACCOUNT.format(p="%s")
        self.by_target_sql = _BY_TARGET.format(p="%s")
        self.by_target_and_type_sql = _BY_TARGET_AND_TYPE.format(p="%s")

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
        rows = await self._rows(self.account_sql, (account_id,))
        return StoredAccount(account_id, rows[0][0].encode(), rows[0][1]) if rows else None

    async def by_target(self, target_id: UUID, account_type: str | None) -> list[bytes]:
        if account_type is None:
            rows = await self._rows(self.by_target_sql, (target_id,))
        else:
            rows = await self._rows(self.by_target_and_type_sql, (target_id, account_type))
        return [row[0].encode() for row in rows]

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
        self.account_sql = _ACCOUNT.format(p="?")
        self.by_target_sql = _BY_TARGET.format(p="?")
        self.by_target_and_type_sql = _BY_TARGET_AND_TYPE.format(p="?")

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
        rows = self._rows(self.account_sql, (account_id.hex,))
        return StoredAccount(account_id, rows[0][0].encode(), rows[0][1]) if rows else None

    async def by_target(self, target_id: UUID, account_type: str | None) -> list[bytes]:
        if account_type is None:
            rows = self._rows(self.by_target_sql, (target_id.hex,))
        else:
            rows = self._rows(self.by_target_and_type_sql, (target_id.hex, account_type))
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
