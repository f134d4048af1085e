"""The finance listener's use case on in-memory fakes: tenure events become accounts, exactly once, in any order."""

from __future__ import annotations

import copy
import random
from typing import Any
from uuid import UUID, uuid4

import pytest

from accounts.domain.account import Account, AccountType, to_wire
from accounts.domain.events import MalformedEvent, parse_envelope
from accounts.domain.payment_reference import has_valid_check_digit
from accounts.service.tenure_events import Outcome
from tests.fixtures.tenures import (
    all_events,
    decided_by_tenure,
    drain,
    expected_account,
    realistic_stories,
    shuffled_with_duplicates,
    story,
)
from tests.unit.conftest import OnFakes


def handle(fakes: OnFakes, event: dict[str, Any]) -> Outcome:
    return fakes.app.tenure_events.handle(parse_envelope(event))


def masters(fakes: OnFakes, tenure_id: str) -> list[Account]:
    return fakes.app.accounts.by_target(UUID(tenure_id), AccountType.MASTER)


def outbox_size(fakes: OnFakes) -> int:
    with fakes.app.uow(read_only=True) as uow:
        return uow.outbox.count_pending()


def resent(event: dict[str, Any]) -> dict[str, Any]:
    """The same change published again as a new event (a new id)."""
    again = copy.deepcopy(event)
    again["id"] = str(uuid4())
    return again


def test_a_tenure_created_gives_its_rent_account(fakes: OnFakes) -> None:
    tale = story(random.Random(1), tenure_type="SEC")
    outcome = handle(fakes, tale.events[0])

    [account] = masters(fakes, tale.tenure_id)
    assert outcome.applied and str(account.id) in outcome.detail
    assert decided_by_tenure(to_wire(account)) == decided_by_tenure(expected_account(tale.tenure))
    assert has_valid_check_digit(account.payment_reference)
    assert account.created_by == "housing.officer@hackney.gov.uk"


def test_a_tenure_created_twice_gives_one_account(fakes: OnFakes) -> None:
    tale = story(random.Random(2))
    handle(fakes, tale.events[0])
    second = handle(fakes, resent(tale.events[0]))

    assert len(masters(fakes, tale.tenure_id)) == 1
    assert not second.applied and second.detail.startswith("stale")
    assert outbox_size(fakes) == 1


def test_a_duplicate_event_changes_nothing(fakes: OnFakes) -> None:
    tale = story(random.Random(3)).moved_to("9 Mare Street, London E8 3RH")
    for event in tale.events:
        handle(fakes, event)
    [before] = masters(fakes, tale.tenure_id)
    events_before, stored_before = outbox_size(fakes), fakes.database.snapshot()

    again = [handle(fakes, event) for event in tale.events]

    assert [outcome.detail for outcome in again] == ["duplicate: already processed"] * 2
    assert masters(fakes, tale.tenure_id) == [before]
    assert outbox_size(fakes) == events_before
    assert fakes.database.snapshot() == stored_before


def test_an_update_before_its_create_is_parked_and_applied_with_it(fakes: OnFakes) -> None:
    tale = story(random.Random(4)).moved_to("9 Mare Street, London E8 3RH")
    create, update = tale.events

    outcome = handle(fakes, update)
    assert not outcome.applied and outcome.detail.startswith("parked")
    assert handle(fakes, update).detail.startswith("parked")  # delivered again while it waits: parked once
    assert fakes.app.accounts.by_target(UUID(tale.tenure_id), None) == []
    with fakes.app.uow(read_only=True) as uow:
        assert not uow.processed_events.seen(UUID(update["id"]))
        kept = uow.tenures.get(UUID(tale.tenure_id))
        assert kept is not None and not kept.complete  # kept, incomplete, until its create comes
        assert [parked.event.id for parked in uow.parked.list(10)] == [UUID(update["id"])]

    handle(fakes, create)  # applies the parked update in the same transaction

    [account] = masters(fakes, tale.tenure_id)
    assert account.tenure is not None and account.tenure.full_address == "9 Mare Street, London E8 3RH"
    with fakes.app.uow(read_only=True) as uow:
        assert uow.parked.count() == 0 and uow.processed_events.seen(UUID(update["id"]))
    assert handle(fakes, update).detail.startswith("duplicate")  # a late redelivery changes nothing


def test_parked_events_are_applied_in_the_order_they_happened(fakes: OnFakes) -> None:
    tale = story(random.Random(8)).moved_to("1 First Street, London E8 1AA").moved_to("2 Second Street, London E8 2BB")
    create, first, second = tale.events
    handle(fakes, second)  # the later move arrives first
    handle(fakes, first)
    handle(fakes, create)

    [account] = masters(fakes, tale.tenure_id)
    assert decided_by_tenure(to_wire(account)) == decided_by_tenure(expected_account(tale.tenure))
    assert account.tenure is not None and account.tenure.full_address == "2 Second Street, London E8 2BB"


def test_shuffled_and_duplicated_events_give_the_in_order_accounts(fakes: OnFakes) -> None:
    stories = realistic_stories(24, seed=11)
    drain(lambda event: handle(fakes, event), shuffled_with_duplicates(all_events(stories), seed=5))

    for tale in stories:
        [account] = masters(fakes, tale.tenure_id)
        assert decided_by_tenure(to_wire(account)) == decided_by_tenure(expected_account(tale.tenure))


def test_a_batch_undoes_an_event_that_fails_alone_and_commits_the_rest(fakes: OnFakes) -> None:
    rng = random.Random(6)
    first, second, orphan = story(rng), story(rng), story(rng).moved_to("1 Well Street, London E9 6NS")
    malformed = copy.deepcopy(first.events[0])
    malformed["id"], malformed["eventData"]["newData"]["householdMembers"] = str(uuid4()), "everyone"
    batch = [first.events[0], orphan.events[1], malformed, second.events[0], first.events[0]]

    results = fakes.app.tenure_events.handle_many([parse_envelope(event) for event in batch])

    assert isinstance(results[0], Outcome) and results[0].applied
    assert isinstance(results[1], Outcome) and results[1].detail.startswith("parked")  # waits for its tenure
    assert isinstance(results[2], MalformedEvent)
    assert isinstance(results[3], Outcome) and results[3].applied
    assert isinstance(results[4], Outcome) and results[4].detail == "duplicate: already processed"
    assert len(masters(fakes, first.tenure_id)) == len(masters(fakes, second.tenure_id)) == 1
    assert masters(fakes, orphan.tenure_id) == []
    with fakes.app.uow(read_only=True) as uow:
        kept = uow.tenures.get(UUID(orphan.tenure_id))
        assert kept is not None and not kept.complete  # kept, incomplete, with the parked event
        assert not uow.processed_events.seen(UUID(orphan.events[1]["id"]))
        assert [parked.event.id for parked in uow.parked.list(10)] == [UUID(orphan.events[1]["id"])]
        assert not uow.processed_events.seen(UUID(malformed["id"]))
        assert uow.processed_events.seen(UUID(first.events[0]["id"]))
        assert uow.outbox.count_pending() == 2


def test_a_batch_gives_the_accounts_one_by_one_handling_gives(fakes: OnFakes) -> None:
    stories = realistic_stories(12, seed=21)
    events = [parse_envelope(event) for event in all_events(stories)]
    results = fakes.app.tenure_events.handle_many(events)

    assert all(isinstance(result, Outcome) and result.applied for result in results)
    for tale in stories:
        [account] = masters(fakes, tale.tenure_id)
        assert decided_by_tenure(to_wire(account)) == decided_by_tenure(expected_account(tale.tenure))


@pytest.mark.parametrize("moment", ["0001-01-01T00:02:00.0+00:09", "9999-12-31T23:59:00-01:00"])
def test_an_event_time_outside_the_years_a_utc_datetime_holds_is_malformed_not_a_crash(moment: str) -> None:
    envelope = {"id": str(uuid4()), "eventType": "TenureCreatedEvent", "dateTime": moment, "entityId": str(uuid4())}

    with pytest.raises(MalformedEvent, match="outside the years"):
        parse_envelope(envelope)
