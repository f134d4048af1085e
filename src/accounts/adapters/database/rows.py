"""Rows and domain values: how an account, an event, an interim row and a transaction are stored, and read back.

The one place each stored shape is written down; the repositories and the benchmarks' seeding use it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
import sqlalchemy as sa

from accounts.adapters.database import tables as t
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
from accounts.domain.arrears import stored_figures
from accounts.domain.events import EventEnvelope, parse_envelope
from accounts.domain.interim import ROW_FIELDS, InterimRow
from accounts.domain.ledger import Direction, Transaction, TransactionType
from accounts.domain.tenure import TenureRecord
from accounts.service.unit_of_work import ParkedEvent


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
        # Absent from rows read by migrations older than 0007 (they name the columns they read).
        last_payment_date=getattr(row, "last_payment_date", None),
        last_payment_amount=_money_or_none(getattr(row, "last_payment_amount", None)),
    )


def _money_or_none(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(Decimal("0.01"))


# The columns migration 0007 added (the arrears worklist's): rows written for an older schema leave them out.
WORKLIST_COLUMNS = ("weekly_charge", "weeks_in_arrears", "last_payment_date", "last_payment_amount", "arrears_since")


def worklist_values(account: Account, amount_owed: Decimal) -> dict[str, Any]:
    """The arrears worklist's stored figures (`domain.arrears.stored_figures`): what it filters and sorts by."""
    figures = stored_figures(account, amount_owed)
    return {
        "weekly_charge": figures.weekly_charge,
        "weeks_in_arrears": figures.weeks_in_arrears,
        "last_payment_date": account.last_payment_date,
        "last_payment_amount": account.last_payment_amount,
        "arrears_since": figures.arrears_since,
    }


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
        **worklist_values(account, amount_owed),
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
    """The outbox row of an event."""
    return {
        "event_id": event.id,
        "topic": topic,
        "event_type": event.event_type,
        "group_id": group_id,
        "payload": _event_json(event),
        "created_at": event.date_time,
    }


# Where each InterimRow field sits in a row of `select(interim_rows)`: read by position, not by name,
# since a workbook rewrite reads every row (getattr on a Row cost as much as the database read).
_ROW_POSITIONS = tuple(list(t.interim_rows.c.keys()).index(name) for name in ROW_FIELDS)


def interim_from_row(row: sa.Row[Any]) -> InterimRow:
    """The row of a `select(interim_rows)` (every column, in the table's order)."""
    return InterimRow(*[row[position] for position in _ROW_POSITIONS])


def tenure_from_row(row: sa.Row[Any]) -> TenureRecord:
    """A tenure copy as stored (`select(tenure_copies)`)."""
    return TenureRecord(row.tenure_id, dict(row.data), dict(row.stamps), bool(row.complete))


def tenure_values(record: TenureRecord, at: datetime) -> dict[str, Any]:
    return {"data": record.data, "stamps": record.stamps, "complete": record.complete, "updated_at": at}


def interim_values(row: InterimRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in ROW_FIELDS}


def transaction_values(transaction: Transaction) -> dict[str, Any]:
    """A transaction's row, less `position`: the database numbers rows in the order they are written."""
    return {
        "id": transaction.id,
        "account_id": transaction.account_id,
        "transaction_type": transaction.transaction_type.value,
        "amount": transaction.amount,
        "direction": transaction.direction.value,
        "transaction_date": transaction.transaction_date,
        "posted_at": transaction.posted_at,
        "period_no": transaction.period_no,
        "financial_year": transaction.financial_year,
        "description": transaction.description,
        "reference": transaction.reference,
        "created_by": transaction.created_by,
        "reverses_id": transaction.reverses_id,
        "balance_after": transaction.balance_after,
    }


_CENT = Decimal("0.01")


def transaction_from_row(row: sa.Row[Any]) -> Transaction:
    """A row of `select(account_transactions)`: money to two places (SQLite keeps it as a binary
    number), `posted_at` made UTC (SQLite hands it back naive)."""
    return Transaction(
        id=row.id,
        account_id=row.account_id,
        transaction_type=TransactionType(row.transaction_type),
        amount=Decimal(row.amount).quantize(_CENT),
        direction=Direction(row.direction),
        transaction_date=row.transaction_date,
        posted_at=aware(row.posted_at),  # type: ignore[arg-type]
        period_no=row.period_no,
        financial_year=row.financial_year,
        description=row.description,
        reference=row.reference,
        created_by=row.created_by,
        reverses_id=row.reverses_id,
        balance_after=Decimal(row.balance_after).quantize(_CENT),
    )


def parked_values(parked: ParkedEvent) -> dict[str, Any]:
    event = parked.event
    return {
        "event_id": event.id,
        "tenure_id": event.entity_id,
        "event_type": event.event_type[:80],
        "date_time": event.date_time,
        "envelope": _event_json(event),
        "reason": parked.reason[:500],
        "parked_at": parked.parked_at,
    }


def parked_from_row(row: Any) -> ParkedEvent:
    """The event as it came (it was read once already; read again, it is the same envelope)."""
    return ParkedEvent(parse_envelope(row.envelope), row.reason, aware(row.parked_at) or row.parked_at)


def processed_values(event: EventEnvelope, outcome: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "event_type": event.event_type[:80],
        "entity_id": event.entity_id,
        "outcome": outcome[:200],
        "processed_at": at,
    }
