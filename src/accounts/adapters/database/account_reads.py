"""The API's read side: the stored wire JSON of accounts, straight from the database.

Two implementations of one port. `SqlAccountReads` works on any database through
SQLAlchemy and is called from a worker thread. `SqliteAccountReads` reads an embedded
SQLite file through the driver itself: an indexed read there takes microseconds, so it
is called on the event loop; going through SQLAlchemy cost several times the query.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import exc

from accounts.adapters.database import tables as t
from accounts.adapters.database.engine import configure_sqlite_connection
from accounts.adapters.database.unit_of_work import translate
from accounts.service.ports import StoredAccount, TransientError

_accounts = t.accounts.c
_ACCOUNT = sa.select(_accounts.wire, _accounts.version).where(_accounts.id == sa.bindparam("id"))
_BY_TARGET = (
    sa.select(_accounts.wire)
    .where(_accounts.target_id == sa.bindparam("target_id"))
    .order_by(_accounts.created_at, _accounts.id)
)
_BY_TARGET_AND_TYPE = _BY_TARGET.where(_accounts.account_type == sa.bindparam("account_type"))


class SqlAccountReads:
    inline = False

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def account(self, account_id: UUID) -> StoredAccount | None:
        rows = self._rows(_ACCOUNT, {"id": account_id})
        return StoredAccount(account_id, rows[0].wire.encode(), rows[0].version) if rows else None

    def by_target(self, target_id: UUID, account_type: str | None) -> list[bytes]:
        if account_type is None:
            rows = self._rows(_BY_TARGET, {"target_id": target_id})
        else:
            rows = self._rows(_BY_TARGET_AND_TYPE, {"target_id": target_id, "account_type": account_type})
        return [row.wire.encode() for row in rows]

    def _rows(self, statement: sa.Select[Any], parameters: dict[str, Any]) -> Sequence[sa.Row[Any]]:
        try:
            with self.engine.connect() as connection:
                return connection.execute(statement, parameters).all()
        except exc.DBAPIError as error:
            raise translate(error) from error

    def close(self) -> None:
        """The engine belongs to the application."""


class SqliteAccountReads:
    """A driver connection of its own per thread (in practice the event loop's), with the engine's
    settings (WAL, busy timeout); it closes with its thread. Uuids are stored as 32 hex digits."""

    inline = True

    def __init__(self, engine: sa.Engine, cache_mb: int = 0) -> None:
        self.path = str(engine.url.database)
        self.cache_mb = cache_mb  # 0: SQLite's default
        self.local = threading.local()
        # Every connection opened, with its thread: those of finished threads are closed.
        self.opened: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = []
        self.lock = threading.Lock()

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

    def account(self, account_id: UUID) -> StoredAccount | None:
        rows = self._rows("SELECT wire, version FROM accounts WHERE id = ?", (account_id.hex,))
        return StoredAccount(account_id, rows[0][0].encode(), rows[0][1]) if rows else None

    def by_target(self, target_id: UUID, account_type: str | None) -> list[bytes]:
        parameters: tuple[str, ...]
        if account_type is None:
            sql, parameters = "SELECT wire FROM accounts WHERE target_id = ? ORDER BY created_at, id", (target_id.hex,)
        else:
            sql = "SELECT wire FROM accounts WHERE target_id = ? AND account_type = ? ORDER BY created_at, id"
            parameters = (target_id.hex, account_type)
        return [row[0].encode() for row in self._rows(sql, parameters)]

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
