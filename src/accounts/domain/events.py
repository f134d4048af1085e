"""The MTFH event envelope, inbound tenure events and outbound account events."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import orjson

from accounts.domain.account import Account, Actor, Change, wire_difference, wire_view
from accounts.domain.ledger import Transaction
from accounts.domain.ledger import to_wire as transaction_to_wire

TENURE_CREATED = "TenureCreatedEvent"
TENURE_UPDATED = "TenureUpdatedEvent"
PERSON_ADDED = "PersonAddedToTenureEvent"
PERSON_REMOVED = "PersonRemovedFromTenureEvent"
TENURE_EVENT_TYPES = (TENURE_CREATED, TENURE_UPDATED, PERSON_ADDED, PERSON_REMOVED)

ACCOUNT_CREATED = "AccountCreatedEvent"
ACCOUNT_UPDATED = "AccountUpdatedEvent"
TRANSACTION_POSTED = "AccountTransactionPostedEvent"


class MalformedEvent(ValueError):
    """An event that can never be processed: it goes to the dead-letter store."""


@dataclass(frozen=True)
class EventEnvelope:
    id: UUID
    event_type: str
    source_domain: str
    source_system: str
    version: str
    correlation_id: UUID
    date_time: datetime
    user: Actor
    entity_id: UUID
    old_data: dict[str, Any] | None
    new_data: dict[str, Any] | None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "eventType": self.event_type,
            "sourceDomain": self.source_domain,
            "sourceSystem": self.source_system,
            "version": self.version,
            "correlationId": str(self.correlation_id),
            "dateTime": self.date_time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "user": {"name": self.user.name, "email": self.user.email},
            "entityId": str(self.entity_id),
            "eventData": {"oldData": self.old_data, "newData": self.new_data},
        }


def _uuid(raw: dict[str, Any], key: str) -> UUID:
    value = raw.get(key)
    if not isinstance(value, str):
        raise MalformedEvent(f"{key} is missing or not a string")
    try:
        return UUID(value)
    except ValueError:
        raise MalformedEvent(f"{key} is not a UUID: {value[:64]!r}") from None


def _text(raw: dict[str, Any], key: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value:
        raise MalformedEvent(f"{key} is missing or not a non-empty string")
    return value


def _data(raw: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, dict):
        raise MalformedEvent(f"eventData.{key} must be an object or null")
    return value


def refuse_constant(name: str) -> Any:
    """For json.loads's parse_constant: NaN and the infinities are not JSON numbers."""
    raise ValueError(f"{name} is not a number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:32]} is out of range for a number")
    return value


def _holds_float(value: Any) -> bool:
    """Whether a parsed document holds a float anywhere (checked without recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            return True
    return False


def strict_json(body: bytes | str) -> Any:
    """JSON as RFC 8259 has it: NaN, Infinity and numbers past a float's range refused (ValueError).

    Python's json module reads them, but no JSON column can hold them faithfully. orjson,
    which refuses them too and reads an event in a quarter of the time, is tried first;
    whatever it refuses is read by the json module, which names the fault. orjson reads an
    integer outside 64 bits as a float (losing digits), so a document in which it found any
    float is read again by the json module, which keeps integers exact (tenure events hold none).
    """
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    else:
        if not _holds_float(value):
            return value
    return json.loads(body, parse_constant=refuse_constant, parse_float=_finite)


def parse_envelope(body: bytes | str | dict[str, Any]) -> EventEnvelope:
    """Read an envelope, naming the first thing wrong with it."""
    if isinstance(body, dict):
        raw: Any = body
    else:
        try:
            raw = strict_json(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise MalformedEvent(f"body is not JSON: {error}") from None
        except RecursionError:
            raise MalformedEvent("body is not JSON this listener can read: nested too deeply") from None
    if not isinstance(raw, dict):
        raise MalformedEvent("body is not a JSON object")
    try:
        text = _text(raw, "dateTime")
        date_time = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1] in "Zz" else text)
    except ValueError:
        raise MalformedEvent(f"dateTime is not ISO-8601: {str(raw.get('dateTime'))[:64]!r}") from None
    if date_time.tzinfo is None:
        date_time = date_time.replace(tzinfo=UTC)
    try:
        date_time = date_time.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first instant a datetime holds in UTC
        raise MalformedEvent(f"dateTime is outside the years this service holds: {text[:64]!r}") from None
    user = raw.get("user") or {}
    if not isinstance(user, dict):
        raise MalformedEvent("user must be an object")
    event_data = raw.get("eventData") or {}
    if not isinstance(event_data, dict):
        raise MalformedEvent("eventData must be an object")
    correlation = raw.get("correlationId")
    return EventEnvelope(
        id=_uuid(raw, "id"),
        event_type=_text(raw, "eventType"),
        source_domain=str(raw.get("sourceDomain") or ""),
        source_system=str(raw.get("sourceSystem") or ""),
        version=str(raw.get("version") or "v1"),
        correlation_id=_uuid(raw, "correlationId") if correlation else uuid4(),
        date_time=date_time,
        user=Actor(name=str(user.get("name") or ""), email=str(user.get("email") or "")),
        entity_id=_uuid(raw, "entityId"),
        old_data=_data(event_data, "oldData"),
        new_data=_data(event_data, "newData"),
    )


def _account_event(
    event_type: str,
    account: Account,
    actor: Actor,
    correlation_id: UUID,
    at: datetime,
    old_data: dict[str, Any] | None,
    new_data: dict[str, Any],
) -> EventEnvelope:
    return EventEnvelope(
        id=uuid4(),
        event_type=event_type,
        source_domain="Accounts",
        source_system="AccountsAPI",
        version="v1",
        correlation_id=correlation_id,
        date_time=at,
        user=actor,
        entity_id=account.id,
        old_data=old_data,
        new_data=new_data,
    )


def account_created(account: Account, actor: Actor, correlation_id: UUID, at: datetime) -> EventEnvelope:
    return _account_event(ACCOUNT_CREATED, account, actor, correlation_id, at, None, dict(wire_view(account)))


def account_updated(old: Account, new: Account, actor: Actor, correlation_id: UUID, at: datetime) -> EventEnvelope:
    """Carries only the changed top-level fields, as the MTFH update events do."""
    old_data, new_data = wire_difference(wire_view(old), wire_view(new))
    return _account_event(ACCOUNT_UPDATED, new, actor, correlation_id, at, old_data, new_data)


def transaction_posted(account: Account, transaction: Transaction, change: Change) -> EventEnvelope:
    """A transaction posted to the account's ledger: the whole transaction, as the API answers it."""
    return _account_event(
        TRANSACTION_POSTED,
        account,
        change.actor,
        change.correlation_id,
        change.at,
        None,
        transaction_to_wire(transaction),
    )


def account_events(account: Account) -> list[EventEnvelope]:
    """What the account raised (`Account.opened`, `Account.change`) as the events the outbox carries, oldest first.

    A change made by a ledger posting carries the account's event, then the posting's.
    """
    events = []
    for raised, version in account.versions_raised():
        change = raised.change
        if raised.before is None:
            events.append(account_created(version, change.actor, change.correlation_id, change.at))
        else:
            events.append(account_updated(raised.before, version, change.actor, change.correlation_id, change.at))
        if raised.posted is not None:
            events.append(transaction_posted(version, raised.posted, change))
    return events
