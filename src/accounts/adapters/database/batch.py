"""Set-based repositories for a batch of listener events in one transaction.

The one-by-one repositories (`repositories.py`) run a statement for every read and
write, about a dozen an event. For a batch the unit of work swaps in these instead:
what the batch will ask for is read ahead in a few `IN (...)` queries, reads are then
answered from memory (anything not read ahead is read when first asked for, and
remembered), and writes are kept in memory and written at commit with one
`executemany` per statement. The service layer does not change: `create_account`,
`change_account` and `sync_interim_row` call the same repository methods.

A savepoint is then an undo mark in a `Journal`: an event that fails inside its
savepoint is undone in memory alone (nothing of it was written to the database), and
the events after it see the state as if it had never been applied. What a batch
cannot answer exactly from memory (the arrears query, a whole-table read, a row
removed) raises `NotInBatch`, which sends that event the one-by-one way.

Writes that can race another transaction are guarded when they are written: account
and interim-row updates carry the version read (`WHERE version = :read`), so a change
committed meanwhile makes the whole commit a `ConcurrencyConflict`, as do the unique
keys (processed events, payment references, one active Master). The caller then goes
one by one, as it does for any batch that fails as a whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar
from uuid import UUID

import sqlalchemy as sa

from accounts.adapters.database import tables as t
from accounts.adapters.database.bulk import executemany
from accounts.adapters.database.repositories import (
    _PENDING_UPSERTS,
    _UPDATE_ACCOUNT,
    _UPDATE_TENURE,
    PRN_COUNTER,
    SqlAccountRepository,
    SqlInterimRows,
    SqlOutbox,
    SqlPaymentReferenceSerials,
    SqlProcessedEvents,
    SqlTenureCopies,
    _copy_record,
    _next_pending_version,
    account_from_row,
    account_values,
    interim_from_row,
    outbox_values,
)
from accounts.domain.account import Account, AccountType
from accounts.domain.events import EventEnvelope
from accounts.domain.interim import ROW_FIELDS, InterimRow
from accounts.domain.tenure import TenureRecord
from accounts.service.unit_of_work import ConcurrencyConflict, InterimValues, NotInBatch, OutboxMessage

K = TypeVar("K")
V = TypeVar("V")

# Keys an IN (...) carries at most (SQLite allows 32,766 parameters; PostgreSQL 65,535).
_IN_CHUNK = 500
# References read at once when the allocator asks whether one is taken: it asks for consecutive serials.
_REFERENCE_RANGE = 256

_MISSING = object()

_c = t.accounts.c
_PROCESSED_IN = sa.select(t.processed_events.c.event_id).where(
    t.processed_events.c.event_id.in_(sa.bindparam("ids", expanding=True))
)
# Sorted, so that two workers locking overlapping batches (PostgreSQL) take the locks in one order.
_TENURES_IN = (
    sa.select(t.tenure_copies)
    .where(t.tenure_copies.c.tenure_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(t.tenure_copies.c.tenure_id)
    .with_for_update()
)
_TENURE_FOR_UPDATE = (
    sa.select(t.tenure_copies).where(t.tenure_copies.c.tenure_id == sa.bindparam("tenure_id")).with_for_update()
)
_ACCOUNTS_BY_TARGETS = sa.select(t.accounts).where(_c.target_id.in_(sa.bindparam("ids", expanding=True)))
_ACCOUNT_BY_ID = sa.select(t.accounts).where(_c.id == sa.bindparam("id"))
_REFERENCES_BETWEEN = sa.select(_c.id, _c.payment_reference).where(
    _c.payment_reference >= sa.bindparam("low"), _c.payment_reference < sa.bindparam("high")
)
_REFERENCE = sa.select(_c.id, _c.payment_reference).where(_c.payment_reference == sa.bindparam("reference"))
_INTERIM_BY_ACCOUNTS = sa.select(t.interim_rows).where(
    t.interim_rows.c.account_id.in_(sa.bindparam("ids", expanding=True))
)
_UPDATE_INTERIM_ROW = t.interim_rows.update().where(
    t.interim_rows.c.account_id == sa.bindparam("b_account_id"), t.interim_rows.c.version == sa.bindparam("b_version")
)
_INSERT_PROCESSED = t.processed_events.insert()
_INSERT_TENURE = t.tenure_copies.insert()
_INSERT_ACCOUNT = t.accounts.insert()
_INSERT_OUTBOX = t.outbox.insert()
_INSERT_INTERIM_ROW = t.interim_rows.insert()
_counter = t.payment_reference_counter
_READ_COUNTER = sa.select(_counter.c.next_serial).where(_counter.c.name == PRN_COUNTER).with_for_update()
_WRITE_COUNTER = _counter.update().where(_counter.c.name == PRN_COUNTER).values(next_serial=sa.bindparam("serial"))


def _chunks(keys: Sequence[K]) -> Iterator[list[K]]:
    for start in range(0, len(keys), _IN_CHUNK):
        yield list(keys[start : start + _IN_CHUNK])


class Flushes(Protocol):
    def flush(self) -> None:
        """Write what was kept in memory."""


class Journal:
    """Undo records of what a batch changed in memory, so that a savepoint rolls back without the database.

    Only changes made inside a savepoint are recorded; what the database says (read ahead,
    or read later) is never undone, since it stays true.
    """

    def __init__(self) -> None:
        self._undo: list[tuple[Any, ...]] = []
        self._depth = 0

    def begin(self) -> int:
        self._depth += 1
        return len(self._undo)

    def release(self, mark: int) -> None:
        self._depth -= 1
        if self._depth == 0:
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
        self._depth -= 1

    def set(self, mapping: dict[K, V], key: K, value: V) -> None:
        if self._depth:
            old = mapping.get(key, _MISSING)
            self._undo.append((_MISSING, mapping, key) if old is _MISSING else (mapping, key, old))
        mapping[key] = value

    def append(self, items: list[V], value: V) -> None:
        items.append(value)
        if self._depth:
            self._undo.append((items,))


def _unsupported(what: str) -> Callable[..., Any]:
    def refuse(*_: object, **__: object) -> Any:
        raise NotInBatch(f"{what} is not answered within a batch")

    return refuse


class BatchProcessedEvents(SqlProcessedEvents):
    def __init__(self, connection: sa.Connection, journal: Journal) -> None:
        super().__init__(connection)
        self.journal = journal
        self._seen: dict[UUID, bool] = {}
        self._rows: list[dict[str, Any]] = []

    def read_ahead(self, event_ids: Sequence[UUID]) -> None:
        unknown = [event_id for event_id in dict.fromkeys(event_ids) if event_id not in self._seen]
        for chunk in _chunks(unknown):
            found = set(self.connection.execute(_PROCESSED_IN, {"ids": chunk}).scalars())
            for event_id in chunk:
                self._seen[event_id] = event_id in found

    def seen(self, event_id: UUID) -> bool:
        if event_id not in self._seen:
            self.read_ahead([event_id])
        return self._seen[event_id]

    def record(self, event: EventEnvelope, outcome: str, at: datetime) -> None:
        self.journal.set(self._seen, event.id, True)
        self.journal.append(
            self._rows,
            {
                "event_id": event.id,
                "event_type": event.event_type[:80],
                "entity_id": event.entity_id,
                "outcome": outcome[:200],
                "processed_at": at,
            },
        )

    def flush(self) -> None:
        if self._rows:
            executemany(self.connection, _INSERT_PROCESSED, self._rows)
            self._rows = []


class BatchTenureCopies(SqlTenureCopies):
    """Every copy read is locked (PostgreSQL) and remembered; saves are written at commit."""

    def __init__(self, connection: sa.Connection, journal: Journal) -> None:
        super().__init__(connection)
        self.journal = journal
        self._stored: set[UUID] = set()  # a row exists in the database
        self._dirty: dict[UUID, datetime] = {}  # saved in this batch: when

    def read_ahead(self, tenure_ids: Sequence[UUID]) -> None:
        unknown = sorted(tenure_id for tenure_id in set(tenure_ids) if tenure_id not in self._held)
        for chunk in _chunks(unknown):
            for row in self.connection.execute(_TENURES_IN, {"ids": chunk}):
                self._held[row.tenure_id] = TenureRecord(row.tenure_id, dict(row.data), dict(row.stamps), row.complete)
                self._stored.add(row.tenure_id)
            for tenure_id in chunk:
                self._held.setdefault(tenure_id, None)

    def get(self, tenure_id: UUID, *, for_update: bool = False) -> TenureRecord | None:
        if tenure_id not in self._held:
            row = self.connection.execute(_TENURE_FOR_UPDATE, {"tenure_id": tenure_id}).first()
            if row is None:
                self._held[tenure_id] = None
            else:
                self._held[tenure_id] = TenureRecord(row.tenure_id, dict(row.data), dict(row.stamps), row.complete)
                self._stored.add(tenure_id)
        return _copy_record(self._held[tenure_id])

    def save(self, record: TenureRecord, at: datetime) -> None:
        if record.tenure_id not in self._held:
            self.get(record.tenure_id)  # whether it is an insert or an update
        self.journal.set(self._held, record.tenure_id, _copy_record(record))
        self.journal.set(self._dirty, record.tenure_id, at)

    def flush(self) -> None:
        inserts, updates = [], []
        for tenure_id, at in self._dirty.items():
            record = self._held[tenure_id]
            assert record is not None
            values = {"data": record.data, "stamps": record.stamps, "complete": record.complete, "updated_at": at}
            if tenure_id in self._stored:
                updates.append({"b_tenure_id": tenure_id, **values})
            else:
                inserts.append({"tenure_id": tenure_id, **values})
        if inserts:
            executemany(self.connection, _INSERT_TENURE, inserts)
        if updates:
            _expect_rows(executemany(self.connection, _UPDATE_TENURE, updates), len(updates), "tenure copies")
        self._stored.update(self._dirty)
        self._dirty = {}


def _expect_rows(changed: int, expected: int, what: str) -> None:
    if changed != expected:
        raise ConcurrencyConflict(f"{what}: {changed} of {expected} rows were still as read")


class BatchAccounts(SqlAccountRepository):
    """Accounts by id and by target in memory; adds and updates written at commit, updates guarded by version."""

    def __init__(self, connection: sa.Connection, journal: Journal) -> None:
        super().__init__(connection)
        self.journal = journal
        self._current: dict[UUID, Account] = {}  # every account read or written: its current version
        self._stored_version: dict[UUID, int] = {}  # the version in the database (absent: added here)
        self._targets: dict[UUID, tuple[UUID, ...]] = {}  # targets read whole: their accounts' ids
        self._owner: dict[str, UUID | None] = {}  # payment reference -> the account holding it, or None: free
        self._free_ranges: list[tuple[str, str]] = []  # [low, high): references read, absent ones free
        self._dirty: dict[UUID, Decimal] = {}  # written in this batch: its amount owed

    def _remember(self, row: sa.Row[Any]) -> Account:
        known = self._current.get(row.id)
        if known is not None:
            return known
        account = account_from_row(row)
        self._current[account.id] = account
        self._stored_version[account.id] = account.version
        self._owner.setdefault(account.payment_reference, account.id)
        return account

    def read_ahead(self, target_ids: Iterable[UUID]) -> None:
        unknown = [target_id for target_id in dict.fromkeys(target_ids) if target_id not in self._targets]
        for chunk in _chunks(unknown):
            found: dict[UUID, list[UUID]] = {target_id: [] for target_id in chunk}
            for row in self.connection.execute(_ACCOUNTS_BY_TARGETS, {"ids": chunk}):
                found[row.target_id].append(self._remember(row).id)
            for target_id, ids in found.items():
                self._targets[target_id] = tuple(ids)

    def known_ids(self) -> list[UUID]:
        return list(self._current)

    def added(self, account_id: UUID) -> bool:
        """Added in this batch (so with nothing of its own in the database yet)."""
        return account_id in self._current and account_id not in self._stored_version

    def get(self, account_id: UUID, *, for_update: bool = False) -> Account | None:
        if account_id not in self._current:
            row = self.connection.execute(_ACCOUNT_BY_ID, {"id": account_id}).first()
            if row is None:
                return None
            self._remember(row)
        return self._current[account_id]

    def by_target(self, target_id: UUID, account_type: AccountType | None) -> list[Account]:
        if target_id not in self._targets:
            self.read_ahead([target_id])
        accounts = sorted((self._current[i] for i in self._targets[target_id]), key=lambda a: (a.created_at, a.id))
        return [a for a in accounts if account_type is None or a.account_type is account_type]

    def active_master(self, target_id: UUID) -> Account | None:
        return next((a for a in self.by_target(target_id, AccountType.MASTER) if a.is_active), None)

    def payment_reference_taken(self, payment_reference: str) -> bool:
        if payment_reference in self._owner:
            return self._owner[payment_reference] is not None
        if len(payment_reference) == 10 and payment_reference.isdigit():
            if any(low <= payment_reference < high for low, high in self._free_ranges):
                return False
            serial = int(payment_reference[:9])
            if serial + _REFERENCE_RANGE < 10**9:
                # The allocator asks about consecutive serials: read the next few at once.
                low, high = payment_reference, f"{serial + _REFERENCE_RANGE:09d}0"
                rows = self.connection.execute(_REFERENCES_BETWEEN, {"low": low, "high": high})
                for row in rows:
                    self._owner.setdefault(row.payment_reference, row.id)
                self._free_ranges.append((low, high))
                return self._owner.get(payment_reference) is not None
        found = self.connection.execute(_REFERENCE, {"reference": payment_reference}).first()
        self._owner.setdefault(payment_reference, found.id if found is not None else None)
        return self._owner[payment_reference] is not None

    def add(self, account: Account, amount_owed: Decimal) -> None:
        if account.target_id not in self._targets:
            self.read_ahead([account.target_id])
        journal = self.journal
        journal.set(self._current, account.id, account)
        journal.set(self._targets, account.target_id, (*self._targets[account.target_id], account.id))
        journal.set(self._owner, account.payment_reference, account.id)
        journal.set(self._dirty, account.id, amount_owed)

    def update(self, account: Account, expected_version: int, amount_owed: Decimal) -> None:
        current = self.get(account.id)
        if current is None or current.version != expected_version:
            raise ConcurrencyConflict(f"account {account.id} is no longer at version {expected_version}")
        if current.target_id != account.target_id:
            raise NotInBatch("moving an account to another target")
        journal = self.journal
        journal.set(self._current, account.id, account)
        if current.payment_reference != account.payment_reference:
            journal.set(self._owner, current.payment_reference, None)
            journal.set(self._owner, account.payment_reference, account.id)
        journal.set(self._dirty, account.id, amount_owed)

    def flush(self) -> None:
        inserts, updates = [], []
        for account_id, amount_owed in self._dirty.items():
            values = account_values(self._current[account_id], amount_owed)
            stored = self._stored_version.get(account_id)
            if stored is None:
                inserts.append(values)
            else:
                del values["id"]
                updates.append({"b_id": account_id, "b_expected_version": stored, **values})
        if inserts:
            executemany(self.connection, _INSERT_ACCOUNT, inserts)
        if updates:
            _expect_rows(executemany(self.connection, _UPDATE_ACCOUNT, updates), len(updates), "accounts")
        for account_id in self._dirty:
            self._stored_version[account_id] = self._current[account_id].version
        self._dirty = {}

    def arrears(
        self, account_type: AccountType | None, sort_column: str, descending: bool, limit: int
    ) -> list[Account]:
        raise NotInBatch("the arrears query")

    def interim_values(self) -> Iterator[InterimValues]:
        raise NotInBatch("reading every account")

    def interim_sources(self) -> Iterator[tuple[Account, TenureRecord | None]]:
        raise NotInBatch("reading every account")


class BatchPaymentReferenceSerials(SqlPaymentReferenceSerials):
    """The counter is read once, locked, and written once at commit: the same serials, one statement each way."""

    def __init__(self, connection: sa.Connection, journal: Journal) -> None:
        super().__init__(connection)
        self.journal = journal
        self._state: dict[str, int] = {}  # "read": as read; "next": the next to hand out

    def next_serial(self) -> int:
        if "read" not in self._state:
            read = int(self.connection.execute(_READ_COUNTER).scalar_one())
            self._state["read"] = self._state["next"] = read
        serial = self._state["next"]
        self.journal.set(self._state, "next", serial + 1)
        return serial

    def flush(self) -> None:
        if self._state and self._state["next"] != self._state["read"]:
            self.connection.execute(_WRITE_COUNTER, {"serial": self._state["next"]})
            self._state["read"] = self._state["next"]


class BatchOutbox(SqlOutbox):
    def __init__(self, connection: sa.Connection, journal: Journal) -> None:
        super().__init__(connection)
        self.journal = journal
        self._rows: list[dict[str, Any]] = []

    def add(self, topic: str, event: EventEnvelope, group_id: str) -> None:
        self.journal.append(self._rows, outbox_values(topic, event, group_id))

    def flush(self) -> None:
        if self._rows:
            executemany(self.connection, _INSERT_OUTBOX, self._rows)
            self._rows = []

    def pending(self, limit: int) -> list[OutboxMessage]:
        raise NotInBatch("reading the outbox")

    def mark_published(self, positions: Sequence[int], at: datetime) -> None:
        raise NotInBatch("marking the outbox")

    def count_pending(self) -> int:
        raise NotInBatch("reading the outbox")


class BatchInterimRows(SqlInterimRows):
    """Each account's row and its version in memory; saves and pending marks written at commit."""

    def __init__(self, connection: sa.Connection, journal: Journal, new_account: Callable[[UUID], bool]) -> None:
        super().__init__(connection)
        self.journal = journal
        self._new_account = new_account  # an account added in this batch has no row in the database
        self._current: dict[UUID, tuple[InterimRow, int] | None] = {}  # by account: the row and its version
        self._stored_version: dict[UUID, int] = {}  # by account: the version in the database
        self._dirty: dict[UUID, datetime] = {}  # saved in this batch: when
        self._marks: list[tuple[tuple[str, ...], str, int]] = []  # (sinks, payment ref, version)

    def read_ahead(self, account_ids: Iterable[UUID]) -> None:
        unknown = [account_id for account_id in dict.fromkeys(account_ids) if account_id not in self._current]
        for chunk in _chunks(unknown):
            for row in self.connection.execute(_INTERIM_BY_ACCOUNTS, {"ids": chunk}):
                self._current[row.account_id] = (interim_from_row(row), int(row.version))
                self._stored_version[row.account_id] = int(row.version)
            for account_id in chunk:
                self._current.setdefault(account_id, None)

    def _entry(self, account_id: UUID) -> tuple[InterimRow, int] | None:
        if account_id not in self._current:
            if self._new_account(account_id):
                return None
            self.read_ahead([account_id])
        return self._current[account_id]

    def by_account(self, account_id: UUID) -> InterimRow | None:
        entry = self._entry(account_id)
        return None if entry is None else entry[0]

    def save(self, account_id: UUID, row: InterimRow, previous: InterimRow | None, at: datetime) -> int:
        entry = self._entry(account_id)
        version = 1 if entry is None else entry[1] + 1
        self.journal.set(self._current, account_id, (row, version))
        self.journal.set(self._dirty, account_id, at)
        return version

    def mark_pending(self, sinks: Sequence[str], payment_ref: str, version: int) -> None:
        if sinks:
            self.journal.append(self._marks, (tuple(sinks), payment_ref, version))

    def flush(self) -> None:
        inserts, updates = [], []
        for account_id, at in self._dirty.items():
            entry = self._current[account_id]
            assert entry is not None
            row, version = entry
            values = {name: getattr(row, name) for name in ROW_FIELDS}
            stored = self._stored_version.get(account_id)
            if stored is None:
                inserts.append({"account_id": account_id, "version": version, "updated_at": at, **values})
            else:
                updates.append(
                    {"b_account_id": account_id, "b_version": stored, "version": version, "updated_at": at, **values}
                )
        if updates:
            _expect_rows(executemany(self.connection, _UPDATE_INTERIM_ROW, updates), len(updates), "interim rows")
        if inserts:
            executemany(self.connection, _INSERT_INTERIM_ROW, inserts)
        for account_id in self._dirty:
            entry = self._current[account_id]
            assert entry is not None
            self._stored_version[account_id] = entry[1]
        self._dirty = {}
        marks = [
            {"sink": sink, "payment_ref": payment_ref, "version": version}
            for sinks, payment_ref, version in self._marks
            for sink in sinks
        ]
        self._marks = []
        if not marks:
            return
        upsert = _PENDING_UPSERTS.get(self.connection.dialect.name)
        if upsert is not None:
            executemany(self.connection, upsert, marks)  # in order: a later mark of the same row comes after
            return
        pending = t.interim_pending
        for mark in marks:
            updated = self.connection.execute(
                pending.update()
                .where(pending.c.sink == mark["sink"], pending.c.payment_ref == mark["payment_ref"])
                .values(version=_next_pending_version(pending.c.version, mark["version"]))
            )
            if updated.rowcount == 0:
                self.connection.execute(pending.insert().values(**mark))

    get = _unsupported("an interim row by payment reference")
    remove = _unsupported("removing an interim row")
    all = _unsupported("reading every interim row")
    stream = _unsupported("reading every interim row")
    pending = _unsupported("the pending interim rows")
    has_pending = _unsupported("the pending interim rows")
    rows = _unsupported("interim rows by payment reference")
    clear_pending = _unsupported("clearing pending interim rows")
    enable_sinks = _unsupported("registering sinks")
    queue_everything = _unsupported("queueing every interim row")
    note_delivery = _unsupported("noting a delivery")
    account_ids = _unsupported("reading every interim row")
    count_pending = _unsupported("the pending interim rows")
