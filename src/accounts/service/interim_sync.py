"""Interim finance sync: deliver the sync table to each interim sink, and reconcile.

The sync table is written in the transaction of the account change; this module
only carries it outward. A sink that fails keeps its pending rows and is retried
(backing off) on later passes, so an outage delays rows but never loses one, and
never holds up the account updates.

Deliveries to one sink never overlap, even from two processes (`locks`): each reads
the sync table and then writes, so overlapping ones could land in the wrong order.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol
from uuid import UUID

from accounts.domain.interim import FIELD_LABELS, InterimRow, format_date
from accounts.service.accounts import Clock, utc_now
from accounts.service.changes import remove_interim_row, sync_interim_row
from accounts.service.ports import InterimSink
from accounts.service.unit_of_work import UnitOfWork, in_transaction

log = logging.getLogger(__name__)

REWRITE_BATCH = 1_000_000  # a rewritten sink takes all pending rows in one pass
SYNC_TABLE = "sync-table"  # the reconcile target for the service's own sync table


class DeliveryLocks(Protocol):
    def hold(self, sink: str, wait: float = 0.0) -> AbstractContextManager[bool]:
        """Yield True while this caller alone may deliver to the sink; False when another is."""


@contextmanager
def _always(sink: str, wait: float = 0.0) -> Iterator[bool]:
    yield True


@dataclass
class RebuildReport:
    refreshed: int = 0  # sync-table rows brought back in line with the accounts
    queued: int = 0  # rows queued again, summed over the sinks
    removed: dict[str, int] = field(default_factory=dict)  # rows removed from a sink: no such account
    pending: dict[str, int] = field(default_factory=dict)  # left undelivered (a sink failing, or busy)


@dataclass
class InterimSync:
    uow_factory: Callable[..., UnitOfWork]
    sinks: Sequence[InterimSink]
    batch_size: int = 1000
    clock: Clock = utc_now
    locks: DeliveryLocks | None = None
    # A failing sink is tried again after base, 2 x base, ... up to max seconds.
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 30.0
    _failures: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _retry_at: dict[str, float] = field(default_factory=dict, init=False, repr=False)

    @property
    def sink_names(self) -> list[str]:
        return [sink.name for sink in self.sinks]

    def enable_sinks(self, attempts: int = 3) -> list[str]:
        """Queue every row for a sink switched on for the first time (switching is configuration only).

        Workers starting together race to register a sink; the loser finds it registered on its retry.
        """
        return in_transaction(
            self.uow_factory,
            lambda uow: uow.deliveries.enable_sinks(self.sink_names, self.clock()),
            attempts,
            "registering the interim sinks (another process registered them at the same time)",
        )

    # Delivering ------------------------------------------------------------------

    def flush_all(self, wait: float = 0.0) -> int:
        """Deliver everything pending to every sink now, backing off or not.

        A failing sink does not stop the others; its rows stay pending.
        """
        delivered = 0
        for sink in self.sinks:
            self._retry_at.pop(sink.name, None)
            while True:
                count = self._flush(sink, wait=wait)
                delivered += count
                if count == 0:
                    break
        return delivered

    def flush(self, sink: InterimSink) -> int:
        """One delivery to one sink: the rows it is owed. Returns the number of rows delivered.

        Cheap when there is nothing to do (one indexed query), so the worker calls it often;
        0 at once while the sink is backing off after a failure or another process delivers.
        """
        return self._flush(sink)

    def _flush(self, sink: InterimSink, *, wait: float = 0.0, force: bool = False) -> int:
        if not force and (self._backing_off(sink) or not self._owed_anything(sink)):
            return 0
        with self._hold(sink, wait) as held:
            if not held:
                return 0
            return self._deliver(sink, force=force)

    def _owed_anything(self, sink: InterimSink) -> bool:
        with self.uow_factory(read_only=True) as uow:
            if uow.deliveries.has_pending(sink.name):
                return True
        return sink.missing()

    def _deliver(self, sink: InterimSink, *, force: bool = False) -> int:
        """Deliver what the sink is owed; the caller holds its lock. A failure keeps it all pending."""
        if sink.rewrites_everything:
            return self._rewrite(sink, force=force)
        with self.uow_factory(read_only=True) as uow:
            pending = uow.deliveries.pending(sink.name, self.batch_size)
            rows = uow.deliveries.rows([ref for ref, _ in pending])
        if not pending:
            return 0
        try:
            present = {row.payment_ref for row in rows}
            gone = [ref for ref, _ in pending if ref not in present]
            if gone:  # a corrected payment reference, or no longer a tenure account
                sink.remove(gone)
            sink.deliver(rows)
        except Exception as error:  # any sink failure: keep the rows pending and retry later
            self._failed(sink, pending, error)
            return 0
        return self._delivered(sink, pending)

    def _rewrite(self, sink: InterimSink, *, force: bool) -> int:
        """Rewrite a sink whole from every row, streamed: the table is never held in memory at once."""
        failure: Exception | None = None
        with self.uow_factory(read_only=True) as uow:
            pending = uow.deliveries.pending(sink.name, REWRITE_BATCH)
            if not pending and not force and not sink.missing():
                return 0
            # Pending first, rows second (in the same read transaction, which the sink reads
            # the rows from): the rows are at least as new as what is cleared.
            reading = _Reading(uow.deliveries.stream())
            try:
                sink.deliver(reading)
            except Exception as error:
                if reading.failed:
                    raise  # the database, not the sink: as when the rows were read before delivering
                failure = error  # any sink failure: keep the rows pending and retry later
        if failure is not None:
            self._failed(sink, pending, failure)
            return 0
        return self._delivered(sink, pending)

    def _delivered(self, sink: InterimSink, pending: Sequence[tuple[str, int]]) -> int:
        with self.uow_factory() as uow:
            uow.deliveries.clear_pending(sink.name, pending)
            uow.deliveries.note_delivery(sink.name, self.clock(), None)
            uow.commit()
        self._recovered(sink)
        return len(pending)

    @contextmanager
    def _hold(self, sink: InterimSink, wait: float) -> Iterator[bool]:
        hold = self.locks.hold if self.locks is not None else _always
        with hold(sink.name, wait) as held:
            yield held

    def _backing_off(self, sink: InterimSink) -> bool:
        return time.monotonic() < self._retry_at.get(sink.name, 0.0)

    def _failed(self, sink: InterimSink, pending: Sequence[tuple[str, int]], error: Exception) -> None:
        failures = self._failures.get(sink.name, 0) + 1
        self._failures[sink.name] = failures
        delay = min(self.retry_max_seconds, self.retry_base_seconds * 2 ** (failures - 1))
        delay *= random.uniform(0.75, 1.0)  # workers side by side spread their retries
        self._retry_at[sink.name] = time.monotonic() + delay
        log.warning(
            "interim sink %s failed (attempt %d); %d row(s) stay pending, retrying in %.1fs: %s",
            sink.name,
            failures,
            len(pending),
            delay,
            error,
        )
        self._note(sink, f"{type(error).__name__}: {error}")

    def _recovered(self, sink: InterimSink) -> None:
        failures = self._failures.pop(sink.name, 0)
        self._retry_at.pop(sink.name, None)
        if failures:
            log.info("interim sink %s delivers again after %d failed attempt(s)", sink.name, failures)

    def _note(self, sink: InterimSink, error: str) -> None:
        try:
            with self.uow_factory() as uow:
                uow.deliveries.note_delivery(sink.name, self.clock(), error[:2000])
                uow.commit()
        except Exception:  # the database may be what is down; the log line above already says so
            log.debug("could not record the failure of sink %s", sink.name, exc_info=True)

    def pending_counts(self) -> dict[str, int]:
        with self.uow_factory(read_only=True) as uow:
            return {sink.name: uow.deliveries.count_pending(sink.name) for sink in self.sinks}

    # Rebuilding --------------------------------------------------------------------

    def rebuild(self, wait: float = 60.0) -> RebuildReport:
        """Make every sink hold exactly what the accounts say (`accounts interim rebuild`).

        The sync table is first brought back in line with the accounts (it can only lag
        if the row layout changed with an upgrade), then every row is queued again for
        every sink and delivered; rows an upserted sink holds for no account are removed.
        A sink another process is delivering to is waited for up to `wait` seconds.
        """
        report = RebuildReport(refreshed=self.refresh())
        with self.uow_factory() as uow:
            for sink in self.sinks:
                report.queued += uow.deliveries.queue_everything(sink.name)
            uow.commit()
        for sink in self.sinks:
            self._retry_at.pop(sink.name, None)
            with self._hold(sink, wait) as held:
                if not held:
                    log.warning("interim sink %s is busy in another process; it will deliver the queue", sink.name)
                    continue
                if not sink.rewrites_everything:
                    try:
                        report.removed[sink.name] = self._prune(sink)
                    except Exception as error:
                        self._failed(sink, [], error)
                        continue
                force = True
                while self._deliver(sink, force=force) and not self._backing_off(sink):
                    force = False
        report.pending = self.pending_counts()
        return report

    def refresh(self) -> int:
        """Bring the sync table in line with the accounts; returns the number of accounts corrected."""
        with self.uow_factory(read_only=True) as uow:
            expected = {source.account_id: source.row() for source in uow.accounts.interim_sources()}
            owners = uow.deliveries.account_ids()
            current = {owners[row.payment_ref]: row for row in uow.deliveries.all() if row.payment_ref in owners}
        stale = sorted(key for key in expected.keys() | current.keys() if expected.get(key) != current.get(key))
        corrected = len(stale)
        # A row may hold the key another needs (two references swapped): such a one goes round again.
        failed: dict[UUID, Exception] = {}
        for _ in range(3):
            failed = {}
            for account_id in stale:
                try:
                    self._resync(account_id)
                except Exception as error:  # a key still held by a row corrected later in the pass
                    failed[account_id] = error
            if not failed:
                break
            stale = list(failed)
        for account_id, reason in list(failed.items())[:10]:
            log.warning("could not bring the sync row of account %s in line: %s", account_id, reason)
        return corrected - len(failed)

    def _resync(self, account_id: UUID) -> None:
        with self.uow_factory() as uow:
            account = uow.accounts.get(account_id)
            if account is not None:
                sync_interim_row(uow, account, self.clock())
            else:
                remove_interim_row(uow, account_id)
            uow.commit()

    def _prune(self, sink: InterimSink) -> int:
        """Remove the rows an upserted sink holds for no tenure account."""
        with self.uow_factory(read_only=True) as uow:
            known = set(uow.deliveries.account_ids())
        extra = sorted({row.payment_ref for row in sink.read_rows()} - known)
        if extra:
            sink.remove(extra)
            log.info("removed %d row(s) from interim sink %s that no tenure account has", len(extra), sink.name)
        return len(extra)


class _Reading:
    """Rows streamed from the database to a sink, noting whether reading them failed."""

    def __init__(self, rows: Iterator[InterimRow]) -> None:
        self._rows = rows
        self.failed = False

    def __iter__(self) -> Iterator[InterimRow]:
        try:
            yield from self._rows
        except Exception:
            self.failed = True
            raise


# Reconciling ---------------------------------------------------------------------------


@dataclass
class Difference:
    target: str
    payment_ref: str
    kind: str  # missing | extra | changed | duplicate | unreadable
    fields: dict[str, tuple[object, object]] = field(default_factory=dict)  # InterimRow field -> (expected, found)
    detail: str = ""

    def describe(self) -> str:
        if self.kind == "changed":
            changes = "; ".join(
                f"{FIELD_LABELS.get(name, name)} expected {_shown(want)}, found {_shown(got)}"
                for name, (want, got) in self.fields.items()
            )
            return f"{self.target}: {self.payment_ref} changed: {changes}"
        if self.kind == "missing":
            return f"{self.target}: {self.payment_ref} missing ({self.detail})"
        if self.kind == "extra":
            return f"{self.target}: {self.payment_ref} extra: no tenure account has this payment ref ({self.detail})"
        if self.kind == "duplicate":
            return f"{self.target}: {self.payment_ref} duplicate: {self.detail}"
        return f"{self.target}: could not be read: {self.detail}"


def _shown(value: object) -> str:
    if isinstance(value, date):
        return format_date(value)
    return repr(value)


def expected_rows(uow: UnitOfWork) -> list[InterimRow]:
    """The rows the accounts (the source of truth) say the interim solution must hold."""
    return [source.row() for source in uow.accounts.interim_sources()]


def compare(target: str, expected: Iterable[InterimRow], found: Iterable[InterimRow]) -> list[Difference]:
    want = {row.payment_ref: row for row in expected}
    have: dict[str, InterimRow] = {}
    duplicates: dict[str, list[str]] = {}
    for row in found:
        first = have.setdefault(row.payment_ref, row)
        if first is not row:
            duplicates.setdefault(row.payment_ref, [first.rent_group]).append(row.rent_group)
    differences = []
    for ref in sorted(want.keys() | have.keys()):
        if ref in duplicates:
            differences.append(
                Difference(
                    target, ref, "duplicate", detail=f"{len(duplicates[ref])} rows, on {', '.join(duplicates[ref])}"
                )
            )
        if ref not in have:
            differences.append(Difference(target, ref, "missing", detail=f"expected on {want[ref].rent_group}"))
        elif ref not in want:
            differences.append(Difference(target, ref, "extra", detail=f"found on {have[ref].rent_group}"))
        else:
            names = want[ref].differences(have[ref])
            if names:
                fields = {name: (getattr(want[ref], name), getattr(have[ref], name)) for name in names}
                differences.append(Difference(target, ref, "changed", fields))
    return differences


@dataclass(frozen=True)
class Reconciliation:
    """What one reconciliation found: the rows expected, each target checked, and every difference."""

    expected: int  # rows the accounts say each target must hold
    targets: list[str]  # the sync table (when checked) and each sink, in the order checked
    differences: list[Difference]

    def matched(self) -> int:
        """(target, row) pairs that agree: each expected row in each readable target, less those that differ."""
        unreadable = {d.target for d in self.differences if d.kind == "unreadable"}
        wrong = {(d.target, d.payment_ref) for d in self.differences if d.kind in ("missing", "changed", "duplicate")}
        return sum(self.expected for target in self.targets if target not in unreadable) - len(wrong)

    def counts(self) -> dict[str, int]:
        """How many differences of each kind (missing, extra, changed, duplicate, unreadable)."""
        kinds: dict[str, int] = {}
        for difference in self.differences:
            kinds[difference.kind] = kinds.get(difference.kind, 0) + 1
        return kinds


def reconciliation(
    uow_factory: Callable[..., UnitOfWork], sinks: Sequence[InterimSink], *, sync_table: bool = True
) -> Reconciliation:
    """Compare the accounts with each sink (and the sync table): every difference, and what was checked."""
    with uow_factory(read_only=True) as uow:
        expected = expected_rows(uow)
        synced = uow.deliveries.all() if sync_table else None
    differences: list[Difference] = []
    targets: list[str] = []
    if synced is not None:
        targets.append(SYNC_TABLE)
        differences.extend(compare(SYNC_TABLE, expected, synced))
    for sink in sinks:
        targets.append(sink.name)
        try:
            found = sink.read_rows()
        except Exception as error:  # a missing server or a broken file is a disagreement, said plainly
            differences.append(Difference(sink.name, "", "unreadable", detail=f"{type(error).__name__}: {error}"))
            continue
        differences.extend(compare(sink.name, expected, found))
    return Reconciliation(len(expected), targets, differences)


def reconcile(
    uow_factory: Callable[..., UnitOfWork], sinks: Sequence[InterimSink], *, sync_table: bool = True
) -> list[Difference]:
    """Every difference between the accounts and each sink (and the sync table); empty when all agree."""
    return reconciliation(uow_factory, sinks, sync_table=sync_table).differences
