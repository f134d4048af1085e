"""SQLAlchemy Core repositories: rows in, domain values out."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as postgresql_dml
from sqlalchemy.dialects import sqlite as sqlite_dml

from accounts.adapters.database import tables as t
from accounts.adapters.database.bulk import executemany
from accounts.domain.account import (
    Account,
    AccountStatus,
    AccountTenure,
    AccountType,
    ConsolidatedCharge,
    PrimaryTenant,
    RentGroupType,
    TenureTypeRef,
    wire_view,
)
from accounts.domain.events import EventEnvelope
from accounts.domain.interim import ROW_FIELDS, InterimRow
from accounts.domain.polarity import Polarity, TargetType
from accounts.domain.tenure import TenureRecord
from accounts.service.unit_of_work import ConcurrencyConflict, DeadLetter, InterimValues, OutboxMessage

PRN_COUNTER = "prn"


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back naive; they were written as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _tenure_from_json(raw: dict[str, Any] | None) -> AccountTenure | None:
    if not raw:
        return None
    tenure_type = raw.get("tenureType")
    return AccountTenure(
        tenure_id=UUID(raw["tenureId"]),
        tenure_type=TenureTypeRef(tenure_type["code"], tenure_type.get("description") or "") if tenure_type else None,
        full_address=raw.get("fullAddress"),
        primary_tenants=tuple(
            PrimaryTenant(UUID(p["id"]), p.get("fullName") or "") for p in raw.get("primaryTenants") or []
        ),
    )


def account_from_row(row: sa.Row[Any]) -> Account:
    return Account(
        id=row.id,
        target_type=row.target_type,
        target_id=row.target_id,
        account_type=AccountType(row.account_type),
        payment_reference=row.payment_reference,
        created_by=row.created_by,
        created_at=aware(row.created_at),  # type: ignore[arg-type]
        last_updated_by=row.last_updated_by,
        last_updated_at=aware(row.last_updated_at),  # type: ignore[arg-type]
        account_status=AccountStatus(row.account_status),
        rent_group_type=RentGroupType(row.rent_group_type) if row.rent_group_type else None,
        agreement_type=row.agreement_type,
        account_balance=Decimal(row.account_balance).quantize(Decimal("0.01")),
        consolidated_balance=Decimal(row.consolidated_balance).quantize(Decimal("0.01")),
        parent_account_id=row.parent_account_id,
        start_date=aware(row.start_date),
        end_date=aware(row.end_date),
        end_reason_code=row.end_reason_code,
        consolidated_charges=tuple(
            ConsolidatedCharge(c["type"], c["frequency"], Decimal(c["amount"])) for c in row.consolidated_charges
        ),
        tenure=_tenure_from_json(row.tenure),
        version=row.version,
    )


def account_values(account: Account, amount_owed: Decimal) -> dict[str, Any]:
    return {
        "id": account.id,
        "target_type": account.target_type,
        "target_id": account.target_id,
        "account_type": account.account_type.value,
        "rent_group_type": account.rent_group_type.value if account.rent_group_type else None,
        "agreement_type": account.agreement_type,
        "account_balance": account.account_balance,
        "consolidated_balance": account.consolidated_balance,
        "amount_owed": amount_owed,
        "payment_reference": account.payment_reference,
        "parent_account_id": account.parent_account_id,
        "created_by": account.created_by,
        "created_at": account.created_at,
        "last_updated_by": account.last_updated_by,
        "last_updated_at": account.last_updated_at,
        "start_date": account.start_date,
        "end_date": account.end_date,
        "end_reason_code": account.end_reason_code,
        "account_status": account.account_status.value,
        # Amounts as text: JSON numbers would pass through float.
        "consolidated_charges": [
            {"type": c.type, "frequency": c.frequency, "amount": str(c.amount)} for c in account.consolidated_charges
        ],
        "tenure": wire_view(account)["tenure"],
        "version": account.version,
        "wire": account_json(account).decode(),
    }


def account_json(account: Account) -> bytes:
    """The account's wire JSON, money as exact two-place numbers: what GET answers, byte for byte."""
    try:
        return orjson.dumps(wire_view(account), default=_exact_money)
    except orjson.JSONEncodeError as error:
        if "surrogate" not in str(error):
            raise
        # Text that is not Unicode (a lone surrogate escaped in some JSON): no database can store
        # it either, so it is refused as the driver would refuse it, never retried.
        raise UnicodeEncodeError("utf-8", str(error), 0, 1, "a lone surrogate is not storable text") from error


# The listener's and the API's hot statements, built once: building a statement and its
# cache key on every call cost about a quarter of the listener's time per event.
_accounts = t.accounts.c
_ACCOUNT = sa.select(t.accounts).where(_accounts.id == sa.bindparam("id"))
_ACCOUNT_FOR_UPDATE = _ACCOUNT.with_for_update()
_BY_TARGET = (
    sa.select(t.accounts)
    .where(_accounts.target_id == sa.bindparam("target_id"))
    .order_by(_accounts.created_at, _accounts.id)
)
_BY_TARGET_AND_TYPE = _BY_TARGET.where(_accounts.account_type == sa.bindparam("account_type"))
_ACTIVE_MASTER = sa.select(t.accounts).where(
    _accounts.target_id == sa.bindparam("target_id"),
    _accounts.account_type == AccountType.MASTER.value,
    _accounts.account_status != AccountStatus.ENDED.value,
)
_PAYMENT_REFERENCE = sa.select(_accounts.id).where(_accounts.payment_reference == sa.bindparam("payment_reference"))
# The SET clause is every column in the parameters; the b_ names are the WHERE clause's.
_UPDATE_ACCOUNT = t.accounts.update().where(
    _accounts.id == sa.bindparam("b_id"), _accounts.version == sa.bindparam("b_expected_version")
)
_PROCESSED = sa.select(t.processed_events.c.event_id).where(t.processed_events.c.event_id == sa.bindparam("event_id"))
_TENURE = sa.select(t.tenure_copies).where(t.tenure_copies.c.tenure_id == sa.bindparam("tenure_id"))
_TENURE_FOR_UPDATE = _TENURE.with_for_update()
_UPDATE_TENURE = t.tenure_copies.update().where(t.tenure_copies.c.tenure_id == sa.bindparam("b_tenure_id"))
_INTERIM_BY_ACCOUNT = sa.select(t.interim_rows).where(t.interim_rows.c.account_id == sa.bindparam("account_id"))
_UPDATE_INTERIM_ROW = (
    t.interim_rows.update()
    .where(t.interim_rows.c.account_id == sa.bindparam("b_account_id"))
    .values(version=t.interim_rows.c.version + 1)
    .returning(t.interim_rows.c.version)
)


def _next_pending_version(pending_version: Any, version: Any) -> Any:
    """Pending versions only ever rise: a reused payment reference restarts its row at version 1, and a
    delivery in flight must not clear the new row's entry with the old, higher version it read."""
    return sa.case((pending_version >= version, pending_version + 1), else_=version)


def _pending_upsert(insert: Any) -> Any:
    pending = t.interim_pending
    return insert.on_conflict_do_update(
        index_elements=[pending.c.sink, pending.c.payment_ref],
        set_={"version": _next_pending_version(pending.c.version, insert.excluded.version)},
    )


_PENDING_UNLOCKED = (
    sa.select(t.interim_pending.c.payment_ref)
    .where(
        t.interim_pending.c.sink == sa.bindparam("sink"),
        t.interim_pending.c.payment_ref.in_(sa.bindparam("refs", expanding=True)),
    )
    .with_for_update(skip_locked=True)
)
_CLEAR_PENDING = t.interim_pending.delete().where(
    t.interim_pending.c.sink == sa.bindparam("b_sink"),
    t.interim_pending.c.payment_ref == sa.bindparam("ref"),
    t.interim_pending.c.version <= sa.bindparam("delivered_version"),
)

_PENDING_UPSERTS = {
    "sqlite": _pending_upsert(sqlite_dml.insert(t.interim_pending)),
    "postgresql": _pending_upsert(postgresql_dml.insert(t.interim_pending)),
}


class SqlAccountRepository:
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def get(self, account_id: UUID, *, for_update: bool = False) -> Account | None:
        # SQLite writers are serialised by BEGIN IMMEDIATE instead of FOR UPDATE.
        query = _ACCOUNT_FOR_UPDATE if for_update else _ACCOUNT
        row = self.connection.execute(query, {"id": account_id}).first()
        return account_from_row(row) if row else None

    def by_target(self, target_id: UUID, account_type: AccountType | None) -> list[Account]:
        if account_type is None:
            rows = self.connection.execute(_BY_TARGET, {"target_id": target_id})
        else:
            rows = self.connection.execute(
                _BY_TARGET_AND_TYPE, {"target_id": target_id, "account_type": account_type.value}
            )
        return [account_from_row(row) for row in rows]

    def active_master(self, target_id: UUID) -> Account | None:
        row = self.connection.execute(_ACTIVE_MASTER, {"target_id": target_id}).first()
        return account_from_row(row) if row else None

    def payment_reference_taken(self, payment_reference: str) -> bool:
        return self.connection.execute(_PAYMENT_REFERENCE, {"payment_reference": payment_reference}).first() is not None

    def add(self, account: Account, amount_owed: Decimal) -> None:
        self.connection.execute(t.accounts.insert(), account_values(account, amount_owed))

    def update(self, account: Account, expected_version: int, amount_owed: Decimal) -> None:
        values = account_values(account, amount_owed)
        del values["id"]
        result = self.connection.execute(
            _UPDATE_ACCOUNT, {"b_id": account.id, "b_expected_version": expected_version, **values}
        )
        if result.rowcount != 1:
            raise ConcurrencyConflict(f"account {account.id} is no longer at version {expected_version}")

    def arrears(
        self, account_type: AccountType | None, sort_column: str, descending: bool, limit: int
    ) -> list[Account]:
        column = t.accounts.c[sort_column]
        query = sa.select(t.accounts).where(t.accounts.c.amount_owed > 0)
        if account_type is not None:
            query = query.where(t.accounts.c.account_type == account_type.value)
        order = column.desc() if descending else column.asc()
        query = query.order_by(order, t.accounts.c.id).limit(limit)
        return [account_from_row(row) for row in self.connection.execute(query)]

    def interim_values(self) -> Iterator[InterimValues]:
        """`interim_sources` as stored values: no `Account` made, for reconciling many thousands."""
        a, copies = t.accounts, t.tenure_copies
        query = (
            sa.select(a.c.id, a.c.payment_reference, a.c.rent_group_type, a.c.start_date, a.c.end_date, a.c.tenure)
            .add_columns(copies.c.data)
            .select_from(a.outerjoin(copies, copies.c.tenure_id == a.c.target_id))
            .where(a.c.target_type == "Tenure", a.c.account_type == AccountType.MASTER.value)
        )
        for row in self.connection.execute(query):
            yield (
                row.id,
                row.payment_reference,
                row.rent_group_type,
                row.start_date,
                row.end_date,
                row.tenure,
                row.data,
            )

    def interim_sources(self) -> Iterator[tuple[Account, TenureRecord | None]]:
        copies = t.tenure_copies
        query = (
            sa.select(t.accounts, copies.c.data, copies.c.stamps, copies.c.complete)
            .select_from(t.accounts.outerjoin(copies, copies.c.tenure_id == t.accounts.c.target_id))
            .where(t.accounts.c.target_type == "Tenure", t.accounts.c.account_type == AccountType.MASTER.value)
        )
        for row in self.connection.execute(query):
            tenure = (
                TenureRecord(row.target_id, dict(row.data), dict(row.stamps), bool(row.complete))
                if row.data is not None
                else None
            )
            yield account_from_row(row), tenure


class SqlTargetTypeRepository:
    """Target types change only with a migration; each is read once per unit of work."""

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection
        self._known: dict[str, TargetType | None] = {}

    def get(self, name: str) -> TargetType | None:
        if name in self._known:
            return self._known[name]
        row = self.connection.execute(sa.select(t.target_types).where(t.target_types.c.name == name)).first()
        found = TargetType(row.name, Polarity(row.polarity), row.description) if row else None
        self._known[name] = found
        return found

    def all(self) -> list[TargetType]:
        rows = self.connection.execute(sa.select(t.target_types).order_by(t.target_types.c.name))
        found = [TargetType(row.name, Polarity(row.polarity), row.description) for row in rows]
        self._known.update((target_type.name, target_type) for target_type in found)
        return found


class SqlPaymentReferenceSerials:
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def next_serial(self) -> int:
        counter = t.payment_reference_counter
        serial = self.connection.execute(
            counter.update()
            .where(counter.c.name == PRN_COUNTER)
            .values(next_serial=counter.c.next_serial + 1)
            .returning(counter.c.next_serial)
        ).scalar_one()
        return int(serial) - 1


def _exact_money(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value.quantize(Decimal("0.01"))))
    return str(value)


def _event_json(event: EventEnvelope) -> str:
    """Money as a JSON number with two decimals, as the API writes it (never via float)."""
    try:
        return orjson.dumps(event.to_wire(), default=_exact_money).decode()
    except orjson.JSONEncodeError:  # text orjson will not write (a lone surrogate): escape it instead
        return json.dumps(event.to_wire(), default=str)


def outbox_values(topic: str, event: EventEnvelope, group_id: str) -> dict[str, Any]:
    """The outbox row of an event: the one shape both the one-by-one and the batch outbox write."""
    return {
        "event_id": event.id,
        "topic": topic,
        "event_type": event.event_type,
        "group_id": group_id,
        "payload": _event_json(event),
        "created_at": event.date_time,
    }


class SqlOutbox:
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def add(self, topic: str, event: EventEnvelope, group_id: str) -> None:
        self.connection.execute(t.outbox.insert(), outbox_values(topic, event, group_id))

    def pending(self, limit: int) -> list[OutboxMessage]:
        query = (
            sa.select(
                t.outbox.c.position,
                t.outbox.c.topic,
                t.outbox.c.group_id,
                t.outbox.c.event_id,
                t.outbox.c.payload,
            )
            .where(t.outbox.c.published_at.is_(None))
            .order_by(t.outbox.c.position)
            .limit(limit)
        )
        return [
            OutboxMessage(row.position, row.topic, row.group_id, row.event_id, row.payload.encode())
            for row in self.connection.execute(query)
        ]

    def mark_published(self, positions: Sequence[int], at: datetime) -> None:
        if positions:
            self.connection.execute(t.outbox.update().where(t.outbox.c.position.in_(positions)).values(published_at=at))

    def count_pending(self) -> int:
        query = sa.select(sa.func.count()).select_from(t.outbox).where(t.outbox.c.published_at.is_(None))
        return int(self.connection.execute(query).scalar_one())


class SqlProcessedEvents:
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def seen(self, event_id: UUID) -> bool:
        return self.connection.execute(_PROCESSED, {"event_id": event_id}).first() is not None

    def record(self, event: EventEnvelope, outcome: str, at: datetime) -> None:
        self.connection.execute(
            t.processed_events.insert(),
            {
                "event_id": event.id,
                "event_type": event.event_type[:80],
                "entity_id": event.entity_id,
                "outcome": outcome[:200],
                "processed_at": at,
            },
        )


class SqlTenureCopies:
    """Tenure copies; what this unit of work locked or wrote is remembered, not read again."""

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection
        # Read FOR UPDATE or written in this transaction: the current value (None: no row).
        self._held: dict[UUID, TenureRecord | None] = {}

    def get(self, tenure_id: UUID, *, for_update: bool = False) -> TenureRecord | None:
        if tenure_id in self._held:
            return _copy_record(self._held[tenure_id])
        query = _TENURE_FOR_UPDATE if for_update else _TENURE
        row = self.connection.execute(query, {"tenure_id": tenure_id}).first()
        record = (
            None if row is None else TenureRecord(row.tenure_id, dict(row.data), dict(row.stamps), bool(row.complete))
        )
        if for_update:
            self._held[tenure_id] = _copy_record(record)
        return record

    def save(self, record: TenureRecord, at: datetime) -> None:
        values = {"data": record.data, "stamps": record.stamps, "complete": record.complete, "updated_at": at}
        known = record.tenure_id in self._held
        if known and self._held[record.tenure_id] is None:
            self.connection.execute(t.tenure_copies.insert(), {"tenure_id": record.tenure_id, **values})
        else:
            updated = self.connection.execute(_UPDATE_TENURE, {"b_tenure_id": record.tenure_id, **values})
            if updated.rowcount == 0:
                self.connection.execute(t.tenure_copies.insert(), {"tenure_id": record.tenure_id, **values})
        self._held[record.tenure_id] = _copy_record(record)


def _copy_record(record: TenureRecord | None) -> TenureRecord | None:
    """A copy a caller may merge into without changing the remembered one."""
    if record is None:
        return None
    return TenureRecord(record.tenure_id, dict(record.data), dict(record.stamps), record.complete)


# Where each InterimRow field sits in a row of `select(interim_rows)`: read by position, not by name,
# since a workbook rewrite reads every row (getattr on a Row cost as much as the database read).
_ROW_POSITIONS = tuple(list(t.interim_rows.c.keys()).index(name) for name in ROW_FIELDS)


def interim_from_row(row: sa.Row[Any]) -> InterimRow:
    """The row of a `select(interim_rows)` (every column, in the table's order)."""
    return InterimRow(*[row[position] for position in _ROW_POSITIONS])


_STREAM_ROWS = 2_000  # rows a batch, reading the interim rows for a rewrite


class SqlInterimRows:
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection
        # Rows written in this transaction, by account: read back without a query.
        self._saved: dict[UUID, InterimRow] = {}
        self._sinks: list[str] | None = None

    def get(self, payment_ref: str) -> InterimRow | None:
        row = self.connection.execute(
            sa.select(t.interim_rows).where(t.interim_rows.c.payment_ref == payment_ref)
        ).first()
        return interim_from_row(row) if row else None

    def by_account(self, account_id: UUID) -> InterimRow | None:
        if account_id in self._saved:
            return self._saved[account_id]
        row = self.connection.execute(_INTERIM_BY_ACCOUNT, {"account_id": account_id}).first()
        return interim_from_row(row) if row else None

    def save(self, account_id: UUID, row: InterimRow, previous: InterimRow | None, at: datetime) -> int:
        values = {name: getattr(row, name) for name in ROW_FIELDS}
        if previous is None:
            self.connection.execute(
                t.interim_rows.insert(), {"account_id": account_id, "version": 1, "updated_at": at, **values}
            )
            self._saved[account_id] = row
            return 1
        version = self.connection.execute(
            _UPDATE_INTERIM_ROW, {"b_account_id": account_id, "updated_at": at, **values}
        ).scalar_one()
        self._saved[account_id] = row
        return int(version)

    def mark_pending(self, sinks: Sequence[str], payment_ref: str, version: int) -> None:
        pending = t.interim_pending
        if not sinks:
            return
        upsert = _PENDING_UPSERTS.get(self.connection.dialect.name)
        if upsert is not None:
            # One statement for every sink: insert, or move an existing entry to this version.
            self.connection.execute(
                upsert, [{"sink": sink, "payment_ref": payment_ref, "version": version} for sink in sinks]
            )
            return
        for sink in sinks:
            updated = self.connection.execute(
                pending.update()
                .where(pending.c.sink == sink, pending.c.payment_ref == payment_ref)
                .values(version=_next_pending_version(pending.c.version, version))
            )
            if updated.rowcount == 0:
                self.connection.execute(pending.insert().values(sink=sink, payment_ref=payment_ref, version=version))

    def all(self) -> list[InterimRow]:
        rows = self.connection.execute(sa.select(t.interim_rows).order_by(t.interim_rows.c.payment_ref))
        return [interim_from_row(row) for row in rows]

    def stream(self) -> Iterator[InterimRow]:
        query = sa.select(t.interim_rows).order_by(t.interim_rows.c.payment_ref)
        # A server-side cursor where the driver has one: rows arrive a batch at a time.
        for row in self.connection.execute(query.execution_options(yield_per=_STREAM_ROWS)):
            yield interim_from_row(row)

    def pending(self, sink: str, limit: int) -> list[tuple[str, int]]:
        pending = t.interim_pending
        query = (
            sa.select(pending.c.payment_ref, pending.c.version)
            .where(pending.c.sink == sink)
            .order_by(pending.c.version, pending.c.payment_ref)
            .limit(limit)
        )
        return [(row.payment_ref, row.version) for row in self.connection.execute(query)]

    def has_pending(self, sink: str) -> bool:
        query = sa.select(t.interim_pending.c.payment_ref).where(t.interim_pending.c.sink == sink).limit(1)
        return self.connection.execute(query).first() is not None

    def rows(self, payment_refs: Sequence[str]) -> list[InterimRow]:
        if not payment_refs:
            return []
        query = sa.select(t.interim_rows).where(t.interim_rows.c.payment_ref.in_(payment_refs))
        return [interim_from_row(row) for row in self.connection.execute(query)]

    def clear_pending(self, sink: str, delivered: Sequence[tuple[str, int]]) -> None:
        # Rows a listener transaction holds are being marked again (they stay pending, for the next
        # delivery): skip them rather than wait, as waiting deadlocks against a listener batch that
        # marks rows in another order (PostgreSQL breaks it after a second's stall). SQLite has no
        # row locks (its writers take turns), so there is nothing to skip.
        if self.connection.dialect.name != "sqlite":
            refs = sorted(ref for ref, _ in delivered)
            free: set[str] = set()
            for start in range(0, len(refs), 1000):
                free.update(
                    self.connection.execute(
                        _PENDING_UNLOCKED, {"sink": sink, "refs": refs[start : start + 1000]}
                    ).scalars()
                )
            delivered = [(ref, version) for ref, version in delivered if ref in free]
        if not delivered:
            return
        executemany(
            self.connection,
            _CLEAR_PENDING,
            [{"b_sink": sink, "ref": ref, "delivered_version": version} for ref, version in delivered],
        )

    def enable_sinks(self, sinks: Sequence[str], at: datetime) -> list[str]:
        known = set(self.connection.execute(sa.select(t.interim_sinks.c.sink)).scalars())
        new = [sink for sink in sinks if sink not in known]
        self._sinks = None
        for sink in new:
            self.connection.execute(t.interim_sinks.insert().values(sink=sink, enabled_at=at))
            self.queue_everything(sink)
        return new

    def queue_everything(self, sink: str) -> int:
        pending = t.interim_pending
        self.connection.execute(pending.delete().where(pending.c.sink == sink))
        result = self.connection.execute(
            pending.insert().from_select(
                ["sink", "payment_ref", "version"],
                sa.select(sa.literal(sink), t.interim_rows.c.payment_ref, t.interim_rows.c.version),
            )
        )
        return int(result.rowcount or 0)

    def note_delivery(self, sink: str, at: datetime, error: str | None) -> None:
        values: dict[str, Any] = {"last_error": error}
        if error is None:
            values["last_delivered_at"] = at
        self.connection.execute(t.interim_sinks.update().where(t.interim_sinks.c.sink == sink).values(values))

    def remove(self, account_id: UUID) -> tuple[str, int] | None:
        """Delete the account's row: (its payment ref, the version its removal counts as), or None."""
        self._saved.pop(account_id, None)
        rows = t.interim_rows
        removed = self.connection.execute(
            rows.delete().where(rows.c.account_id == account_id).returning(rows.c.payment_ref, rows.c.version)
        ).first()
        return None if removed is None else (removed.payment_ref, int(removed.version) + 1)

    def registered_sinks(self) -> list[str]:
        """Every sink ever enabled, configured here or not: each is owed every change (read once a transaction)."""
        if self._sinks is None:
            query = sa.select(t.interim_sinks.c.sink).order_by(t.interim_sinks.c.sink)
            self._sinks = list(self.connection.execute(query).scalars())
        return list(self._sinks)

    def account_ids(self) -> dict[str, UUID]:
        """payment ref -> account id, for every row."""
        query = sa.select(t.interim_rows.c.payment_ref, t.interim_rows.c.account_id)
        return {row.payment_ref: row.account_id for row in self.connection.execute(query)}

    def count_pending(self, sink: str) -> int:
        query = sa.select(sa.func.count()).select_from(t.interim_pending).where(t.interim_pending.c.sink == sink)
        return int(self.connection.execute(query).scalar_one())


class SqlDeadLetters:
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

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
        self.connection.execute(
            t.dead_letters.insert().values(
                source=source[:80],
                body=body,
                reason=reason,
                attempts=attempts,
                created_at=at,
                event_id=event_id[:64] if event_id else None,
                event_type=event_type[:80] if event_type else None,
            )
        )

    def list(self, include_replayed: bool = False) -> list[DeadLetter]:
        query = sa.select(t.dead_letters).order_by(t.dead_letters.c.id)
        if not include_replayed:
            query = query.where(t.dead_letters.c.replayed_at.is_(None))
        return [
            DeadLetter(
                id=row.id,
                source=row.source,
                event_id=row.event_id,
                event_type=row.event_type,
                body=bytes(row.body),
                reason=row.reason,
                attempts=row.attempts,
                created_at=aware(row.created_at),  # type: ignore[arg-type]
                replayed_at=aware(row.replayed_at),
            )
            for row in self.connection.execute(query)
        ]

    def mark_replayed(self, dead_letter_id: int, at: datetime) -> None:
        self.connection.execute(
            t.dead_letters.update().where(t.dead_letters.c.id == dead_letter_id).values(replayed_at=at)
        )
