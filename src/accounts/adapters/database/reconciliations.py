"""Reconciliation outcomes in storage: one row each, written as the reconciliation finishes."""

from __future__ import annotations

import sqlalchemy as sa

from accounts.adapters.database import tables as t
from accounts.adapters.database.journal import Memory
from accounts.adapters.database.rows import aware
from accounts.service.unit_of_work import ReconciliationRecord

_rows = t.interim_reconciliations.c
_LATEST = sa.select(t.interim_reconciliations).order_by(_rows.finished_at.desc(), _rows.id.desc()).limit(1)


class SqlReconciliations:
    def __init__(self, memory: Memory) -> None:
        self.memory = memory

    def add(self, record: ReconciliationRecord) -> None:
        self.memory.execute(
            t.interim_reconciliations.insert().values(
                id=record.id,
                started_at=record.started_at,
                finished_at=record.finished_at,
                run_by=record.run_by,
                targets=list(record.targets),
                expected=record.expected,
                matched=record.matched,
                missing=record.missing,
                extra=record.extra,
                changed=record.changed,
                duplicate=record.duplicate,
                unreadable=record.unreadable,
                differences=list(record.differences),
            )
        )

    def latest(self) -> ReconciliationRecord | None:
        row = self.memory.execute(_LATEST).first()
        if row is None:
            return None
        return ReconciliationRecord(
            id=row.id,
            started_at=aware(row.started_at),  # type: ignore[arg-type]
            finished_at=aware(row.finished_at),  # type: ignore[arg-type]
            run_by=row.run_by,
            targets=tuple(row.targets),
            expected=row.expected,
            matched=row.matched,
            missing=row.missing,
            extra=row.extra,
            changed=row.changed,
            duplicate=row.duplicate,
            unreadable=row.unreadable,
            differences=tuple(row.differences),
        )
