"""The outbox the relay reads, the dead letters the CLI and the /interim page list and replay, and the kept
reconciliations."""

from __future__ import annotations

import uuid
from datetime import timedelta

from accounts.service.ports import ACCOUNTS_TOPIC
from accounts.service.unit_of_work import ReconciliationRecord
from tests.contract.conftest import UowFactory
from tests.contract.values import CREATED, an_account, an_event


def test_the_outbox_gives_pending_events_in_the_order_written_until_each_is_published(uow: UowFactory) -> None:
    events = [an_event(an_account()) for _ in range(5)]
    with uow() as unit:
        for event in events[:3]:
            unit.outbox.add(ACCOUNTS_TOPIC, event, str(event.entity_id))
        unit.commit()
    with uow() as unit:
        for event in events[3:]:
            unit.outbox.add("another-topic", event, "group")
        unit.commit()

    with uow(read_only=True) as unit:
        assert unit.outbox.count_pending() == 5
        first_two = unit.outbox.pending(2)
        everything = unit.outbox.pending(10)
    assert [m.event_id for m in first_two] == [e.id for e in events[:2]]
    assert [m.event_id for m in everything] == [e.id for e in events]
    assert [m.position for m in everything] == sorted(m.position for m in everything)
    assert everything[0].topic == ACCOUNTS_TOPIC and everything[0].group_id == str(events[0].entity_id)
    assert everything[4].topic == "another-topic" and everything[4].group_id == "group"
    assert all(m.payload.startswith(b"{") and str(m.event_id).encode() in m.payload for m in everything)

    with uow() as unit:
        unit.outbox.mark_published([everything[0].position, everything[2].position], CREATED)
        unit.outbox.mark_published([], CREATED)
        unit.commit()
    with uow(read_only=True) as unit:
        assert unit.outbox.count_pending() == 3
        assert [m.event_id for m in unit.outbox.pending(10)] == [events[1].id, events[3].id, events[4].id]

    with uow() as unit:
        unit.outbox.mark_published([m.position for m in everything], CREATED)  # not committed
    with uow(read_only=True) as unit:
        assert unit.outbox.count_pending() == 3


def test_dead_letters_are_kept_listed_and_marked_replayed(uow: UowFactory) -> None:
    with uow() as unit:
        assert unit.dead_letters.list() == []
        unit.dead_letters.add("tenure-listener", b"{this is not json", "not JSON", 1, CREATED)
        unit.dead_letters.add(
            "tenure-listener",
            b'{"id": "x"}',
            "eventData is missing",
            5,
            CREATED + timedelta(seconds=1),
            event_id="0b4ea0cf-6bd5-4e39-9d2a-6b0d1fdd1e23",
            event_type="TenureUpdatedEvent",
        )
        unit.commit()

    with uow(read_only=True) as unit:
        first, second = unit.dead_letters.list()
    assert (first.source, first.body, first.reason, first.attempts) == (
        "tenure-listener",
        b"{this is not json",
        "not JSON",
        1,
    )
    assert first.event_id is None and first.event_type is None and first.replayed_at is None
    assert first.created_at == CREATED and first.created_at.tzinfo is not None
    assert second.event_id == "0b4ea0cf-6bd5-4e39-9d2a-6b0d1fdd1e23" and second.event_type == "TenureUpdatedEvent"
    assert second.attempts == 5 and second.body == b'{"id": "x"}'
    assert first.id < second.id

    replayed_at = CREATED + timedelta(hours=1)
    with uow() as unit:
        unit.dead_letters.mark_replayed(first.id, replayed_at)
        unit.commit()
    with uow(read_only=True) as unit:
        assert [letter.id for letter in unit.dead_letters.list()] == [second.id]
        everything = unit.dead_letters.list(include_replayed=True)
    assert [letter.id for letter in everything] == [first.id, second.id]
    assert everything[0].replayed_at == replayed_at


def test_dead_letters_are_paged_counted_found_by_id_and_event_and_listed_by_latest_replay(uow: UowFactory) -> None:
    event_id = "5f0c3c1e-0d5e-4c0e-9a57-3f1d2b6c7a10"
    with uow() as unit:
        for number in range(5):
            unit.dead_letters.add(
                "tenure-listener", b"{}", f"reason {number}", 1, CREATED, event_id=event_id if number % 2 else None
            )
        unit.commit()
    with uow(read_only=True) as unit:
        letters = unit.dead_letters.list()
        assert unit.dead_letters.count() == 5 and unit.dead_letters.replayed(10) == []
        assert unit.dead_letters.list(limit=2) == letters[:2]
        assert unit.dead_letters.list(after=letters[1].id, limit=2) == letters[2:4]
        assert unit.dead_letters.list(after=letters[4].id) == []
        assert unit.dead_letters.get(letters[3].id) == letters[3]
        assert unit.dead_letters.get(letters[4].id + 1) is None
        assert unit.dead_letters.by_event_id(event_id) == [letters[1], letters[3]]
        assert unit.dead_letters.by_event_id("no-such-event") == []

    with uow() as unit:
        unit.dead_letters.mark_replayed(letters[3].id, CREATED + timedelta(minutes=1))
        unit.dead_letters.mark_replayed(letters[0].id, CREATED + timedelta(minutes=2))
        unit.commit()
    with uow(read_only=True) as unit:
        assert unit.dead_letters.count() == 3 and unit.dead_letters.count(include_replayed=True) == 5
        assert [letter.id for letter in unit.dead_letters.replayed(10)] == [letters[0].id, letters[3].id]
        assert [letter.id for letter in unit.dead_letters.replayed(1)] == [letters[0].id]
        assert [letter.id for letter in unit.dead_letters.list(limit=2)] == [letters[1].id, letters[2].id]
        assert unit.dead_letters.by_event_id(event_id)[1].replayed_at == CREATED + timedelta(minutes=1)


def test_each_reconciliation_is_kept_and_the_latest_finished_is_found(uow: UowFactory) -> None:
    def record(finished_minutes: int, run_by: str, missing: int) -> ReconciliationRecord:
        return ReconciliationRecord(
            id=uuid.uuid4(),
            started_at=CREATED,
            finished_at=CREATED + timedelta(minutes=finished_minutes),
            run_by=run_by,
            targets=("sync-table", "spreadsheet"),
            expected=40,
            matched=80 - missing,
            missing=missing,
            extra=1,
            changed=2,
            duplicate=0,
            unreadable=0,
            differences=tuple(f"spreadsheet: 10000000{n} missing (expected on Tenant)" for n in range(missing)),
        )

    with uow(read_only=True) as unit:
        assert unit.reconciliations.latest() is None
    earlier, later = record(1, "fran.officer@hackney.gov.uk", 0), record(5, "abi.approver@hackney.gov.uk", 3)
    with uow() as unit:
        unit.reconciliations.add(later)
        unit.reconciliations.add(earlier)  # finished first, written second (two officers at once)
        unit.commit()
    with uow(read_only=True) as unit:
        latest = unit.reconciliations.latest()
    assert latest == later and latest is not None
    assert latest.finished_at.tzinfo is not None and latest.difference_count == 6
