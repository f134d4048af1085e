"""Charge runs as stored: read when asked for, added and saved in memory and written at commit with the batch.

A run's row is written in the same transaction as the charges of the batch it counts, so
what it says is done is done, and a run stopped between two batches carries on after the last
account it names. Saves are guarded by the version read (`WHERE version = :read`), as account
updates are: two processes on one run cannot both count the same batch.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from accounts.adapters.database import tables as t
from accounts.adapters.database.bulk import executemany
from accounts.adapters.database.journal import Memory
from accounts.adapters.database.rows import aware
from accounts.domain.account import Actor
from accounts.domain.charges import ChargeRun, Refusal, RunStatus
from accounts.domain.rent_week import RentWeek
from accounts.service.unit_of_work import ConcurrencyConflict

_runs = t.charge_runs.c
_RUN = sa.select(t.charge_runs).where(_runs.id == sa.bindparam("id"))
_RUN_FOR_UPDATE = _RUN.with_for_update()
_UNFINISHED = sa.select(t.charge_runs).where(
    _runs.week_starting == sa.bindparam("week_starting"), _runs.finished_at.is_(None)
)
_COUNT_ACCOUNTS = sa.select(sa.func.count()).select_from(t.accounts)
_INSERT = t.charge_runs.insert()
_UPDATE = t.charge_runs.update().where(_runs.id == sa.bindparam("b_id"), _runs.version == sa.bindparam("b_version"))


def run_values(run: ChargeRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "week_starting": run.week.starts,
        "financial_year": run.week.financial_year,
        "period_no": run.week.period_no,
        "status": run.status.value,
        "started_by_name": run.started_by.name,
        "started_by_email": run.started_by.email,
        "started_at": run.started_at,
        "updated_at": run.updated_at,
        "finished_at": run.finished_at,
        "accounts_total": run.accounts_total,
        "last_account_id": run.last_account_id,
        "accounts_done": run.accounts_done,
        "accounts_charged": run.accounts_charged,
        "accounts_not_charged": run.accounts_not_charged,
        "charges_posted": run.charges_posted,
        "amount_posted": run.amount_posted,
        "charges_skipped": run.charges_skipped,
        "charges_refused": run.charges_refused,
        "refusals": [
            {"accountId": str(refusal.account_id), "chargeType": refusal.charge_type, "reason": refusal.reason}
            for refusal in run.refusals
        ],
        "version": run.version,
    }


def run_from_row(row: sa.Row[Any]) -> ChargeRun:
    return ChargeRun(
        id=row.id,
        week=RentWeek(row.financial_year, row.period_no, row.week_starting),
        started_by=Actor(row.started_by_name, row.started_by_email),
        started_at=aware(row.started_at),  # type: ignore[arg-type]
        updated_at=aware(row.updated_at),  # type: ignore[arg-type]
        accounts_total=row.accounts_total,
        status=RunStatus(row.status),
        finished_at=aware(row.finished_at),
        last_account_id=row.last_account_id,
        accounts_done=row.accounts_done,
        accounts_charged=row.accounts_charged,
        accounts_not_charged=row.accounts_not_charged,
        charges_posted=row.charges_posted,
        amount_posted=Decimal(row.amount_posted).quantize(Decimal("0.01")),
        charges_skipped=row.charges_skipped,
        charges_refused=row.charges_refused,
        refusals=tuple(
            Refusal(UUID(item["accountId"]), item["chargeType"], item["reason"]) for item in row.refusals or []
        ),
        version=row.version,
    )


class SqlChargeRuns:
    """Runs read when asked for; added and saved ones kept and written at commit, saves guarded by version."""

    def __init__(self, memory: Memory) -> None:
        self.connection = memory.connection
        self.journal = memory.journal
        self._kept: dict[UUID, ChargeRun] = {}  # added or saved here, the latest version
        self._base: dict[UUID, int | None] = {}  # the version the database holds of each (None: added here)
        memory.keeps_writes(self)

    def get(self, run_id: UUID, *, for_update: bool = False) -> ChargeRun | None:
        if run_id in self._kept and not for_update:
            return self._kept[run_id]
        row = self.connection.execute(_RUN_FOR_UPDATE if for_update else _RUN, {"id": run_id}).first()
        if run_id in self._kept:
            return self._kept[run_id]  # what this unit of work saved is newer
        return None if row is None else run_from_row(row)

    def unfinished(self, week_starts: date) -> ChargeRun | None:
        kept = [run for run in self._kept.values() if run.week.starts == week_starts and not run.finished]
        if kept:
            return kept[0]
        row = self.connection.execute(_UNFINISHED, {"week_starting": week_starts}).first()
        found = None if row is None else self._kept.get(row.id, run_from_row(row))
        return None if found is None or found.finished else found

    def add(self, run: ChargeRun) -> None:
        self.journal.set(self._base, run.id, None)
        self.journal.set(self._kept, run.id, run)

    def save(self, run: ChargeRun) -> None:
        kept = self._kept.get(run.id)
        if kept is not None and kept.version != run.version - 1:
            raise ConcurrencyConflict(f"charge run {run.id} is no longer at version {run.version - 1}")
        if run.id not in self._base:
            self.journal.set(self._base, run.id, run.version - 1)  # checked when written
        self.journal.set(self._kept, run.id, run)

    def count_accounts(self) -> int:
        return int(self.connection.execute(_COUNT_ACCOUNTS).scalar_one())

    def dirty(self) -> bool:
        return bool(self._kept)

    def flush(self) -> None:
        inserts, updates = [], []
        for run in self._kept.values():
            values = run_values(run)
            base = self._base[run.id]
            if base is None:
                inserts.append(values)
            else:
                del values["id"]
                updates.append({"b_id": run.id, "b_version": base, **values})
        if inserts:
            executemany(self.connection, _INSERT, inserts)
        if updates:
            changed = executemany(self.connection, _UPDATE, updates)
            if changed != len(updates):
                raise ConcurrencyConflict(f"charge runs: {changed} of {len(updates)} rows were still as read")
        self._base = {run.id: run.version for run in self._kept.values()}
        self._kept = {}
