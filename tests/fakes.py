"""In-memory fakes of the service layer's ports, for its unit tests (no database, no files, no network).

`FakeDatabase` holds what is committed; each `FakeUnitOfWork` it makes works on a
snapshot of it taken when it starts, and keeps every write as a change to replay.
At commit the changes are replayed on the committed state with the guards the SQL
adapter's statements carry (the version read, the keys), then the unique rules are
checked, and only then is the result made the committed state: nothing is visible
to another unit of work before, and nothing survives one that ends uncommitted.

`tests/contract` holds these fakes to the same rules as the SQL adapter.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any
from uuid import UUID

from accounts.adapters.database.rows import account_json, outbox_values, worklist_values
from accounts.domain.account import Account, AccountTenure, AccountType, RentGroupType, oldest_first, wire_view
from accounts.domain.arrears import WorklistSort
from accounts.domain.charges import ChargeRun
from accounts.domain.events import EventEnvelope
from accounts.domain.interim import InterimRow
from accounts.domain.ledger import Transaction
from accounts.domain.payment_reference import FIRST_SERIAL, is_reference_search
from accounts.domain.polarity import DEFAULT_TARGET_TYPES, ZERO, Polarity, TargetType
from accounts.domain.suspense import SuspenseItem, SuspenseStatus
from accounts.domain.tenure import TenureRecord
from accounts.service.changes import write_raised
from accounts.service.ports import (
    ACCOUNTS_TOPIC,
    InterimSink,
    MessageBroker,
    ReceivedMessage,
    StoredAccount,
    TransientError,
)
from accounts.service.unit_of_work import (
    AccountRepository,
    ChargeRuns,
    ConcurrencyConflict,
    DailyOwed,
    DeadLetter,
    DeadLetters,
    InterimDeliveries,
    InterimRows,
    InterimSource,
    LedgerDifference,
    Outbox,
    OutboxMessage,
    ParkedEvent,
    ParkedEvents,
    PaymentReferenceSerials,
    ProcessedEvents,
    ReconciliationRecord,
    Reconciliations,
    StatementCursor,
    SuspenseCursor,
    SuspenseItems,
    TargetTypeRepository,
    TenureCopies,
    Transactions,
    WorklistCursor,
)

SERIAL_WAIT_SECONDS = 10.0

# The stored state ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Outboxed:
    position: int
    topic: str
    group_id: str
    event_id: UUID
    payload: bytes
    created_at: datetime
    published_at: datetime | None = None


@dataclass(frozen=True)
class _Sink:
    enabled_at: datetime
    last_delivered_at: datetime | None = None
    last_error: str | None = None


@dataclass
class State:
    """Everything stored. Values are immutable (tenure copies are copied in and out), so a copy is shallow."""

    target_types: dict[str, TargetType]
    accounts: dict[UUID, tuple[Account, Decimal]] = field(default_factory=dict)  # id -> (account, amount owed)
    next_serial: int = FIRST_SERIAL
    processed: dict[UUID, str] = field(default_factory=dict)  # event id -> outcome
    tenures: dict[UUID, TenureRecord] = field(default_factory=dict)
    interim: dict[UUID, tuple[InterimRow, int]] = field(default_factory=dict)  # account id -> (row, version)
    pending: dict[tuple[str, str], int] = field(default_factory=dict)  # (sink, payment ref) -> version
    sinks: dict[str, _Sink] = field(default_factory=dict)
    outbox: list[_Outboxed] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # The ledger, in posting order: id -> (position, transaction); and reversed id -> its Reversal's id.
    transactions: dict[UUID, tuple[int, Transaction]] = field(default_factory=dict)
    reversals: dict[UUID, UUID] = field(default_factory=dict)
    next_position: int = 1
    parked: dict[UUID, ParkedEvent] = field(default_factory=dict)  # event id -> the event waiting for its tenure
    suspense: dict[UUID, SuspenseItem] = field(default_factory=dict)
    charge_runs: dict[UUID, ChargeRun] = field(default_factory=dict)
    reconciliations: list[ReconciliationRecord] = field(default_factory=list)

    def copy(self) -> State:
        return State(
            dict(self.target_types),
            dict(self.accounts),
            self.next_serial,
            dict(self.processed),
            dict(self.tenures),
            dict(self.interim),
            dict(self.pending),
            dict(self.sinks),
            list(self.outbox),
            list(self.dead_letters),
            dict(self.transactions),
            dict(self.reversals),
            self.next_position,
            dict(self.parked),
            dict(self.suspense),
            dict(self.charge_runs),
            list(self.reconciliations),
        )

    def check_unique(self) -> None:
        """The unique keys the database holds (its indexes): broken ones make the commit a conflict."""
        references = [account.payment_reference for account, _ in self.accounts.values()]
        if len(references) != len(set(references)):
            raise ConcurrencyConflict("two accounts would share a payment reference")
        masters = [
            account.target_id
            for account, _ in self.accounts.values()
            if account.account_type is AccountType.MASTER and account.is_active
        ]
        if len(masters) != len(set(masters)):
            raise ConcurrencyConflict("a target would have two active Master accounts")
        refs = [row.payment_ref for row, _ in self.interim.values()]
        if len(refs) != len(set(refs)):
            raise ConcurrencyConflict("two interim rows would share a payment reference")
        bank_references = [item.reference for item in self.suspense.values()]
        if len(bank_references) != len(set(bank_references)):
            raise ConcurrencyConflict("two suspense items would share a bank reference")
        weeks = [run.week.starts for run in self.charge_runs.values() if not run.finished]
        if len(weeks) != len(set(weeks)):
            raise ConcurrencyConflict("a week would have two unfinished charge runs")


# A change kept by a unit of work: the guard it is written with (raises ConcurrencyConflict), and the write.
@dataclass(frozen=True)
class _Change:
    write: Callable[[State], None]
    guard: Callable[[State], None] = lambda state: None


def _copy(record: TenureRecord) -> TenureRecord:
    return TenureRecord(record.tenure_id, dict(record.data), dict(record.stamps), record.complete)


def _interim_version(state: State, account_id: UUID) -> int | None:
    entry = state.interim.get(account_id)
    return None if entry is None else entry[1]


def _next_pending_version(pending: int | None, version: int) -> int:
    """As the SQL upsert: a mark only rises (a reused payment reference restarts its row at version 1)."""
    return pending + 1 if pending is not None and pending >= version else version


class FakeDatabase:
    """The committed state, shared by the units of work it makes (`uow`: the service's `uow_factory`)."""

    def __init__(self, target_types: Iterable[TargetType] = DEFAULT_TARGET_TYPES) -> None:
        self.state = State({target_type.name: target_type for target_type in target_types})
        self.lock = threading.Lock()
        # Held from a unit of work's first serial until it ends, as the counter row's lock is.
        self.serial_lock = threading.Lock()
        self._before_commit: list[Callable[[], None]] = []

    def uow(self, read_only: bool = False, interim_sinks: Sequence[str] = ()) -> FakeUnitOfWork:
        return FakeUnitOfWork(self, read_only=read_only, interim_sinks=interim_sinks)

    def before_next_commit(self, action: Callable[[], None]) -> None:
        """Run `action` (another unit of work, say) just before the next commit: a race lost at commit."""
        self._before_commit.append(action)

    def snapshot(self) -> State:
        with self.lock:
            return self.state.copy()

    def apply(self, changes: Sequence[_Change]) -> None:
        while self._before_commit:
            self._before_commit.pop(0)()
        with self.lock:
            staged = self.state.copy()
            for change in changes:
                change.guard(staged)
                change.write(staged)
            staged.check_unique()
            self.state = staged


# The unit of work ---------------------------------------------------------------------


class FakeUnitOfWork:
    """A snapshot to read and write, and the changes to replay on the committed state at commit."""

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

    def __init__(self, database: FakeDatabase, *, read_only: bool = False, interim_sinks: Sequence[str] = ()) -> None:
        self.database = database
        self.read_only = read_only  # as the database's: a matter of locking only, nothing to do here
        self.interim_sinks = interim_sinks

    def __enter__(self) -> FakeUnitOfWork:
        self.view = self.database.snapshot()
        self.changes: list[_Change] = []
        self.changed_accounts: dict[UUID, None] = {}  # added or updated here, in order
        self.posted: list[Transaction] = []  # transactions added here, in order
        self.holds_serials = False
        self.accounts = FakeAccounts(self)
        self.target_types = FakeTargetTypes(self)
        self.payment_references = FakeSerials(self)
        self.processed_events = FakeProcessedEvents(self)
        self.tenures = FakeTenureCopies(self)
        self.interim = FakeInterimRows(self)
        self.transactions = FakeTransactions(self)
        self.parked = FakeParkedEvents(self)
        self.outbox = FakeOutbox(self)
        self.deliveries = FakeDeliveries(self)
        self.dead_letters = FakeDeadLetters(self)
        self.reconciliations = FakeReconciliations(self)
        self.suspense = FakeSuspenseItems(self)
        self.charge_runs = FakeChargeRuns(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.changes = []  # rolled back: whatever was not committed is dropped
        if self.holds_serials:
            self.holds_serials = False
            self.database.serial_lock.release()

    def keep(self, write: Callable[[State], None], guard: Callable[[State], None] = lambda state: None) -> None:
        """Write to this unit of work's view now; to the committed state, guarded, at commit."""
        write(self.view)
        self.changes.append(_Change(write, guard))

    def commit(self) -> None:
        write_raised(self)  # as the database's unit of work does
        self.database.apply(self.changes)
        self.changes = []
        self.changed_accounts = {}
        self.view = self.database.snapshot()

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        view, kept, held = self.view.copy(), len(self.changes), self.holds_serials
        changed, posted = dict(self.changed_accounts), len(self.posted)
        try:
            yield
        except BaseException:
            self.view = view
            del self.changes[kept:]
            self.changed_accounts = changed
            del self.posted[posted:]
            if self.holds_serials and not held:  # the counter was read inside: as it is (still held) now
                view.next_serial = self.database.state.next_serial
            raise

    def read_ahead(self, event_ids: Sequence[UUID], tenure_ids: Sequence[UUID]) -> None:
        """Only a matter of speed for the database: nothing to do in memory."""

    def read_ahead_postings(self, accounts: Sequence[Account], transaction_ids: Sequence[UUID]) -> None:
        """Only a matter of speed for the database: nothing to do in memory."""


class FakeAccounts:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def get(self, account_id: UUID, *, for_update: bool = False) -> Account | None:
        entry = self.uow.view.accounts.get(account_id)
        return None if entry is None else entry[0]

    def by_target(self, target_id: UUID, account_type: AccountType | None) -> list[Account]:
        found = [
            account
            for account, _ in self.uow.view.accounts.values()
            if account.target_id == target_id and (account_type is None or account.account_type is account_type)
        ]
        return sorted(found, key=oldest_first)

    def payment_reference_taken(self, payment_reference: str) -> bool:
        return any(account.payment_reference == payment_reference for account, _ in self.uow.view.accounts.values())

    def by_payment_references(self, references: Sequence[str], *, for_update: bool = False) -> dict[str, Account]:
        wanted = set(references)
        return {
            account.payment_reference: account
            for account, _ in self.uow.view.accounts.values()
            if account.payment_reference in wanted
        }

    def add(self, account: Account, amount_owed: Decimal) -> None:
        def write(state: State) -> None:
            state.accounts[account.id] = (account, amount_owed)

        def guard(state: State) -> None:
            if account.id in state.accounts:
                raise ConcurrencyConflict(f"account {account.id} exists already")

        self.uow.keep(write, guard)
        self.uow.changed_accounts[account.id] = None

    def update(self, account: Account, expected_version: int, amount_owed: Decimal) -> None:
        def guard(state: State) -> None:
            current = state.accounts.get(account.id)
            if current is None or current[0].version != expected_version:
                raise ConcurrencyConflict(f"account {account.id} is no longer at version {expected_version}")

        def write(state: State) -> None:
            state.accounts[account.id] = (account, amount_owed)

        guard(self.uow.view)
        self.uow.keep(write, guard)
        self.uow.changed_accounts[account.id] = None

    def changed(self) -> list[Account]:
        return [self.uow.view.accounts[account_id][0] for account_id in self.uow.changed_accounts]

    def after(self, account_id: UUID | None, limit: int) -> list[Account]:
        later = sorted(i for i in self.uow.view.accounts if account_id is None or i > account_id)
        return [self.uow.view.accounts[i][0] for i in later[:limit]]

    def arrears(
        self, account_type: AccountType | None, sort_column: str, descending: bool, limit: int
    ) -> list[Account]:
        owing = [
            (account, owed)
            for account, owed in self.uow.view.accounts.values()
            if owed > 0 and (account_type is None or account.account_type is account_type)
        ]

        def value(entry: tuple[Account, Decimal]) -> Any:
            return entry[1] if sort_column == "amount_owed" else getattr(entry[0], sort_column)

        # Ties by id, ascending either way; nulls as PostgreSQL (the production database) orders them: largest.
        owing.sort(key=lambda entry: entry[0].id)
        present = [entry for entry in owing if value(entry) is not None]
        absent = [entry for entry in owing if value(entry) is None]
        present.sort(key=value, reverse=descending)
        ordered = absent + present if descending else present + absent
        return [account for account, _ in ordered[:limit]]

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
        """As the SQL: the stored figures (`rows.worklist_values`), sorted with ties by id the same way."""
        going_down = descending != (sort is WorklistSort.DAYS_SINCE_LAST_PAYMENT)
        column = {
            WorklistSort.AMOUNT_OWED: "amount_owed",
            WorklistSort.WEEKS_IN_ARREARS: "weeks_in_arrears",
            WorklistSort.DAYS_SINCE_LAST_PAYMENT: "arrears_since",
        }[sort]
        found = []
        for account, owed in self.uow.view.accounts.values():
            stored = {**worklist_values(account, owed), "amount_owed": owed}
            if owed <= 0 or (rent_group is not None and account.rent_group_type is not rent_group):
                continue
            if (min_weeks is not None and stored["weeks_in_arrears"] < min_weeks) or (
                min_owed is not None and owed < min_owed
            ):
                continue
            place = (stored[column], account.id)
            if after is not None and not (place < tuple(after) if going_down else place > tuple(after)):
                continue
            found.append((place, account, owed))
        found.sort(key=lambda entry: entry[0], reverse=going_down)
        return [(account, owed) for _, account, owed in found[:limit]]

    def search(self, text: str, limit: int) -> list[Account]:
        """As the SQL: a reference's first digits, or part of the address or a tenant's name, case aside."""
        accounts = [account for account, _ in self.uow.view.accounts.values()]
        if is_reference_search(text):
            found = [account for account in accounts if account.payment_reference.startswith(text)]
        else:
            wanted = text.lower()

            def matches(tenure: AccountTenure | None) -> bool:
                if tenure is None:
                    return False
                names = [tenant.full_name for tenant in tenure.primary_tenants]
                return any(wanted in value.lower() for value in [tenure.full_address or "", *names])

            # As the SQL's scan: the first `limit` matches in the order stored, then by reference.
            found = [account for account in accounts if matches(account.tenure)][:limit]
        return sorted(found, key=lambda account: account.payment_reference)[:limit]

    def interim_sources(self) -> Iterator[InterimSource]:
        view = self.uow.view
        for account, _ in list(view.accounts.values()):
            if account.target_type != "Tenure" or account.account_type is not AccountType.MASTER:
                continue
            tenure = view.tenures.get(account.target_id)
            yield InterimSource(
                account.id,
                account.payment_reference,
                account.rent_group_type.value if account.rent_group_type else None,
                account.start_date,
                account.end_date,
                wire_view(account)["tenure"],
                dict(tenure.data) if tenure is not None else None,
            )


class FakeTargetTypes:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def get(self, name: str) -> TargetType | None:
        return self.uow.view.target_types.get(name)

    def all(self) -> list[TargetType]:
        return sorted(self.uow.view.target_types.values(), key=lambda target_type: target_type.name)


class FakeSerials:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def next_serial(self) -> int:
        uow = self.uow
        if not uow.holds_serials:
            if not uow.database.serial_lock.acquire(timeout=SERIAL_WAIT_SECONDS):
                raise TransientError("another transaction holds the serials: the database is busy")
            uow.holds_serials = True
            with uow.database.lock:  # as committed now, not when this unit of work began
                uow.view.next_serial = uow.database.state.next_serial
        serial = uow.view.next_serial

        def write(state: State) -> None:
            state.next_serial = serial + 1

        uow.keep(write)
        return serial


class FakeProcessedEvents:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def seen(self, event_id: UUID) -> bool:
        return event_id in self.uow.view.processed

    def record(self, event: EventEnvelope, outcome: str, at: datetime) -> None:
        def write(state: State) -> None:
            state.processed[event.id] = outcome

        def guard(state: State) -> None:
            if event.id in state.processed:
                raise ConcurrencyConflict(f"event {event.id} was processed already")

        self.uow.keep(write, guard)


class FakeTenureCopies:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def get(self, tenure_id: UUID, *, for_update: bool = False) -> TenureRecord | None:
        record = self.uow.view.tenures.get(tenure_id)
        return None if record is None else _copy(record)

    def save(self, record: TenureRecord, at: datetime) -> None:
        kept = _copy(record)
        inserted = record.tenure_id not in self.uow.view.tenures

        def write(state: State) -> None:
            state.tenures[kept.tenure_id] = kept

        def guard(state: State) -> None:
            if inserted and kept.tenure_id in state.tenures:
                raise ConcurrencyConflict(f"tenure {kept.tenure_id} was copied by another transaction")

        self.uow.keep(write, guard)


class FakeInterimRows:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def by_account(self, account_id: UUID) -> InterimRow | None:
        entry = self.uow.view.interim.get(account_id)
        return None if entry is None else entry[0]

    def _guard(self, account_id: UUID) -> Callable[[State], None]:
        read = _interim_version(self.uow.view, account_id)

        def guard(state: State) -> None:
            if _interim_version(state, account_id) != read:
                raise ConcurrencyConflict(f"the interim row of account {account_id} changed meanwhile")

        return guard

    def save(self, account_id: UUID, row: InterimRow, at: datetime) -> int:
        version = (_interim_version(self.uow.view, account_id) or 0) + 1

        def write(state: State) -> None:
            state.interim[account_id] = (row, version)

        self.uow.keep(write, self._guard(account_id))
        return version

    def remove(self, account_id: UUID) -> tuple[str, int] | None:
        entry = self.uow.view.interim.get(account_id)
        if entry is None:
            return None

        def write(state: State) -> None:
            del state.interim[account_id]

        self.uow.keep(write, self._guard(account_id))
        return entry[0].payment_ref, entry[1] + 1

    def mark_pending(self, sinks: Sequence[str], payment_ref: str, version: int) -> None:
        if not sinks:
            return

        def write(state: State) -> None:
            for sink in sinks:
                key = (sink, payment_ref)
                state.pending[key] = _next_pending_version(state.pending.get(key), version)

        self.uow.keep(write)

    def registered_sinks(self) -> list[str]:
        return sorted(self.uow.view.sinks)


class FakeParkedEvents:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def park(self, event: EventEnvelope, reason: str, at: datetime) -> None:
        if event.id in self.uow.view.parked:
            return  # delivered again while it waits
        parked = ParkedEvent(event, reason, at)

        def write(state: State) -> None:
            state.parked[event.id] = parked

        def guard(state: State) -> None:
            if event.id in state.parked:
                raise ConcurrencyConflict(f"event {event.id} was parked meanwhile")

        self.uow.keep(write, guard)

    def for_tenure(self, tenure_id: UUID) -> list[ParkedEvent]:
        found = [parked for parked in self.uow.view.parked.values() if parked.event.entity_id == tenure_id]
        return sorted(found, key=lambda parked: (parked.event.date_time, str(parked.event.id)))

    def remove(self, tenure_id: UUID, event_ids: Sequence[UUID]) -> None:
        def write(state: State) -> None:
            for event_id in event_ids:
                state.parked.pop(event_id, None)

        self.uow.keep(write)

    def list(self, limit: int) -> list[ParkedEvent]:
        ordered = sorted(self.uow.view.parked.values(), key=lambda parked: (parked.parked_at, str(parked.event.id)))
        return ordered[:limit]

    def count(self) -> int:
        return len(self.uow.view.parked)


class FakeTransactions:
    """The ledger in the view, in posting order; the unique id, the one reversal and the account guarded at commit."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def get(self, transaction_id: UUID) -> Transaction | None:
        entry = self.uow.view.transactions.get(transaction_id)
        return None if entry is None else entry[1]

    def get_many(self, transaction_ids: Sequence[UUID]) -> dict[UUID, Transaction]:
        view = self.uow.view.transactions
        return {i: view[i][1] for i in transaction_ids if i in view}

    def read_ahead(self, transaction_ids: Sequence[UUID]) -> None:
        """Only a matter of speed for the database: nothing to do in memory."""

    def reversal_of(self, transaction_id: UUID) -> Transaction | None:
        reversal_id = self.uow.view.reversals.get(transaction_id)
        return None if reversal_id is None else self.get(reversal_id)

    def add(self, transaction: Transaction) -> None:
        def write(state: State) -> None:
            state.transactions[transaction.id] = (state.next_position, transaction)
            state.next_position += 1
            if transaction.reverses_id is not None:
                state.reversals[transaction.reverses_id] = transaction.id

        def guard(state: State) -> None:
            # As the database's keys: the id, one reversal per transaction, and the account it names.
            if transaction.id in state.transactions:
                raise ConcurrencyConflict(f"transaction {transaction.id} was posted already")
            if transaction.reverses_id is not None and transaction.reverses_id in state.reversals:
                raise ConcurrencyConflict(f"transaction {transaction.reverses_id} was reversed already")
            if transaction.account_id not in state.accounts:
                raise ConcurrencyConflict(f"account {transaction.account_id} is not stored")

        self.uow.keep(write, guard)
        self.uow.posted.append(transaction)

    def posted(self) -> list[Transaction]:
        return list(self.uow.posted)

    def _statement(self, account_id: UUID) -> list[tuple[StatementCursor, Transaction]]:
        found = [
            (StatementCursor(transaction.transaction_date, position), transaction)
            for position, transaction in self.uow.view.transactions.values()
            if transaction.account_id == account_id
        ]
        return sorted(found, key=lambda entry: entry[0])

    def page(
        self,
        account_id: UUID,
        *,
        from_date: date | None,
        to_date: date | None,
        after: StatementCursor | None,
        limit: int,
    ) -> list[tuple[StatementCursor, Transaction]]:
        return [
            (place, transaction)
            for place, transaction in self._statement(account_id)
            if (from_date is None or place.transaction_date >= from_date)
            and (to_date is None or place.transaction_date <= to_date)
            and (after is None or place > after)
        ][:limit]

    def owed_before(self, account_id: UUID, before: StatementCursor) -> Decimal:
        owed = sum((t.owed_change for place, t in self._statement(account_id) if place < before), ZERO)
        return owed + ZERO

    def owed_by_day(self, account_id: UUID, first_day: date, last_day: date) -> DailyOwed:
        before, days = ZERO, {}
        for place, transaction in self._statement(account_id):
            day = place.transaction_date
            if day < first_day:
                before += transaction.owed_change
            elif day <= last_day:
                days[day] = days.get(day, ZERO) + transaction.owed_change
        return DailyOwed(before + ZERO, {day: owed + ZERO for day, owed in days.items()})

    def differences(self) -> Iterator[LedgerDifference]:
        view = self.uow.view
        owed: dict[UUID, Decimal] = {}
        for _, transaction in view.transactions.values():
            owed[transaction.account_id] = owed.get(transaction.account_id, ZERO) + transaction.owed_change
        for account, _ in list(view.accounts.values()):
            ledger_owed = owed.get(account.id, ZERO)
            polarity = view.target_types[account.target_type].polarity
            ledger = (-ledger_owed if polarity is Polarity.NEGATIVE_IS_ARREARS else ledger_owed) + ZERO
            if ledger != account.account_balance:
                yield LedgerDifference(account.id, account.account_balance, ledger)

    def count(self) -> int:
        return len(self.uow.view.transactions)


class FakeSuspenseItems:
    """Suspense items in the view; the reference and the version read guarded at commit, as the database's keys."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def by_references(self, references: Sequence[str]) -> dict[str, SuspenseItem]:
        wanted = set(references)
        return {item.reference: item for item in self.uow.view.suspense.values() if item.reference in wanted}

    def get(self, item_id: UUID, *, for_update: bool = False) -> SuspenseItem | None:
        return self.uow.view.suspense.get(item_id)

    def add(self, item: SuspenseItem) -> None:
        def write(state: State) -> None:
            state.suspense[item.id] = item

        def guard(state: State) -> None:
            if item.id in state.suspense:
                raise ConcurrencyConflict(f"suspense item {item.id} exists already")

        self.uow.keep(write, guard)

    def update(self, item: SuspenseItem, expected_version: int) -> None:
        def guard(state: State) -> None:
            current = state.suspense.get(item.id)
            if current is None or current.version != expected_version:
                raise ConcurrencyConflict(f"suspense item {item.id} is no longer at version {expected_version}")

        def write(state: State) -> None:
            state.suspense[item.id] = item

        guard(self.uow.view)
        self.uow.keep(write, guard)

    def page(self, *, include_resolved: bool, after: SuspenseCursor | None, limit: int) -> list[SuspenseItem]:
        listed = sorted(
            (
                item
                for item in self.uow.view.suspense.values()
                if include_resolved or item.status is not SuspenseStatus.RESOLVED
            ),
            key=lambda item: (item.payment_date, item.reference),
        )
        return [item for item in listed if after is None or (item.payment_date, item.reference) > after][:limit]


class FakeChargeRuns:
    """Charge runs in the view; a save guarded by the version read, one unfinished run per week at commit."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def get(self, run_id: UUID, *, for_update: bool = False) -> ChargeRun | None:
        return self.uow.view.charge_runs.get(run_id)

    def unfinished(self, week_starts: date) -> ChargeRun | None:
        found = [r for r in self.uow.view.charge_runs.values() if r.week.starts == week_starts and not r.finished]
        return found[0] if found else None

    def add(self, run: ChargeRun) -> None:
        def write(state: State) -> None:
            state.charge_runs[run.id] = run

        def guard(state: State) -> None:
            if run.id in state.charge_runs:
                raise ConcurrencyConflict(f"charge run {run.id} exists already")

        self.uow.keep(write, guard)

    def save(self, run: ChargeRun) -> None:
        def guard(state: State) -> None:
            current = state.charge_runs.get(run.id)
            if current is None or current.version != run.version - 1:
                raise ConcurrencyConflict(f"charge run {run.id} is no longer at version {run.version - 1}")

        def write(state: State) -> None:
            state.charge_runs[run.id] = run

        guard(self.uow.view)
        self.uow.keep(write, guard)

    def count_accounts(self) -> int:
        return len(self.uow.view.accounts)


class FakeOutbox:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def add(self, topic: str, event: EventEnvelope, group_id: str) -> None:
        payload = outbox_values(topic, event, group_id)["payload"].encode()

        def write(state: State) -> None:
            position = state.outbox[-1].position + 1 if state.outbox else 1
            state.outbox.append(_Outboxed(position, topic, group_id, event.id, payload, event.date_time))

        def guard(state: State) -> None:
            if any(row.event_id == event.id for row in state.outbox):
                raise ConcurrencyConflict(f"event {event.id} is in the outbox already")

        self.uow.keep(write, guard)

    def pending(self, limit: int) -> list[OutboxMessage]:
        unpublished = [row for row in self.uow.view.outbox if row.published_at is None]
        return [OutboxMessage(row.position, row.topic, row.group_id, row.event_id, row.payload) for row in unpublished][
            :limit
        ]

    def mark_published(self, positions: Sequence[int], at: datetime) -> None:
        marked = set(positions)

        def write(state: State) -> None:
            state.outbox = [replace(row, published_at=at) if row.position in marked else row for row in state.outbox]

        if marked:
            self.uow.keep(write)

    def count_pending(self) -> int:
        return sum(row.published_at is None for row in self.uow.view.outbox)

    def oldest_pending_at(self) -> datetime | None:
        return next((row.created_at for row in self.uow.view.outbox if row.published_at is None), None)


class FakeDeliveries:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def pending(self, sink: str, limit: int) -> list[tuple[str, int]]:
        owed = [(version, ref) for (name, ref), version in self.uow.view.pending.items() if name == sink]
        return [(ref, version) for version, ref in sorted(owed)[:limit]]

    def has_pending(self, sink: str) -> bool:
        return self.count_pending(sink) > 0

    def count_pending(self, sink: str) -> int:
        return sum(name == sink for name, _ in self.uow.view.pending)

    def rows(self, payment_refs: Sequence[str]) -> list[InterimRow]:
        wanted = set(payment_refs)
        return [row for row, _ in self.uow.view.interim.values() if row.payment_ref in wanted]

    def all(self) -> list[InterimRow]:
        return list(self.stream())

    def stream(self) -> Iterator[InterimRow]:
        yield from sorted((row for row, _ in self.uow.view.interim.values()), key=lambda row: row.payment_ref)

    def account_ids(self) -> dict[str, UUID]:
        return {row.payment_ref: account_id for account_id, (row, _) in self.uow.view.interim.items()}

    def clear_pending(self, sink: str, delivered: Sequence[tuple[str, int]]) -> None:
        def write(state: State) -> None:
            for ref, version in delivered:
                key = (sink, ref)
                if key in state.pending and state.pending[key] <= version:
                    del state.pending[key]

        if delivered:
            self.uow.keep(write)

    def enable_sinks(self, sinks: Sequence[str], at: datetime) -> list[str]:
        new = [sink for sink in sinks if sink not in self.uow.view.sinks]
        for sink in new:

            def write(state: State, sink: str = sink) -> None:
                state.sinks[sink] = _Sink(at)

            def guard(state: State, sink: str = sink) -> None:
                if sink in state.sinks:
                    raise ConcurrencyConflict(f"sink {sink} was registered by another transaction")

            self.uow.keep(write, guard)
            self.queue_everything(sink)
        return new

    def queue_everything(self, sink: str) -> int:
        def write(state: State) -> None:
            for key in [key for key in state.pending if key[0] == sink]:
                del state.pending[key]
            for row, version in state.interim.values():
                state.pending[(sink, row.payment_ref)] = version

        self.uow.keep(write)
        return len(self.uow.view.interim)

    def note_delivery(self, sink: str, at: datetime, error: str | None) -> None:
        def write(state: State) -> None:
            known = state.sinks.get(sink)
            if known is not None:
                delivered = at if error is None else known.last_delivered_at
                state.sinks[sink] = replace(known, last_delivered_at=delivered, last_error=error)

        self.uow.keep(write)

    def last_delivered_at(self, sink: str) -> datetime | None:
        known = self.uow.view.sinks.get(sink)
        return None if known is None else known.last_delivered_at

    def last_error(self, sink: str) -> str | None:
        known = self.uow.view.sinks.get(sink)
        return None if known is None else known.last_error


class FakeDeadLetters:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def add(
        self,
        source: str,
        body: bytes,
        reason: str,
        attempts: int,
        at: datetime,
        event_id: str | None = None,
        event_type: str | None = None,
    ) -> None:
        def write(state: State) -> None:
            number = state.dead_letters[-1].id + 1 if state.dead_letters else 1
            letter = DeadLetter(
                number,
                source[:80],
                event_id[:64] if event_id else None,
                event_type[:80] if event_type else None,
                bytes(body),
                reason,
                attempts,
                at,
                None,
            )
            state.dead_letters.append(letter)

        self.uow.keep(write)

    def list(
        self, include_replayed: bool = False, *, after: int | None = None, limit: int | None = None
    ) -> list[DeadLetter]:
        listed = [
            letter
            for letter in self.uow.view.dead_letters
            if (include_replayed or letter.replayed_at is None) and (after is None or letter.id > after)
        ]
        return listed if limit is None else listed[:limit]

    def count(self, include_replayed: bool = False) -> int:
        return len(self.list(include_replayed))

    def get(self, dead_letter_id: int) -> DeadLetter | None:
        return next((letter for letter in self.uow.view.dead_letters if letter.id == dead_letter_id), None)

    def by_event_id(self, event_id: str) -> list[DeadLetter]:
        return [letter for letter in self.uow.view.dead_letters if letter.event_id == event_id]

    def replayed(self, limit: int) -> list[DeadLetter]:
        done = [letter for letter in self.uow.view.dead_letters if letter.replayed_at is not None]
        return sorted(done, key=lambda letter: (letter.replayed_at, letter.id), reverse=True)[:limit]

    def mark_replayed(self, dead_letter_id: int, at: datetime) -> None:
        def write(state: State) -> None:
            state.dead_letters = [
                replace(letter, replayed_at=at) if letter.id == dead_letter_id else letter
                for letter in state.dead_letters
            ]

        self.uow.keep(write)


class FakeReconciliations:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def add(self, record: ReconciliationRecord) -> None:
        def write(state: State) -> None:
            state.reconciliations.append(record)

        self.uow.keep(write)

    def latest(self) -> ReconciliationRecord | None:
        kept = self.uow.view.reconciliations
        return max(kept, key=lambda record: record.finished_at) if kept else None


# The API's read side ------------------------------------------------------------------


class FakeAccountReads:
    """Accounts as the API answers them, read from what the fake database committed."""

    def __init__(self, database: FakeDatabase) -> None:
        self.database = database

    async def open(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def account(self, account_id: UUID) -> StoredAccount | None:
        entry = self.database.snapshot().accounts.get(account_id)
        if entry is None:
            return None
        return StoredAccount(account_id, account_json(entry[0]), entry[0].version)

    async def by_target(self, target_id: UUID, account_type: str | None) -> list[bytes]:
        with self.database.uow(read_only=True) as uow:
            found = uow.accounts.by_target(target_id, AccountType(account_type) if account_type else None)
        return [account_json(account) for account in found]

    def close(self) -> None:
        pass


# The outside world --------------------------------------------------------------------


@dataclass
class Published:
    topic: str
    body: bytes
    group_id: str
    message_id: str


class FakeBroker(MessageBroker):
    """Messages published, and a tenure queue to receive from; `fail_after` publishes that many, then fails."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.published: list[Published] = []
        self.fail_after = fail_after
        self.queue: list[ReceivedMessage] = []
        self.acked: list[ReceivedMessage] = []
        self.retried: list[tuple[ReceivedMessage, float]] = []
        self.closed = False

    def publish(self, topic: str, body: bytes, *, group_id: str, message_id: str) -> None:
        if self.fail_after is not None and len(self.published) >= self.fail_after:
            raise TransientError("the broker is unreachable")
        self.published.append(Published(topic, body, group_id, message_id))

    def send(self, body: bytes, message_id: str = "") -> None:
        """A tenure event arriving on the queue."""
        self.queue.append(ReceivedMessage(body, attempts=1, message_id=message_id))

    def receive(self, max_messages: int, wait_seconds: float) -> list[ReceivedMessage]:
        taken, self.queue = self.queue[:max_messages], self.queue[max_messages:]
        return taken

    def ack(self, message: ReceivedMessage) -> None:
        self.acked.append(message)

    def retry_later(self, message: ReceivedMessage, delay_seconds: float) -> None:
        self.retried.append((message, delay_seconds))
        self.queue.append(replace(message, attempts=message.attempts + 1))

    def close(self) -> None:
        self.closed = True

    def on(self, topic: str = ACCOUNTS_TOPIC) -> list[bytes]:
        return [message.body for message in self.published if message.topic == topic]


class FakeSink(InterimSink):
    """An upserting interim sink held in memory; `failing` makes every call raise."""

    rewrites_everything = False

    def __init__(self, name: str = "fake", *, failing: bool = False) -> None:
        self.name = name
        self.failing = failing
        self.held: dict[str, InterimRow] = {}
        self.deliveries = 0

    def _check(self) -> None:
        if self.failing:
            raise OSError(f"interim sink {self.name} is down")

    def deliver(self, rows: Iterable[InterimRow]) -> None:
        self._check()
        for row in rows:
            self.held[row.payment_ref] = row
        self.deliveries += 1

    def remove(self, payment_refs: Sequence[str]) -> None:
        self._check()
        for ref in payment_refs:
            self.held.pop(ref, None)

    def read_rows(self) -> list[InterimRow]:
        self._check()
        return sorted(self.held.values(), key=lambda row: row.payment_ref)
