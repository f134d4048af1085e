"""The unit of work: one transaction per command, and the repositories inside it.

The service layer depends on these protocols only; `adapters.database` implements
them with SQLAlchemy for SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Protocol
from uuid import UUID

from accounts.domain.account import Account, AccountType
from accounts.domain.events import EventEnvelope
from accounts.domain.interim import InterimRow
from accounts.domain.polarity import TargetType
from accounts.domain.tenure import TenureRecord


class ConcurrencyConflict(Exception):
    """Another transaction changed or claimed the same thing first; the command may be retried."""


class NotInBatch(Exception):
    """A unit of work in batch mode cannot do this in memory: the command is to be run on its own."""


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


# (account id, payment reference, rent group, start date, end date, the account's tenure in wire
# form, the listener's tenure copy data): what `domain.interim.interim_row_from` takes.
InterimValues = tuple[
    UUID, str, str | None, datetime | None, datetime | None, dict[str, Any] | None, dict[str, Any] | None
]


class AccountRepository(Protocol):
    def get(self, account_id: UUID, *, for_update: bool = False) -> Account | None:
        """The current version; `for_update` holds it (PostgreSQL row lock) until the transaction ends."""

    def by_target(self, target_id: UUID, account_type: AccountType | None) -> list[Account]: ...
    def active_master(self, target_id: UUID) -> Account | None: ...
    def payment_reference_taken(self, payment_reference: str) -> bool: ...
    def add(self, account: Account, amount_owed: Decimal) -> None: ...

    def update(self, account: Account, expected_version: int, amount_owed: Decimal) -> None:
        """Store a new version; ConcurrencyConflict when the stored version is not expected_version."""

    def arrears(
        self, account_type: AccountType | None, sort_column: str, descending: bool, limit: int
    ) -> list[Account]: ...

    def interim_sources(self) -> Iterator[tuple[Account, TenureRecord | None]]:
        """Every tenure Master account with the listener's tenure copy, if any."""

    def interim_values(self) -> Iterator[InterimValues]:
        """The same as stored values (see InterimValues), without making an Account of each."""


class TargetTypeRepository(Protocol):
    def get(self, name: str) -> TargetType | None: ...
    def all(self) -> list[TargetType]: ...


class PaymentReferenceSerials(Protocol):
    def next_serial(self) -> int:
        """A serial no other transaction will ever get (held until this one ends)."""


@dataclass(frozen=True)
class OutboxMessage:
    position: int
    topic: str
    group_id: str
    event_id: UUID
    payload: bytes


class Outbox(Protocol):
    def add(self, topic: str, event: EventEnvelope, group_id: str) -> None: ...
    def pending(self, limit: int) -> list[OutboxMessage]: ...
    def mark_published(self, positions: Sequence[int], at: datetime) -> None: ...
    def count_pending(self) -> int: ...


class ProcessedEvents(Protocol):
    def seen(self, event_id: UUID) -> bool: ...
    def record(self, event: EventEnvelope, outcome: str, at: datetime) -> None: ...


class TenureCopies(Protocol):
    def get(self, tenure_id: UUID, *, for_update: bool = False) -> TenureRecord | None: ...
    def save(self, record: TenureRecord, at: datetime) -> None: ...


class InterimRows(Protocol):
    def get(self, payment_ref: str) -> InterimRow | None: ...
    def by_account(self, account_id: UUID) -> InterimRow | None: ...

    def save(self, account_id: UUID, row: InterimRow, previous: InterimRow | None, at: datetime) -> int:
        """Insert or replace the account's row (its key may change); return the new version."""

    def mark_pending(self, sinks: Sequence[str], payment_ref: str, version: int) -> None: ...
    def all(self) -> list[InterimRow]: ...

    def stream(self) -> Iterator[InterimRow]:
        """Every row, by payment ref, read a batch at a time; consumed before the unit of work ends."""

    def pending(self, sink: str, limit: int) -> list[tuple[str, int]]:
        """(payment_ref, version) the sink has still to receive, oldest first."""

    def has_pending(self, sink: str) -> bool: ...
    def rows(self, payment_refs: Sequence[str]) -> list[InterimRow]: ...

    def clear_pending(self, sink: str, delivered: Sequence[tuple[str, int]]) -> None:
        """Forget what was delivered, unless the row changed again meanwhile."""

    def enable_sinks(self, sinks: Sequence[str], at: datetime) -> list[str]:
        """Register sinks; a sink seen for the first time gets every row queued. Returns those."""

    def queue_everything(self, sink: str) -> int: ...
    def note_delivery(self, sink: str, at: datetime, error: str | None) -> None: ...

    def remove(self, account_id: UUID) -> tuple[str, int] | None:
        """Delete the account's row: (its payment ref, the version its removal counts as), or None."""

    def registered_sinks(self) -> list[str]: ...
    def account_ids(self) -> dict[str, UUID]: ...
    def count_pending(self, sink: str) -> int: ...


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

    def list(self, include_replayed: bool = False) -> list[DeadLetter]: ...
    def mark_replayed(self, dead_letter_id: int, at: datetime) -> None: ...


class UnitOfWork(Protocol):
    accounts: AccountRepository
    target_types: TargetTypeRepository
    payment_references: PaymentReferenceSerials
    outbox: Outbox
    processed_events: ProcessedEvents
    tenures: TenureCopies
    interim: InterimRows
    dead_letters: DeadLetters

    def __enter__(self) -> UnitOfWork: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        """Roll back whatever was not committed."""

    def commit(self) -> None:
        """Commit; ConcurrencyConflict when a uniqueness rule was raced by another transaction."""

    def savepoint(self) -> AbstractContextManager[None]:
        """A nested transaction: an exception inside undoes only what was done inside, then propagates."""

    def start_batch(self, event_ids: Sequence[UUID], entity_ids: Sequence[UUID]) -> None:
        """From here on, many commands share this transaction (the listener's batch of events).

        What commands about these events and entities will read is read ahead at once; writes
        are kept until `commit`, which writes them together; a savepoint costs no round trip.
        The results are those of running the commands one after another. A command needing
        what a batch cannot give raises NotInBatch (inside its savepoint): run it on its own.
        """
