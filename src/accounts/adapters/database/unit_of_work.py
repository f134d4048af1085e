"""The SQLAlchemy unit of work: one connection, one transaction, every repository on it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from types import TracebackType
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import exc

from accounts.adapters.database.charge_runs import SqlChargeRuns
from accounts.adapters.database.engine import WRITE, WriterBusy, writer_turn
from accounts.adapters.database.journal import Memory
from accounts.adapters.database.reconciliations import SqlReconciliations
from accounts.adapters.database.repositories import (
    SqlAccountRepository,
    SqlDeadLetters,
    SqlInterimDeliveries,
    SqlInterimRows,
    SqlOutbox,
    SqlParkedEvents,
    SqlPaymentReferenceSerials,
    SqlProcessedEvents,
    SqlTargetTypeRepository,
    SqlTenureCopies,
    SqlTransactions,
)
from accounts.adapters.database.suspense import SqlSuspenseItems
from accounts.domain.account import Account
from accounts.domain.interim import is_interim_account
from accounts.service.changes import write_raised
from accounts.service.ports import TransientError
from accounts.service.unit_of_work import (
    AccountRepository,
    ChargeRuns,
    ConcurrencyConflict,
    DeadLetters,
    InterimDeliveries,
    InterimRows,
    Outbox,
    ParkedEvents,
    PaymentReferenceSerials,
    ProcessedEvents,
    Reconciliations,
    SuspenseItems,
    TargetTypeRepository,
    TenureCopies,
    Transactions,
)

# PostgreSQL error classes that mean "try again": serialization failure, deadlock.
RETRYABLE_SQLSTATES = {"40001", "40P01"}


def translate(error: exc.DBAPIError) -> Exception:
    """Map a driver error onto what the service layer understands."""
    if isinstance(error, exc.IntegrityError):
        return ConcurrencyConflict(str(error.orig))
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return ConcurrencyConflict(str(error.orig))
    if error.connection_invalidated or isinstance(error, exc.OperationalError | exc.InterfaceError):
        return TransientError(f"database unavailable: {error.orig}")
    return error


class SqlAlchemyUnitOfWork:
    """One connection, one transaction; the repositories share its memory (see `journal.py`)."""

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

    def __init__(self, engine: sa.Engine, *, read_only: bool = False, interim_sinks: Sequence[str] = ()) -> None:
        self.engine = engine
        self.read_only = read_only
        self.interim_sinks = interim_sinks

    def __enter__(self) -> SqlAlchemyUnitOfWork:
        self.turn = contextlib.ExitStack()
        try:
            if not self.read_only:
                self.turn.enter_context(writer_turn(self.engine))
            connection = self.engine.connect()
            if not self.read_only:
                connection = connection.execution_options(**{WRITE: True})
            self.connection = connection
            self.transaction = connection.begin()
        except exc.DBAPIError as error:
            self.turn.close()
            raise translate(error) from error
        except WriterBusy as error:
            raise TransientError(str(error)) from None
        except BaseException:
            self.turn.close()
            raise
        # In the order their writes go out at commit: an account's row before its interim row and its transactions.
        self.memory = memory = Memory(connection)
        self.payment_references = SqlPaymentReferenceSerials(memory)
        self.tenures = self._tenures = SqlTenureCopies(memory)
        self.accounts = self._accounts = SqlAccountRepository(memory)
        self.interim = self._interim = SqlInterimRows(memory, self._accounts.added)
        self.transactions = SqlTransactions(memory)  # after the accounts: a transaction's row names its account
        self.parked = self._parked = SqlParkedEvents(memory)
        self.suspense = SqlSuspenseItems(memory)
        self.outbox = SqlOutbox(memory)
        self.processed_events = self._processed = SqlProcessedEvents(memory)
        self.target_types = SqlTargetTypeRepository(memory)
        self.deliveries = SqlInterimDeliveries(memory)
        self.dead_letters = SqlDeadLetters(memory)
        self.reconciliations = SqlReconciliations(memory)
        self.charge_runs = SqlChargeRuns(memory)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            if self.transaction.is_active:
                self.transaction.rollback()
        except exc.DBAPIError:
            pass  # the connection is gone; the server rolled back for us
        finally:
            self.memory.close()
            try:
                self.connection.close()
            finally:
                self.turn.close()
        if isinstance(error, exc.DBAPIError):
            translated = translate(error)
            if translated is not error:
                raise translated from error

    def commit(self) -> None:
        write_raised(self)
        try:
            self.memory.flush()
            self.transaction.commit()
        except exc.DBAPIError as error:
            raise translate(error) from error

    def read_ahead(self, event_ids: Sequence[UUID], tenure_ids: Sequence[UUID]) -> None:
        """What a batch of events will read, in a few `IN (...)` queries."""
        try:
            # The tenure copies first: locking them (PostgreSQL) waits for a competing batch about the
            # same tenures to commit, and what is read after that (its processed ids, its accounts) is
            # then what that batch left.
            self._tenures.read_ahead(tenure_ids)
            self._processed.read_ahead(event_ids)
            self._accounts.read_ahead(tenure_ids)
            self._parked.read_ahead(tenure_ids)
            self._interim.read_ahead(self._accounts.known_ids())
            self._interim.registered_sinks()
            self.target_types.all()  # remembered for the rest of the unit of work
        except exc.DBAPIError as error:
            raise translate(error) from error

    def read_ahead_postings(self, accounts: Sequence[Account], transaction_ids: Sequence[UUID]) -> None:
        """What postings to a batch of accounts will read, in a few `IN (...)` queries."""
        try:
            self.transactions.read_ahead(transaction_ids)
            self._accounts.read_ahead_targets_of(accounts)
            tenure_accounts = [account for account in accounts if is_interim_account(account)]
            self._tenures.read_ahead([account.target_id for account in tenure_accounts], lock=False)
            self._interim.read_ahead(account.id for account in accounts)  # a row kept or one to remove
            self._interim.registered_sinks()
            self.target_types.all()
        except exc.DBAPIError as error:
            raise translate(error) from error

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """An undo mark in memory: nothing is written before commit, so nothing in the database to undo."""
        journal = self.memory.journal
        mark = journal.begin()
        try:
            yield
        except BaseException as error:
            journal.rollback(mark)
            if isinstance(error, exc.DBAPIError):
                translated = translate(error)
                if translated is not error:
                    raise translated from error
            raise
        journal.release(mark)
