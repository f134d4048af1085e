"""The SQLAlchemy unit of work: one connection, one transaction, every repository on it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy import exc

from accounts.adapters.database.engine import WRITE, WriterBusy, writer_turn
from accounts.adapters.database.repositories import (
    SqlAccountRepository,
    SqlDeadLetters,
    SqlInterimRows,
    SqlOutbox,
    SqlPaymentReferenceSerials,
    SqlProcessedEvents,
    SqlTargetTypeRepository,
    SqlTenureCopies,
)
from accounts.service.ports import TransientError
from accounts.service.unit_of_work import (
    AccountRepository,
    ConcurrencyConflict,
    DeadLetters,
    InterimRows,
    Outbox,
    PaymentReferenceSerials,
    ProcessedEvents,
    TargetTypeRepository,
    TenureCopies,
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
    accounts: AccountRepository
    target_types: TargetTypeRepository
    payment_references: PaymentReferenceSerials
    outbox: Outbox
    processed_events: ProcessedEvents
    tenures: TenureCopies
    interim: InterimRows
    dead_letters: DeadLetters

    def __init__(self, engine: sa.Engine, *, read_only: bool = False) -> None:
        self.engine = engine
        self.read_only = read_only

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
        self.accounts = SqlAccountRepository(connection)
        self.target_types = SqlTargetTypeRepository(connection)
        self.payment_references = SqlPaymentReferenceSerials(connection)
        self.outbox = SqlOutbox(connection)
        self.processed_events = SqlProcessedEvents(connection)
        self.tenures = SqlTenureCopies(connection)
        self.interim = SqlInterimRows(connection)
        self.dead_letters = SqlDeadLetters(connection)
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
            try:
                self.connection.close()
            finally:
                self.turn.close()
        if isinstance(error, exc.DBAPIError):
            translated = translate(error)
            if translated is not error:
                raise translated from error

    def commit(self) -> None:
        try:
            self.transaction.commit()
        except exc.DBAPIError as error:
            raise translate(error) from error

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """SAVEPOINT ... RELEASE; on an exception ROLLBACK TO it, forgetting what the repositories remember."""
        try:
            nested = self.connection.begin_nested()
        except exc.DBAPIError as error:
            raise translate(error) from error
        try:
            yield
            nested.commit()
        except BaseException as error:
            if nested.is_active:
                with contextlib.suppress(exc.DBAPIError):
                    nested.rollback()
            # What the repositories remember of this transaction may be what was just undone.
            self.tenures = SqlTenureCopies(self.connection)
            self.interim = SqlInterimRows(self.connection)
            if isinstance(error, exc.DBAPIError):
                translated = translate(error)
                if translated is not error:
                    raise translated from error
            raise
