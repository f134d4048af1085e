"""A unit of work's memory: what it read, what it keeps to write at commit, and the undo marks of its savepoints.

Every repository of a unit of work shares one `Memory`. Reads are remembered; writes are
kept in memory and written at commit, one `executemany` per statement, whether the unit
of work ran one command (an API request: a batch of one) or a thousand (the listener's
batch). A savepoint is then an undo mark in the `Journal`: nothing of what it undoes was
written to the database yet, and the commands after it see the state as if it never ran.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa

K = TypeVar("K")
V = TypeVar("V")

_MISSING = object()

# Keys an IN (...) carries at most (SQLite allows 32,766 parameters; PostgreSQL 65,535).
IN_CHUNK = 500


def chunks(keys: Sequence[K]) -> Iterator[list[K]]:
    for start in range(0, len(keys), IN_CHUNK):
        yield list(keys[start : start + IN_CHUNK])


class Journal:
    """Undo records of what was changed in memory, so that a savepoint rolls back without the database.

    Only changes made inside a savepoint are recorded; what the database says (read ahead,
    or read later) is never undone, since it stays true.
    """

    def __init__(self) -> None:
        self._undo: list[tuple[Any, ...]] = []
        self.depth = 0

    def begin(self) -> int:
        self.depth += 1
        return len(self._undo)

    def release(self, mark: int) -> None:
        self.depth -= 1
        if self.depth == 0:
            self._undo.clear()  # nothing can roll back past here any more

    def rollback(self, mark: int) -> None:
        undo = self._undo
        while len(undo) > mark:
            entry = undo.pop()
            if entry[0] is _MISSING:
                entry[1].pop(entry[2], None)
            elif len(entry) == 1:
                entry[0].pop()  # an append
            else:
                entry[0][entry[1]] = entry[2]
        self.depth -= 1

    def set(self, mapping: dict[K, V], key: K, value: V) -> None:
        if self.depth:
            old = mapping.get(key, _MISSING)
            self._undo.append((_MISSING, mapping, key) if old is _MISSING else (mapping, key, old))
        mapping[key] = value

    def append(self, items: list[V], value: V) -> None:
        items.append(value)
        if self.depth:
            self._undo.append((items,))


class Flushes(Protocol):
    def dirty(self) -> bool:
        """Whether anything is kept to write."""

    def flush(self) -> None:
        """Write what was kept in memory."""


class Memory:
    """The connection, the journal, and the repositories that keep writes: flushed in the order they joined."""

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection
        self.journal = Journal()
        self._writers: list[Flushes] = []

    def keeps_writes(self, repository: Flushes) -> None:
        self._writers.append(repository)

    def close(self) -> None:
        """Let go of the repositories (each holds this memory): no cycle is left for the collector to find."""
        self._writers.clear()

    def flush(self) -> None:
        writers = [repository for repository in self._writers if repository.dirty()]
        if writers and self.journal.depth:
            # What a savepoint may still undo must not reach the database before it is released.
            raise RuntimeError("a statement that reads the database directly ran inside a savepoint")
        for repository in writers:
            repository.flush()

    def execute(self, statement: sa.Executable, parameters: Any = None) -> sa.CursorResult[Any]:
        """A statement that does not go through memory: what was kept is written first, so it sees it."""
        self.flush()
        return self.connection.execute(statement, parameters)
