"""The value rules every part of the domain shares: exact money, UTC instants, how instants are written."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from accounts.domain.errors import ValidationProblem

MONEY_PLACES = Decimal("0.01")
MONEY_LIMIT = Decimal("1000000000000")  # NUMERIC(14,2): twelve digits before the point


def money(value: Decimal, field_name: str) -> Decimal:
    """Check an amount fits NUMERIC(14,2) without rounding anything away."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValidationProblem(field_name, "must be a finite number", value)
    if value.quantize(MONEY_PLACES) != value:
        raise ValidationProblem(field_name, "must have at most two decimal places", value)
    if abs(value) >= MONEY_LIMIT:
        raise ValidationProblem(field_name, "must be less than 1,000,000,000,000 in size", value)
    return value.quantize(MONEY_PLACES) + 0  # + 0: never -0.00


def utc(value: datetime, field_name: str) -> datetime:
    if value.tzinfo is None:
        raise ValidationProblem(field_name, "must carry a timezone", value)
    return value.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
