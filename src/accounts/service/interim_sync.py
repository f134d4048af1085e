"""Interim finance sync: deliver the sync table to each interim sink, and reconcile.

The sync table is written in the transaction of the account change; this module
only carries it outward. A sink that fails keeps its pending rows and is retried on
the next pass, so an outage delays rows but never loses one, and never holds up the
account updates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from accounts.domain.interim import InterimRow, interim_row
from accounts.service.accounts import Clock, utc_now
from accounts.service.ports import InterimSink
from accounts.service.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

REWRITE_BATCH = 1_000_000  # a rewritten sink takes all pending rows in one pass


@dataclass
class InterimSync:
    uow_factory: Callable[..., UnitOfWork]
    sinks: Sequence[InterimSink]
    batch_size: int = 1000
    clock: Clock = utc_now

    def enable_sinks(self) -> list[str]:
        """Queue every row for a sink switched on for the first time (switching is configuration only)."""
        with self.uow_factory() as uow:
            new = uow.interim.enable_sinks([sink.name for sink in self.sinks], self.clock())
            uow.commit()
        return new

    def rebuild(self) -> int:
        """Queue every row again for every sink, then deliver (`accounts interim rebuild`)."""
        with self.uow_factory() as uow:
            queued = sum(uow.interim.queue_everything(sink.name) for sink in self.sinks)
            uow.commit()
        self.flush_all()
        return queued

    def flush_all(self) -> int:
        """Deliver everything pending to every sink; a failing sink does not stop the others."""
        delivered = 0
        for sink in self.sinks:
            while True:
                count = self.flush(sink)
                delivered += count
                if count == 0:
                    break
        return delivered

    def flush(self, sink: InterimSink) -> int:
        """One delivery to one sink: the rows it is owed. Returns the number of rows delivered."""
        limit = REWRITE_BATCH if sink.rewrites_everything else self.batch_size
        with self.uow_factory(read_only=True) as uow:
            pending = uow.interim.pending(sink.name, limit)
            if not pending:
                return 0
            rows = uow.interim.all() if sink.rewrites_everything else uow.interim.rows([ref for ref, _ in pending])
        try:
            if not sink.rewrites_everything:
                present = {row.payment_ref for row in rows}
                gone = [ref for ref, _ in pending if ref not in present]
                if gone:
                    sink.remove(gone)
            sink.deliver(rows)
        except Exception as error:  # any sink failure: keep the rows pending and retry later
            log.warning("interim sink %s failed; %d rows stay pending: %s", sink.name, len(pending), error)
            self._note(sink, f"{type(error).__name__}: {error}")
            return 0
        with self.uow_factory() as uow:
            uow.interim.clear_pending(sink.name, pending)
            uow.interim.note_delivery(sink.name, self.clock(), None)
            uow.commit()
        return len(pending)

    def _note(self, sink: InterimSink, error: str) -> None:
        try:
            with self.uow_factory() as uow:
                uow.interim.note_delivery(sink.name, self.clock(), error[:2000])
                uow.commit()
        except Exception:  # the database may be what is down; the log line above already says so
            log.debug("could not record the failure of sink %s", sink.name, exc_info=True)


@dataclass
class Difference:
    target: str
    payment_ref: str
    kind: str  # missing | extra | changed
    fields: dict[str, tuple[object, object]] = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind == "changed":
            changes = "; ".join(
                f"{name}: expected {want!r}, found {got!r}" for name, (want, got) in self.fields.items()
            )
            return f"{self.target}: {self.payment_ref} changed ({changes})"
        if self.kind == "missing":
            return f"{self.target}: {self.payment_ref} missing"
        return f"{self.target}: {self.payment_ref} extra (no such tenure account)"


def expected_rows(uow: UnitOfWork) -> list[InterimRow]:
    """The rows the accounts (the source of truth) say the interim solution must hold."""
    return [interim_row(account, tenure) for account, tenure in uow.accounts.interim_sources()]


def compare(target: str, expected: Iterable[InterimRow], found: Iterable[InterimRow]) -> list[Difference]:
    want = {row.payment_ref: row for row in expected}
    have = {row.payment_ref: row for row in found}
    differences = []
    for ref in sorted(want.keys() | have.keys()):
        if ref not in have:
            differences.append(Difference(target, ref, "missing"))
        elif ref not in want:
            differences.append(Difference(target, ref, "extra"))
        else:
            names = want[ref].differences(have[ref])
            if names:
                fields = {name: (getattr(want[ref], name), getattr(have[ref], name)) for name in names}
                differences.append(Difference(target, ref, "changed", fields))
    return differences


def reconcile(uow_factory: Callable[..., UnitOfWork], sinks: Sequence[InterimSink]) -> list[Difference]:
    """Every difference between the accounts and each sink; empty when all agree."""
    with uow_factory(read_only=True) as uow:
        expected = expected_rows(uow)
    differences: list[Difference] = []
    for sink in sinks:
        differences.extend(compare(sink.name, expected, sink.read_rows()))
    return differences
