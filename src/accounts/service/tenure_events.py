"""The finance listener's use case: a tenure event becomes the tenure's rent account.

Exactly once: the event id is recorded in `processed_events` in the same transaction
as the change, so a redelivery changes nothing. Order-proof: the tenure copy keeps a
change time per field, so late or shuffled events give the account that in-order
delivery gives. Every account change goes through `service.accounts`, the path the
API uses, so events, audit fields and interim rows are the same whoever changed it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from accounts.domain.account import Account, AccountType, Actor
from accounts.domain.events import (
    TENURE_CREATED,
    TENURE_EVENT_TYPES,
    TENURE_UPDATED,
    EventEnvelope,
    MalformedEvent,
)
from accounts.domain.tenure import RentGroupMap, TenureRecord
from accounts.service.accounts import (
    ChangeContext,
    Clock,
    NewAccount,
    change_account,
    create_account,
    sync_interim_row,
    utc_now,
)
from accounts.service.ports import TenureSource
from accounts.service.unit_of_work import ConcurrencyConflict, UnitOfWork

log = logging.getLogger(__name__)

LISTENER_NAME = "finance-listener"
MASTER_AGREEMENT = "Master Account"


class RetryLater(Exception):
    """The event cannot be applied yet (its tenure has not been seen); it is retried with backoff."""


@dataclass(frozen=True)
class Outcome:
    applied: bool
    detail: str


def changed_fields(event: EventEnvelope) -> dict[str, Any]:
    """The tenure fields an event sets, checked for shape."""
    new_data = event.new_data
    if event.event_type == TENURE_CREATED:
        if not new_data:
            raise MalformedEvent("TenureCreatedEvent has no eventData.newData")
        return new_data
    if event.event_type == TENURE_UPDATED:
        if new_data is None:
            raise MalformedEvent("TenureUpdatedEvent has no eventData.newData")
        return new_data
    members = (new_data or {}).get("householdMembers")
    if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
        raise MalformedEvent(f"{event.event_type} needs eventData.newData.householdMembers as a list of objects")
    return {"householdMembers": members}


@dataclass
class TenureEventHandler:
    uow_factory: Callable[..., UnitOfWork]
    rent_groups: RentGroupMap
    interim_sinks: Sequence[str] = ()
    tenure_source: TenureSource | None = None
    clock: Clock = utc_now
    attempts: int = 5

    def handle(self, event: EventEnvelope) -> Outcome:
        if event.event_type not in TENURE_EVENT_TYPES:
            log.info("skipping event %s of unknown type %s", event.id, event.event_type)
            return Outcome(False, f"unknown event type {event.event_type}: skipped")
        fields = changed_fields(event)
        fetched = self._fetch_if_unseen(event)
        for attempt in range(1, self.attempts + 1):
            try:
                with self.uow_factory() as uow:
                    outcome = self._apply(uow, event, fields, fetched)
                    uow.commit()
                    return outcome
            except ConcurrencyConflict:
                if attempt == self.attempts:
                    raise
                log.info("event %s lost a race; retrying (attempt %d)", event.id, attempt)
        raise AssertionError("unreachable")

    def _fetch_if_unseen(self, event: EventEnvelope) -> dict[str, Any] | None:
        """For an update about a tenure never seen: the whole tenure from the Tenure API, if configured."""
        if event.event_type == TENURE_CREATED or self.tenure_source is None:
            return None
        with self.uow_factory(read_only=True) as uow:
            if uow.processed_events.seen(event.id):
                return None
            record = uow.tenures.get(event.entity_id)
        if record is not None and record.complete:
            return None
        return self.tenure_source.fetch(event.entity_id)

    def _apply(
        self, uow: UnitOfWork, event: EventEnvelope, fields: dict[str, Any], fetched: dict[str, Any] | None
    ) -> Outcome:
        if uow.processed_events.seen(event.id):
            return Outcome(False, "duplicate: already processed")
        record = uow.tenures.get(event.entity_id, for_update=True) or TenureRecord(event.entity_id)
        if fetched is not None:
            record.merge(fetched, event.date_time, whole=True)
        applied = record.merge(fields, event.date_time, whole=event.event_type == TENURE_CREATED)
        if not record.complete:
            raise RetryLater(f"tenure {event.entity_id} has not been seen yet (no TenureCreatedEvent)")
        context = ChangeContext(
            actor=Actor(event.user.name or LISTENER_NAME, event.user.email),
            correlation_id=event.correlation_id,
            at=self.clock(),
        )
        uow.tenures.save(record, context.at)
        if applied:
            account = self._keep_account(uow, record, context)
            sync_interim_row(uow, account, context.at, self.interim_sinks)
            detail = f"applied {', '.join(applied)} to account {account.id}"
        else:
            detail = "stale: every field already holds a newer change"
        uow.processed_events.record(event, detail, context.at)
        return Outcome(bool(applied), detail)

    def _keep_account(self, uow: UnitOfWork, record: TenureRecord, context: ChangeContext) -> Account:
        fields = record.account_fields(self.rent_groups, context.at.date())
        account = tenure_master_account(uow, record.tenure_id)
        if account is None:
            command = NewAccount(
                target_type="Tenure",
                target_id=record.tenure_id,
                account_type=AccountType.MASTER,
                payment_reference=record.payment_reference,
                agreement_type=MASTER_AGREEMENT,
                **fields,
            )
            return create_account(uow, command, context, self.interim_sinks)
        return change_account(uow, account, fields, context, self.interim_sinks)


def tenure_master_account(uow: UnitOfWork, tenure_id: UUID) -> Account | None:
    """The tenure's rent account: its active Master, else its latest ended one."""
    masters = uow.accounts.by_target(tenure_id, AccountType.MASTER)
    if not masters:
        return None
    active = [account for account in masters if account.is_active]
    return active[0] if active else masters[-1]
