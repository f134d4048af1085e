"""The unit of work: one transaction per command, and the stores inside it.

The service layer depends on these protocols only. `adapters.database` implements
them once, set-based, for SQLite and PostgreSQL alike: what a command reads is
remembered, what it writes is kept and written at commit, so many commands sharing
one transaction (the listener's batch of events) and one command alone (an API
request: a batch of one) go through the same statements. `tests/fakes.py` holds
them in memory for the service layer's unit tests; `tests/contract` runs one suite
of rules against every implementation.

Two sides:

* the **account side**, changed by commands: accounts (with their payment references),
  the tenure copies, the processed events, the interim row of each tenure account
  with what each sink is owed of it, and the outbox of events. All of it is written
  together at commit, or not at all.
* the **delivery side**, read and acknowledged by the relay and the sink flushers:
  the outbox's pending events, the interim sinks' queues, the dead letters. These run
  in transactions of their own and are written as they are called.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, NamedTuple, Protocol, TypeVar
from uuid import UUID

from accounts.domain.account import Account, AccountType, RentGroupType
from accounts.domain.arrears import WorklistSort
from accounts.domain.charges import ChargeRun
from accounts.domain.events import EventEnvelope
from accounts.domain.interim import InterimRow, interim_row_from
from accounts.domain.ledger import Transaction
from accounts.domain.polarity import TargetType
from accounts.domain.suspense import SuspenseItem
from accounts.domain.tenure import TenureRecord

log = logging.getLogger(__name__)
T = TypeVar("T")


class ConcurrencyConflict(Exception):
    """Another transaction changed or claimed the same thing first; the command may be retried."""


def in_transaction(
    uow_factory: Callable[..., UnitOfWork],
    run: Callable[[UnitOfWork], T],
    attempts: int,
    what: str,
    *,
    retry: bool = True,
) -> T:
    """`run` in a unit of work, committed. A race lost at commit (ConcurrencyConflict) runs it again on a
    fresh unit of work, which sees what the winner left, up to `attempts` times (never when not `retry`)."""
    for attempt in range(1, attempts + 1):
        try:
            with uow_factory() as uow:
                result = run(uow)
                uow.commit()
                return result
        except ConcurrencyConflict:
            if not retry or attempt == attempts:
                raise
            log.info("retrying %s after a lost race (attempt %d)", what, attempt)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class DeadLetter:
    id: int
    source: str
    event_id: str | None
    event_type: str | None
    body: bytes
    reason: str
    attempts: int
    created_at: datetime
    replayed_at: datetime | None


@dataclass(frozen=True)
class ReconciliationRecord:
    """One reconciliation's outcome, kept so that finance officers see when the copies were last checked."""

    id: UUID
    started_at: datetime
    finished_at: datetime
    run_by: str  # who asked: a signed-in officer's email, or the login that ran the command
    targets: tuple[str, ...]  # the sync table and each sink checked
    expected: int  # rows the accounts say each target must hold
    matched: int  # (target, row) pairs that agree
    missing: int
    extra: int
    changed: int
    duplicate: int
    unreadable: int
    differences: tuple[str, ...]  # the first differences, described (at most `RECONCILIATION_DIFFERENCES_KEPT`)

    @property
    def difference_count(self) -> int:
        return self.missing + self.extra + self.changed + self.duplicate + self.unreadable


class InterimSource(NamedTuple):
    """What a tenure account's interim row is made from, as stored (no `Account` made: reconciling reads 100,000s)."""

    account_id: UUID
    payment_reference: str
    rent_group_type: str | None
    start_date: datetime | None
    end_date: datetime | None
    account_tenure: dict[str, Any] | None  # the account's tenure in wire form
    tenure_data: dict[str, Any] | None  # the listener's copy of the tenure

    def row(self) -> InterimRow:
        return interim_row_from(
            self.payment_reference,
            self.rent_group_type,
            self.start_date,
            self.end_date,
            self.account_tenure,
            self.tenure_data,
        )


@dataclass(frozen=True)
class OutboxMessage:
    position: int
    topic: str
    group_id: str
    event_id: UUID
    payload: bytes


# The account side ---------------------------------------------------------------------


class AccountRepository(Protocol):
    def get(self, account_id: UUID, *, for_update: bool = False) -> Account | None:
        """The current version; `for_update` holds it (PostgreSQL row lock) until the transaction ends."""

    def by_target(self, target_id: UUID, account_type: AccountType | None) -> list[Account]:
        """The target's accounts (of one type, if given), oldest first (`domain.account.oldest_first`)."""

    def payment_reference_taken(self, payment_reference: str) -> bool: ...

    def by_payment_references(self, references: Sequence[str], *, for_update: bool = False) -> dict[str, Account]:
        """The accounts holding these payment references (those no account holds are absent), in one read;
        `for_update` holds them (PostgreSQL row locks) until the transaction ends, as `get` does."""

    def add(self, account: Account, amount_owed: Decimal) -> None: ...

    def update(self, account: Account, expected_version: int, amount_owed: Decimal) -> None:
        """Store a new version; ConcurrencyConflict when the stored version is not expected_version."""

    def changed(self) -> list[Account]:
        """The latest version of every account added or updated in this unit of work (undone ones not)."""

    def arrears(
        self, account_type: AccountType | None, sort_column: str, descending: bool, limit: int
    ) -> list[Account]: ...

    def interim_sources(self) -> Iterator[InterimSource]:
        """What every tenure Master account's interim row is made from."""

    def search(self, text: str, limit: int) -> list[Account]:
        """At most `limit` accounts a person's search finds, in payment reference order.

        `text` of digits alone (`payment_reference.is_reference_search`) is a payment reference or its
        first digits: the first `limit` of a range of the payment reference index, whose first entry is the
        exact reference when one holds it (it sorts before its longer namesakes). Any other text is part of
        the tenure's address or of a primary tenant's name, case aside (ASCII letters only, on SQLite): a scan
        that stops at the `limit`-th match, so when more match, which of them are found is the storage's
        (the caller asks for a narrower search).
        """

    def after(self, account_id: UUID | None, limit: int) -> list[Account]:
        """At most `limit` accounts in id order, after `account_id` (from the first when None), held for
        update until the transaction ends (a charge run's batch)."""

    def worklist(
        self,
        rent_group: RentGroupType | None,
        min_weeks: Decimal | None,
        min_owed: Decimal | None,
        sort: WorklistSort,
        descending: bool,
        after: WorklistCursor | None,
        limit: int,
    ) -> list[tuple[Account, Decimal]]:
        """Accounts in arrears (with the amount owed), at most `limit`, in worklist order after `after`.

        Filtered by rent group, stored weeks in arrears (at least `min_weeks`) and amount owed (at
        least `min_owed`); sorted by the stored value of `sort` (`domain.arrears.WorklistSort`),
        `descending` as the caseworker reads it (most days since the last payment first is the
        earliest `arrears_since` first), ties by account id in the same direction as the stored value.
        """


class WorklistCursor(NamedTuple):
    """A place in the worklist: the stored value sorted by (amount owed, weeks, or the date days count from) and the id."""

    value: Decimal | date
    account_id: UUID


class TargetTypeRepository(Protocol):
    def get(self, name: str) -> TargetType | None: ...
    def all(self) -> list[TargetType]: ...


class PaymentReferenceSerials(Protocol):
    def next_serial(self) -> int:
        """A serial no other transaction will ever get (held until this one ends)."""


class ProcessedEvents(Protocol):
    def seen(self, event_id: UUID) -> bool: ...
    def record(self, event: EventEnvelope, outcome: str, at: datetime) -> None: ...


class TenureCopies(Protocol):
    def get(self, tenure_id: UUID, *, for_update: bool = False) -> TenureRecord | None:
        """A copy the caller may change freely: nothing is stored until `save`."""

    def save(self, record: TenureRecord, at: datetime) -> None: ...


class InterimRows(Protocol):
    """Each tenure account's interim row, and which sinks are owed which version of it."""

    def by_account(self, account_id: UUID) -> InterimRow | None: ...

    def save(self, account_id: UUID, row: InterimRow, at: datetime) -> int:
        """Insert or replace the account's row (its key may change); return the new version."""

    def remove(self, account_id: UUID) -> tuple[str, int] | None:
        """Delete the account's row: (its payment ref, the version its removal counts as), or None."""

    def mark_pending(self, sinks: Sequence[str], payment_ref: str, version: int) -> None:
        """The sinks are owed this version of the row (pending versions only ever rise)."""

    def registered_sinks(self) -> list[str]:
        """Every sink ever enabled, configured in this process or not."""


class StatementCursor(NamedTuple):
    """A place in an account's statement: its transaction date, then its posting order (`position`)."""

    transaction_date: date
    position: int


class DailyOwed(NamedTuple):
    """What an account's transactions add to what is owed: all those dated before a day, and those of
    each day from it on (days with none left out). A balance at the end of any of those days follows."""

    before: Decimal
    days: dict[date, Decimal]


class LedgerDifference(NamedTuple):
    """An account whose stored balance is not the sum of its transactions (`accounts ledger verify`)."""

    account_id: UUID
    account_balance: Decimal
    ledger_balance: Decimal


class Transactions(Protocol):
    """The activity ledger: transactions are added, never changed; written at commit, in posting order."""

    def get(self, transaction_id: UUID) -> Transaction | None: ...

    def get_many(self, transaction_ids: Sequence[UUID]) -> dict[UUID, Transaction]:
        """Those of these transactions that are posted (here or before), in one read: a payment file's batch."""

    def read_ahead(self, transaction_ids: Sequence[UUID]) -> None:
        """Whether these ids are posted, read at once (a batch's `get`s then answer from memory). Speed only."""

    def reversal_of(self, transaction_id: UUID) -> Transaction | None:
        """The Reversal of this transaction, if it has one (at most one: the unique index backs it)."""

    def add(self, transaction: Transaction) -> None:
        """Kept, and written at commit; a second transaction with the same id, or a second reversal of
        one transaction, makes the commit a ConcurrencyConflict."""

    def posted(self) -> list[Transaction]:
        """What was added in this unit of work, in order (what a savepoint undid not)."""

    def page(
        self,
        account_id: UUID,
        *,
        from_date: date | None,
        to_date: date | None,
        after: StatementCursor | None,
        limit: int,
    ) -> list[tuple[StatementCursor, Transaction]]:
        """The account's transactions in statement order (transaction date, then posting order), dates
        within [from_date, to_date] when given, strictly after `after` when given, at most `limit`."""

    def owed_before(self, account_id: UUID, before: StatementCursor) -> Decimal:
        """How much the transactions before that place in the statement add to what is owed
        (the sum of each one's `owed_change`): a statement page's opening balance, polarity aside."""

    def owed_by_day(self, account_id: UUID, first_day: date, last_day: date) -> DailyOwed:
        """In one read: how much the transactions dated before `first_day` add to what is owed, and how
        much those of each day from `first_day` to `last_day` add (the balance chart's weeks)."""

    def differences(self) -> Iterator[LedgerDifference]:
        """Every account whose balance is not the sum of its transactions (with its target type's polarity)."""

    def count(self) -> int:
        """How many transactions have been posted, ever (the metrics' ledger postings)."""


@dataclass(frozen=True)
class ParkedEvent:
    """A tenure event kept until its tenure is seen."""

    event: EventEnvelope
    reason: str
    parked_at: datetime


class ParkedEvents(Protocol):
    """Events waiting for their tenure's create; kept at commit like everything else (journaled)."""

    def park(self, event: EventEnvelope, reason: str, at: datetime) -> None:
        """Keep it (a second delivery of the same event changes nothing)."""

    def for_tenure(self, tenure_id: UUID) -> list[ParkedEvent]:
        """The tenure's parked events in the order they happened (dateTime, then id)."""

    def remove(self, tenure_id: UUID, event_ids: Sequence[UUID]) -> None:
        """Applied: no longer parked."""

    def list(self, limit: int) -> list[ParkedEvent]:
        """The oldest parked first (for `accounts events parked`)."""

    def count(self) -> int: ...


class SuspenseCursor(NamedTuple):
    """A place in the suspense list: oldest payment first, then by the bank's reference (unique)."""

    payment_date: date
    reference: str


class SuspenseItems(Protocol):
    """Payments set aside until two people place them; one item per bank reference, written at commit."""

    def by_references(self, references: Sequence[str]) -> dict[str, SuspenseItem]:
        """The items of these bank references (absent: none), in one read."""

    def get(self, item_id: UUID, *, for_update: bool = False) -> SuspenseItem | None: ...

    def add(self, item: SuspenseItem) -> None:
        """Kept, and written at commit; a second item with the same reference (or id) makes the commit a
        ConcurrencyConflict."""

    def update(self, item: SuspenseItem, expected_version: int) -> None:
        """Store a new version; ConcurrencyConflict (here or at commit) when the stored one is not expected_version."""

    def page(self, *, include_resolved: bool, after: SuspenseCursor | None, limit: int) -> list[SuspenseItem]:
        """Oldest payment first (payment date, then reference), strictly after `after`, at most `limit`."""


class ChargeRuns(Protocol):
    """Charge runs and their progress: added and saved with the batch they describe, written at commit."""

    def get(self, run_id: UUID, *, for_update: bool = False) -> ChargeRun | None:
        """The run as stored; `for_update` holds it (PostgreSQL row lock): two processes on one run take turns."""

    def unfinished(self, week_starts: date) -> ChargeRun | None:
        """The week's run that has not finished, if there is one (at most one: a unique index backs it)."""

    def add(self, run: ChargeRun) -> None: ...

    def save(self, run: ChargeRun) -> None:
        """Store a new version of the run (its version one more than the stored one: ConcurrencyConflict if not)."""

    def count_accounts(self) -> int:
        """How many accounts are stored: a run's total, for its progress bar."""


class Outbox(Protocol):
    def add(self, topic: str, event: EventEnvelope, group_id: str) -> None: ...
    def pending(self, limit: int) -> list[OutboxMessage]: ...
    def mark_published(self, positions: Sequence[int], at: datetime) -> None: ...
    def count_pending(self) -> int: ...

    def oldest_pending_at(self) -> datetime | None:
        """When the oldest event still to publish was written; None when none is waiting."""


# The delivery side --------------------------------------------------------------------


class InterimDeliveries(Protocol):
    """What each interim sink is owed, and how its deliveries went."""

    def pending(self, sink: str, limit: int) -> list[tuple[str, int]]:
        """(payment_ref, version) the sink has still to receive, oldest first."""

    def has_pending(self, sink: str) -> bool: ...
    def count_pending(self, sink: str) -> int: ...
    def rows(self, payment_refs: Sequence[str]) -> list[InterimRow]: ...
    def all(self) -> list[InterimRow]: ...

    def stream(self) -> Iterator[InterimRow]:
        """Every row, by payment ref, read a batch at a time; consumed before the unit of work ends."""

    def account_ids(self) -> dict[str, UUID]:
        """payment ref -> account id, for every row."""

    def clear_pending(self, sink: str, delivered: Sequence[tuple[str, int]]) -> None:
        """Forget what was delivered, unless the row changed again meanwhile."""

    def enable_sinks(self, sinks: Sequence[str], at: datetime) -> list[str]:
        """Register sinks; a sink seen for the first time gets every row queued. Returns those."""

    def queue_everything(self, sink: str) -> int: ...
    def note_delivery(self, sink: str, at: datetime, error: str | None) -> None: ...

    def last_delivered_at(self, sink: str) -> datetime | None:
        """When the sink last took a delivery without failing; None if it never has."""

    def last_error(self, sink: str) -> str | None:
        """Why the sink's last delivery failed; None when it went well (or none was tried)."""


class DeadLetters(Protocol):
    def add(
        self,
        source: str,
        body: bytes,
        reason: str,
        attempts: int,
        at: datetime,
        event_id: str | None = None,
        event_type: str | None = None,
    ) -> None: ...

    def list(
        self, include_replayed: bool = False, *, after: int | None = None, limit: int | None = None
    ) -> builtins.list[DeadLetter]:
        """Oldest first; from the one after `after` (an id), at most `limit` of them."""

    def count(self, include_replayed: bool = False) -> int: ...
    def get(self, dead_letter_id: int) -> DeadLetter | None: ...

    def by_event_id(self, event_id: str) -> builtins.list[DeadLetter]:
        """Every letter of that event, replayed or not, oldest first (a replay dead-lettered again is a new one)."""

    def replayed(self, limit: int) -> builtins.list[DeadLetter]:
        """The letters replayed last, the latest replay first."""

    def mark_replayed(self, dead_letter_id: int, at: datetime) -> None: ...


class Reconciliations(Protocol):
    """Each reconciliation's outcome, written as it finishes."""

    def add(self, record: ReconciliationRecord) -> None: ...

    def latest(self) -> ReconciliationRecord | None:
        """The one that finished last; None before any has run."""


class UnitOfWork(Protocol):
    accounts: AccountRepository
    target_types: TargetTypeRepository
    payment_references: PaymentReferenceSerials
    processed_events: ProcessedEvents
    tenures: TenureCopies
    interim: InterimRows
    transactions: Transactions
    parked: ParkedEvents
    outbox: Outbox
    deliveries: InterimDeliveries
    dead_letters: DeadLetters
    reconciliations: Reconciliations
    suspense: SuspenseItems
    charge_runs: ChargeRuns
    # The interim sinks configured in this process (`service/changes.py` owes a change to these and to every
    # sink ever registered); given by bootstrap to every unit of work it makes.
    interim_sinks: Sequence[str]

    def __enter__(self) -> UnitOfWork: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        """Roll back whatever was not committed."""

    def commit(self) -> None:
        """What the accounts raised (their events, their interim rows: `service/changes.write_raised`) kept
        too, then everything written at once. ConcurrencyConflict when another transaction changed or
        claimed something first."""

    def savepoint(self) -> AbstractContextManager[None]:
        """An exception inside undoes only what was done inside (then propagates); nothing is written before commit."""

    def read_ahead(self, event_ids: Sequence[UUID], tenure_ids: Sequence[UUID]) -> None:
        """What commands about these events and tenures will read, read at once (the listener's batch).

        Only a matter of speed: without it each is read when first asked for.
        """

    def read_ahead_postings(self, accounts: Sequence[Account], transaction_ids: Sequence[UUID]) -> None:
        """What postings to these (already read) accounts will read, read at once: whether the transaction
        ids are posted, the accounts of their targets (one active Master per target), each tenure account's
        tenure copy (not locked) and interim row. Only a matter of speed."""
