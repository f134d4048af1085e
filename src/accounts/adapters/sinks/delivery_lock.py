"""One delivery at a time to each interim sink, across threads and processes.

Two flushers of one sink (`accounts serve` and `accounts worker` side by side, or
`accounts interim rebuild` while a worker runs) must not overlap: each reads the sync
table, then writes, so the one that read first could write last and leave the sink
older than the sync table with nothing pending to mend it. The lock lives with the
service's database, which every such process shares:

* PostgreSQL: a session advisory lock on a connection of its own (autocommit, so no
  transaction stays open while the workbook is written; freed if the process dies);
* SQLite: an exclusive `flock` on a file beside the database file (one host, as SQLite is);
* anything else: a lock within this process only.

Account changes never take these locks: an overlong delivery delays only the next one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

try:  # POSIX only; elsewhere the in-process lock is all there is
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_POLL_SECONDS = 0.05
_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()


def _process_lock(key: str) -> threading.Lock:
    with _process_locks_guard:
        return _process_locks.setdefault(key, threading.Lock())


class DeliveryLocks:
    """`hold(sink, wait)` yields True when this caller may deliver to the sink now."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        url = engine.url
        self._backend = url.get_backend_name()
        database = url.database or ""
        self._directory: Path | None = None
        if self._backend == "sqlite" and database not in ("", ":memory:") and fcntl is not None:
            self._directory = Path(database).resolve().parent
            self._stem = Path(database).name
        self._identity = f"{url.render_as_string(hide_password=True)}"

    @contextlib.contextmanager
    def hold(self, sink: str, wait: float = 0.0) -> Iterator[bool]:
        """Hold the sink's lock for the block; False (at once, or after `wait` seconds) when another has it."""
        local = _process_lock(f"{self._identity}|{sink}")
        acquired = local.acquire(timeout=wait) if wait > 0 else local.acquire(blocking=False)
        if not acquired:
            yield False
            return
        try:
            if self._backend == "postgresql":
                with self._postgresql(sink, wait) as held:
                    yield held
            elif self._directory is not None:
                with self._file(sink, wait) as held:
                    yield held
            else:
                yield True
        finally:
            local.release()

    @contextlib.contextmanager
    def _postgresql(self, sink: str, wait: float) -> Iterator[bool]:
        key = _lock_key(sink)
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            held = _until(
                wait, lambda: bool(connection.scalar(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
            )
            try:
                yield held
            finally:
                if held:
                    with contextlib.suppress(sa.exc.DBAPIError):  # a lost connection has freed it already
                        connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        finally:
            connection.close()

    @contextlib.contextmanager
    def _file(self, sink: str, wait: float) -> Iterator[bool]:
        assert self._directory is not None and fcntl is not None
        path = self._directory / f".{self._stem}.interim-{sink}.lock"
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:

            def try_lock() -> bool:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

            held = _until(wait, try_lock)
            try:
                yield held
            finally:
                if held:
                    fcntl.flock(descriptor, fcntl.LOCK_UN)
        finally:
            os.close(descriptor)


def _until(wait: float, attempt: Any) -> bool:
    deadline = time.monotonic() + wait
    while True:
        if attempt():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)


def _lock_key(sink: str) -> int:
    """A stable signed 64-bit advisory lock key for the sink."""
    digest = hashlib.sha256(f"accounts.interim.{sink}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
