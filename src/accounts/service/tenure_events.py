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

from accounts.domain.account import Account, AccountType, Actor, Change
from accounts.domain.errors import ValidationProblem
from accounts.domain.events import (
    TENURE_CREATED,
    TENURE_EVENT_TYPES,
    TENURE_UPDATED,
    EventEnvelope,
    MalformedEvent,
)
from accounts.domain.tenure import RentGroupMap, TenureRecord, parse_date
from accounts.service.accounts import Clock, NewAccount, change_account, create_account, utc_now
from accounts.service.changes import sync_interim_row
from accounts.service.log_context import about
from accounts.service.ports import TenureSource, TransientError
from accounts.service.unit_of_work import UnitOfWork, in_transaction

log = logging.getLogger(__name__)

LISTENER_NAME = "finance-listener"
MASTER_AGREEMENT = "Master Account"


class RetryLater(Exception):
    """The event cannot be applied yet (its tenure has not been seen); it is retried with backoff."""


@dataclass(frozen=True)
class Outcome:
    applied: bool
    detail: str
    account_id: UUID | None = None  # the tenure's account, when the event reached it


def changed_fields(event: EventEnvelope) -> dict[str, Any]:
    """The tenure fields an event sets, checked for shape."""
    new_data = event.new_data
    if event.event_type == TENURE_CREATED:
        if not new_data:
            raise MalformedEvent("TenureCreatedEvent has no eventData.newData")
        own_id = new_data.get("id")
        if own_id is not None and str(own_id).lower() != str(event.entity_id):
            raise MalformedEvent(f"eventData.newData.id {str(own_id)[:64]!r} is not the entityId {event.entity_id}")
        return check_tenure_fields(new_data, "eventData.newData")
    if event.event_type == TENURE_UPDATED:
        if new_data is None:
            raise MalformedEvent("TenureUpdatedEvent has no eventData.newData")
        return check_tenure_fields(new_data, "eventData.newData")
    members = (new_data or {}).get("householdMembers")
    if not isinstance(members, list):
        raise MalformedEvent(f"{event.event_type} needs eventData.newData.householdMembers as a list of objects")
    return check_tenure_fields({"householdMembers": members}, "eventData.newData")


def check_tenure_fields(fields: dict[str, Any], where: str) -> dict[str, Any]:
    """Refuse values of the wrong type in the fields the finance side reads; others pass as they are.

    A wrong type can never be mended by retrying, so it is a MalformedEvent (dead-lettered
    with this reason) rather than a failure deep inside the account change.
    """
    for name in ("paymentReference",):
        if fields.get(name) is not None and not isinstance(fields[name], str):
            raise MalformedEvent(f"{where}.{name} must be a string or null")
    for name in ("startOfTenureDate", "endOfTenureDate"):
        if name in fields:
            try:
                parse_date(fields[name], name)
            except ValidationProblem:
                raise MalformedEvent(f"{where}.{name} is not an ISO-8601 date: {str(fields[name])[:64]!r}") from None
    tenure_type = fields.get("tenureType")
    if tenure_type is not None and not (isinstance(tenure_type, dict) and isinstance(tenure_type.get("code", ""), str)):
        raise MalformedEvent(f"{where}.tenureType must be an object with a string code")
    asset = fields.get("tenuredAsset")
    if asset is not None and not isinstance(asset, dict):
        raise MalformedEvent(f"{where}.tenuredAsset must be an object")
    if "householdMembers" in fields:
        members = fields["householdMembers"]
        if members is None:
            members = []
        if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
            raise MalformedEvent(f"{where}.householdMembers must be a list of objects")
        for index, member in enumerate(members):
            if member.get("isResponsible") is True and not _is_uuid(member.get("id")):
                raise MalformedEvent(f"{where}.householdMembers[{index}].id must be a UUID (a responsible member)")
    return fields


def _is_uuid(value: Any) -> bool:
    try:
        UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


@dataclass
class TenureEventHandler:
    uow_factory: Callable[..., UnitOfWork]
    rent_groups: RentGroupMap
    tenure_source: TenureSource | None = None
    clock: Clock = utc_now
    attempts: int = 5

    def handle(self, event: EventEnvelope) -> Outcome:
        if event.event_type not in TENURE_EVENT_TYPES:
            log.info("skipping event %s of unknown type %s", event.id, event.event_type)
            return Outcome(False, f"unknown event type {event.event_type}: skipped")
        fields = changed_fields(event)
        fetched = self._fetch_if_unseen(event)
        return in_transaction(
            self.uow_factory,
            lambda uow: self._apply(uow, event, fields, fetched, may_park=True),
            self.attempts,
            f"event {event.id}",
        )

    def handle_many(self, events: Sequence[EventEnvelope]) -> list[Outcome | Exception]:
        """Apply several events in one transaction, each in a savepoint of its own.

        What the events need is read ahead in a few queries, and their writes go to the
        database together at commit (as every unit of work's do). An event that
        fails is undone alone and its error stands in its place in the result; the caller
        gives it the one-by-one treatment (`handle`, which also asks the Tenure API about
        unseen tenures). The others commit together, each with its processed-event record,
        so exactly once holds as for `handle`. An error raised here (the commit, the
        database, a race lost at commit) means nothing was applied.
        """
        results: list[Outcome | Exception] = []
        with self.uow_factory() as uow:
            handled = [event for event in events if event.event_type in TENURE_EVENT_TYPES]
            uow.read_ahead([event.id for event in handled], [event.entity_id for event in handled])
            for event in events:
                with about(event_id=event.id, correlation_id=event.correlation_id):
                    results.append(self._apply_in_savepoint(uow, event))
            uow.commit()
        return results

    def _apply_in_savepoint(self, uow: UnitOfWork, event: EventEnvelope) -> Outcome | Exception:
        """One event of a batch: its outcome, or its error (its changes undone alone)."""
        if event.event_type not in TENURE_EVENT_TYPES:
            log.info("skipping event %s of unknown type %s", event.id, event.event_type)
            return Outcome(False, f"unknown event type {event.event_type}: skipped")
        try:
            fields = changed_fields(event)
            with uow.savepoint():
                # With a Tenure API to ask, an event about an unseen tenure goes one by one (`handle`
                # asks it) before it may be parked.
                return self._apply(uow, event, fields, None, may_park=self.tenure_source is None)
        except TransientError:
            raise  # the database itself: the whole batch goes one by one
        except Exception as error:
            return error

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
        tenure = self.tenure_source.fetch(event.entity_id)
        if tenure is None:
            log.info("the Tenure API does not know tenure %s either; event %s waits", event.entity_id, event.id)
            return None
        if str(tenure.get("id", "")).lower() != str(event.entity_id):
            raise TransientError(f"the Tenure API answered tenure {str(tenure.get('id'))[:64]!r} for {event.entity_id}")
        try:
            return check_tenure_fields(tenure, "the Tenure API's tenure")
        except MalformedEvent as error:
            raise TransientError(str(error)) from None

    def _apply(
        self,
        uow: UnitOfWork,
        event: EventEnvelope,
        fields: dict[str, Any],
        fetched: dict[str, Any] | None,
        *,
        may_park: bool,
    ) -> Outcome:
        if uow.processed_events.seen(event.id):
            return Outcome(False, "duplicate: already processed")
        record = uow.tenures.get(event.entity_id, for_update=True) or TenureRecord(event.entity_id)
        applied: list[str] = []
        if fetched is not None:
            # The tenure as it is now, stamped with the event's time: older events then
            # change nothing, and every later event still applies on top.
            applied += record.merge(fetched, event.date_time, whole=True)
        applied += record.merge(fields, event.date_time, whole=event.event_type == TENURE_CREATED)
        if not record.complete:
            reason = f"tenure {event.entity_id} has not been seen yet (no TenureCreatedEvent)"
            if not may_park or event.event_type == TENURE_CREATED:  # a create that does not make it whole is wrong
                raise RetryLater(reason)
            # Kept, however long its create takes, and applied with it: never dead-lettered for waiting.
            # The copy is kept too, incomplete: its row is what two workers, one parking an update and one
            # applying the create, meet on (a lock, or a key inserted twice), so neither misses the other.
            at = self.clock()
            uow.tenures.save(record, at)
            uow.parked.park(event, reason, at)
            return Outcome(False, f"parked: {reason}")
        at = self.clock()
        # Events that came before the tenure's create, applied now in the order they happened: the
        # copy's per-field change times make the result what in-order delivery would have given.
        waiting = uow.parked.for_tenure(event.entity_id)
        for parked in waiting:
            earlier = parked.event
            applied += record.merge(
                changed_fields(earlier), earlier.date_time, whole=earlier.event_type == TENURE_CREATED
            )
            uow.processed_events.record(earlier, f"applied with the tenure's create {event.id} (was parked)", at)
        if waiting:
            uow.parked.remove(event.entity_id, [parked.event.id for parked in waiting])
        context = Change(
            actor=Actor(event.user.name or LISTENER_NAME, event.user.email),
            correlation_id=event.correlation_id,
            at=at,
        )
        uow.tenures.save(record, context.at)
        if applied:
            account, _ = self._keep_account(uow, record, context)
            # The tenure copy changed (a property reference, a date of birth): the row may have, whether or
            # not the account did (the commit syncs it again only when the account's own sources changed).
            sync_interim_row(uow, account, context.at)
            detail = f"applied {', '.join(applied)} to account {account.id}"
            account_id: UUID | None = account.id
        else:
            detail = "stale: every field already holds a newer change"
            account_id = None
        uow.processed_events.record(event, detail, context.at)
        return Outcome(bool(applied), detail, account_id)

    def _keep_account(self, uow: UnitOfWork, record: TenureRecord, context: Change) -> tuple[Account, bool]:
        """The tenure's account as the copy makes it, and whether it was created or changed."""
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
            return create_account(uow, command, context), True
        changed = change_account(uow, account, fields, context)
        return changed, changed is not account


def tenure_master_account(uow: UnitOfWork, tenure_id: UUID) -> Account | None:
    """The tenure's rent account: its active Master, else its latest ended one."""
    masters = uow.accounts.by_target(tenure_id, AccountType.MASTER)
    if not masters:
        return None
    active = [account for account in masters if account.is_active]
    return active[0] if active else masters[-1]
