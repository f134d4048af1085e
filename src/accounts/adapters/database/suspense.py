"""Suspense items in storage: read through the unit of work's memory, written at commit (see `journal.py`).

As every repository of the account side: what a batch of a payment file asks about is read in
one `IN (...)` query and remembered; new items and new versions are kept in memory (undone with a
savepoint) and written at commit, one `executemany` each. The unique bank reference refuses a
second item for one payment, and an update carries the version read, so a change committed
meanwhile makes the commit a ConcurrencyConflict.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from accounts.adapters.database import tables as t
from accounts.adapters.database.bulk import executemany
from accounts.adapters.database.journal import Memory, chunks
from accounts.adapters.database.rows import aware
from accounts.domain.suspense import SuspenseItem, SuspenseStatus
from accounts.service.unit_of_work import ConcurrencyConflict, SuspenseCursor

_items = t.suspense_items.c
_BY_REFERENCES = sa.select(t.suspense_items).where(_items.reference.in_(sa.bindparam("references", expanding=True)))
_BY_ID = sa.select(t.suspense_items).where(_items.id == sa.bindparam("id"))
_BY_ID_FOR_UPDATE = _BY_ID.with_for_update()
_INSERT = t.suspense_items.insert()
_UPDATE = t.suspense_items.update().where(
    _items.id == sa.bindparam("b_id"), _items.version == sa.bindparam("b_version")
)
_LISTED = (_items.payment_date, _items.reference)


def suspense_values(item: SuspenseItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "payment_reference": item.payment_reference,
        "amount": item.amount,
        "payment_date": item.payment_date,
        "method": item.method,
        "reference": item.reference,
        "reason": item.reason.value,
        "created_at": item.created_at,
        "status": item.status.value,
        "proposed_account_id": item.proposed_account_id,
        "proposed_by": item.proposed_by,
        "approved_by": item.approved_by,
        "resolved_at": item.resolved_at,
        "transaction_id": item.transaction_id,
        "version": item.version,
    }


def suspense_from_row(row: sa.Row[Any]) -> SuspenseItem:
    return SuspenseItem(
        id=row.id,
        payment_reference=row.payment_reference,
        amount=Decimal(row.amount).quantize(Decimal("0.01")),
        payment_date=row.payment_date,
        method=row.method,
        reference=row.reference,
        reason=row.reason,
        created_at=aware(row.created_at),  # type: ignore[arg-type]
        status=row.status,
        proposed_account_id=row.proposed_account_id,
        proposed_by=row.proposed_by,
        approved_by=row.approved_by,
        resolved_at=aware(row.resolved_at),
        transaction_id=row.transaction_id,
        version=row.version,
    )


class SqlSuspenseItems:
    """Items by reference and by id in memory; added items and new versions written at commit."""

    def __init__(self, memory: Memory) -> None:
        self.memory = memory
        self.connection = memory.connection
        self.journal = memory.journal
        self._by_reference: dict[str, UUID | None] = {}  # read or added (None: no item has it)
        self._current: dict[UUID, SuspenseItem | None] = {}  # by id: the current version (None: no such)
        self._stored_version: dict[UUID, int] = {}  # the version in the database (absent: added here)
        self._locked: set[UUID] = set()
        self._dirty: dict[UUID, None] = {}  # added or changed here, in order
        memory.keeps_writes(self)

    def _remember(self, row: sa.Row[Any], *, fresh: bool = False) -> SuspenseItem:
        known = self._current.get(row.id)
        if known is not None and (not fresh or row.id in self._dirty):
            return known
        item = suspense_from_row(row)
        self._current[item.id] = item
        self._stored_version[item.id] = item.version
        self._by_reference[item.reference] = item.id
        return item

    def by_references(self, references: Sequence[str]) -> dict[str, SuspenseItem]:
        wanted = list(dict.fromkeys(references))
        for chunk in chunks([r for r in wanted if r not in self._by_reference]):
            for row in self.connection.execute(_BY_REFERENCES, {"references": chunk}):
                self._remember(row)
            for reference in chunk:
                self._by_reference.setdefault(reference, None)
        found: dict[str, SuspenseItem] = {}
        for reference in wanted:
            item_id = self._by_reference[reference]
            item = self._current.get(item_id) if item_id is not None else None
            if item is not None:
                found[reference] = item
        return found

    def get(self, item_id: UUID, *, for_update: bool = False) -> SuspenseItem | None:
        added = item_id in self._current and item_id not in self._stored_version
        if item_id not in self._current or (for_update and item_id not in self._locked and not added):
            query = _BY_ID_FOR_UPDATE if for_update else _BY_ID
            row = self.connection.execute(query, {"id": item_id}).first()
            if row is None:
                self._current.setdefault(item_id, None)
            else:
                self._remember(row, fresh=for_update)
                if for_update:
                    self._locked.add(item_id)
        return self._current[item_id]

    def add(self, item: SuspenseItem) -> None:
        self.journal.set(self._current, item.id, item)
        self.journal.set(self._by_reference, item.reference, item.id)
        self.journal.set(self._dirty, item.id, None)

    def update(self, item: SuspenseItem, expected_version: int) -> None:
        current = self.get(item.id)
        if current is None or current.version != expected_version:
            raise ConcurrencyConflict(f"suspense item {item.id} is no longer at version {expected_version}")
        self.journal.set(self._current, item.id, item)
        self.journal.set(self._dirty, item.id, None)

    def page(self, *, include_resolved: bool, after: SuspenseCursor | None, limit: int) -> list[SuspenseItem]:
        query = sa.select(t.suspense_items)
        if not include_resolved:
            query = query.where(_items.status != SuspenseStatus.RESOLVED.value)
        if after is not None:
            place = sa.tuple_(sa.literal(after.payment_date, sa.Date), sa.literal(after.reference, sa.String))
            query = query.where(sa.tuple_(*_LISTED) > place)
        query = query.order_by(*_LISTED).limit(limit)
        return [suspense_from_row(row) for row in self.memory.execute(query)]

    def dirty(self) -> bool:
        return bool(self._dirty)

    def flush(self) -> None:
        inserts, updates = [], []
        for item_id in self._dirty:
            item = self._current[item_id]
            assert item is not None
            values = suspense_values(item)
            stored = self._stored_version.get(item_id)
            if stored is None:
                inserts.append(values)
            else:
                del values["id"]
                updates.append({"b_id": item_id, "b_version": stored, **values})
        if inserts:
            executemany(self.connection, _INSERT, inserts)
        if updates:
            changed = executemany(self.connection, _UPDATE, updates)
            if changed != len(updates):
                raise ConcurrencyConflict(f"suspense items: {changed} of {len(updates)} rows were still as read")
        for item_id in self._dirty:
            item = self._current[item_id]
            assert item is not None
            self._stored_version[item_id] = item.version
        self._dirty = {}
