"""Processed events (exactly once) and the listener's tenure copies in storage."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from accounts.domain.tenure import TenureRecord
from accounts.service.unit_of_work import ConcurrencyConflict
from tests.contract.conftest import Store, UowFactory, writers_take_turns
from tests.contract.values import CREATED, an_event


def test_an_event_recorded_is_seen_from_then_on_and_only_once_committed(uow: UowFactory) -> None:
    event, other = an_event(), an_event()
    with uow() as unit:
        assert not unit.processed_events.seen(event.id)
        unit.processed_events.record(event, "applied", CREATED)
        assert unit.processed_events.seen(event.id)
        with uow(read_only=True) as elsewhere:
            assert not elsewhere.processed_events.seen(event.id)
        unit.commit()
    with uow(read_only=True) as unit:
        assert unit.processed_events.seen(event.id)
        assert not unit.processed_events.seen(other.id)


def test_an_event_is_recorded_as_processed_once_only(uow: UowFactory) -> None:
    event = an_event()
    with uow() as unit:
        unit.processed_events.record(event, "applied", CREATED)
        unit.commit()
    with pytest.raises(ConcurrencyConflict), uow() as unit:
        unit.processed_events.record(event, "applied again", CREATED)
        unit.commit()


def test_two_transactions_processing_one_event_at_once_commit_it_once(uow: UowFactory, backend: Store) -> None:
    writers_take_turns(backend)
    event = an_event()
    with uow() as first:
        assert not first.processed_events.seen(event.id)
        first.processed_events.record(event, "first", CREATED)
        with uow() as second:
            assert not second.processed_events.seen(event.id)
            second.processed_events.record(event, "second", CREATED)
            second.commit()
        with pytest.raises(ConcurrencyConflict):
            first.commit()
    with uow(read_only=True) as unit:
        assert unit.processed_events.seen(event.id)


def test_a_tenure_copy_is_saved_and_read_back_then_updated(uow: UowFactory) -> None:
    tenure_id = uuid.uuid4()
    data = {
        "paymentReference": "1902345678",
        "startOfTenureDate": "2015-03-02",
        "householdMembers": [{"id": str(uuid.uuid4()), "fullName": "Zoë O'Brien-Nowak", "isResponsible": True}],
        "tenuredAsset": {"fullAddress": "1 Mare Street, Hackney, London E8 3RH", "propertyReference": "00012345"},
    }
    stamps = {"paymentReference": "2026-01-05T09:30:15.123456Z", "householdMembers": "2026-01-05T09:30:16.000000Z"}
    with uow() as unit:
        assert unit.tenures.get(tenure_id) is None
        unit.tenures.save(TenureRecord(tenure_id, data, stamps, complete=False), CREATED)
        unit.commit()

    with uow() as unit:
        stored = unit.tenures.get(tenure_id, for_update=True)
        assert stored == TenureRecord(tenure_id, data, stamps, complete=False)
        assert stored is not None
        stored.merge({"endOfTenureDate": "2026-01-31"}, CREATED + timedelta(days=1), whole=True)
        unit.tenures.save(stored, CREATED + timedelta(days=1))
        unit.commit()

    with uow(read_only=True) as unit:
        updated = unit.tenures.get(tenure_id)
    assert updated is not None and updated.complete
    assert updated.data == {**data, "endOfTenureDate": "2026-01-31"}
    assert updated.stamps["endOfTenureDate"] == "2026-01-06T09:30:15.123456Z"
    assert updated.stamps["paymentReference"] == stamps["paymentReference"]


def test_a_tenure_copy_read_and_changed_is_not_stored_until_saved(uow: UowFactory) -> None:
    tenure_id = uuid.uuid4()
    with uow() as unit:
        unit.tenures.save(TenureRecord(tenure_id, {"a": 1}, {}, True), CREATED)
        copy = unit.tenures.get(tenure_id)
        assert copy is not None
        copy.data["a"] = 2
        again = unit.tenures.get(tenure_id)
        assert again is not None and again.data == {"a": 1}
        unit.commit()
    with uow() as unit:
        copy = unit.tenures.get(tenure_id)
        assert copy is not None
        copy.data["a"] = 3
        unit.commit()
    with uow(read_only=True) as unit:
        stored = unit.tenures.get(tenure_id)
    assert stored is not None and stored.data == {"a": 1}
