"""Reconciling the interim copies on request, and keeping each outcome.

`accounts interim reconcile` and the /interim page's "Run a reconciliation" go through `run`: the
comparison itself is `interim_sync.reconciliation`; its outcome (when, who, counts, the first
differences described) is kept, so the page can say when the copies were last checked and how it went.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from accounts.service.accounts import Clock, utc_now
from accounts.service.interim_sync import Reconciliation, reconciliation
from accounts.service.ports import InterimSink
from accounts.service.unit_of_work import ReconciliationRecord, UnitOfWork, in_transaction

# Differences kept with the outcome, described: enough to act on; the command lists them all.
RECONCILIATION_DIFFERENCES_KEPT = 200


@dataclass
class ReconciliationService:
    uow_factory: Callable[..., UnitOfWork]
    # The copies to check, found when asked (`Application.reconcile_targets`: the sinks, and any other located).
    targets: Callable[[], Sequence[InterimSink]]
    clock: Clock = utc_now

    def run(self, run_by: str) -> tuple[ReconciliationRecord, Reconciliation]:
        """Compare the accounts with every copy now and keep the outcome; both returned (the command lists all)."""
        started = self.clock()
        found = reconciliation(self.uow_factory, self.targets())
        counts = found.counts()
        record = ReconciliationRecord(
            id=uuid.uuid4(),
            started_at=started,
            finished_at=self.clock(),
            run_by=run_by[:200],
            targets=tuple(found.targets),
            expected=found.expected,
            matched=found.matched(),
            missing=counts.get("missing", 0),
            extra=counts.get("extra", 0),
            changed=counts.get("changed", 0),
            duplicate=counts.get("duplicate", 0),
            unreadable=counts.get("unreadable", 0),
            differences=tuple(d.describe() for d in found.differences[:RECONCILIATION_DIFFERENCES_KEPT]),
        )
        in_transaction(self.uow_factory, lambda uow: uow.reconciliations.add(record), 1, "keeping a reconciliation")
        return record, found

    def latest(self) -> ReconciliationRecord | None:
        """The last reconciliation's outcome; None before any has run."""
        with self.uow_factory(read_only=True) as uow:
            return uow.reconciliations.latest()
