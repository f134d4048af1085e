"""The unit of work: all of it at commit or none of it, savepoints, serials, and reading ahead."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from accounts.domain.payment_reference import from_serial, has_valid_check_digit
from accounts.domain.tenure import TenureRecord
from accounts.service.ports import ACCOUNTS_TOPIC
from accounts.service.unit_of_work import UnitOfWork
from tests.contract.conftest import Store, UowFactory, writers_take_turns
from tests.contract.values import CREATED, OFFICER, a_row, an_account, an_event, read, store


class Boom(Exception):
    pass


def test_nothing_written_in_a_unit_of_work_that_is_not_committed_survives(uow: UowFactory) -> None:
    account = an_account()
    with uow() as unit:
        unit.accounts.add(account, Decimal("0.00"))
        unit.outbox.add(ACCOUNTS_TOPIC, an_event(account), str(account.id))
        unit.payment_references.next_serial()
        unit.tenures.save(TenureRecord(account.target_id, {"a": 1}), CREATED)
        unit.interim.save(account.id, a_row(account.payment_reference), CREATED)
    assert read(uow, account.id) is None
    with uow(read_only=True) as unit:
        assert unit.outbox.count_pending() == 0
        assert unit.tenures.get(account.target_id) is None
        assert unit.interim.by_account(account.id) is None


def test_what_a_unit_of_work_has_not_committed_no_other_sees_and_it_sees_itself(uow: UowFactory) -> None:
    account = an_account()
    with uow() as unit:
        unit.accounts.add(account, Decimal("0.00"))
        assert unit.accounts.get(account.id) == account
        assert unit.accounts.by_target(account.target_id, None) == [account]
        assert unit.accounts.payment_reference_taken(account.payment_reference)
        with uow(read_only=True) as other:
            assert other.accounts.get(account.id) is None
            assert other.accounts.by_target(account.target_id, None) == []
        unit.commit()
    assert read(uow, account.id) == account


def test_the_account_and_its_event_are_committed_together(uow: UowFactory) -> None:
    account = an_account()
    event = an_event(account)
    with uow() as unit:
        unit.accounts.add(account, Decimal("0.00"))
        unit.outbox.add(ACCOUNTS_TOPIC, event, str(account.id))
        unit.commit()
    with uow(read_only=True) as unit:
        [message] = unit.outbox.pending(10)
        assert unit.outbox.count_pending() == 1
    assert message.event_id == event.id
    assert message.group_id == str(account.id)
    assert message.topic == ACCOUNTS_TOPIC
    assert b'"eventType":"AccountCreatedEvent"' in message.payload


def test_a_savepoint_undoes_only_what_was_done_inside_it(uow: UowFactory) -> None:
    kept, undone = an_account(), an_account()
    changed = kept.changed(OFFICER, CREATED + timedelta(hours=1), account_balance=Decimal("-3.00"))
    tenure = TenureRecord(uuid.uuid4(), {"kept": True})
    event_kept, event_undone = an_event(kept), an_event(undone)
    with uow() as unit:
        unit.accounts.add(kept, Decimal("0.00"))
        unit.outbox.add(ACCOUNTS_TOPIC, event_kept, str(kept.id))
        unit.tenures.save(tenure, CREATED)
        serial = unit.payment_references.next_serial()
        with pytest.raises(Boom), unit.savepoint():
            unit.accounts.add(undone, Decimal("0.00"))
            unit.accounts.update(changed, kept.version, Decimal("3.00"))
            unit.outbox.add(ACCOUNTS_TOPIC, event_undone, str(undone.id))
            unit.tenures.save(TenureRecord(tenure.tenure_id, {"kept": False}), CREATED)
            unit.processed_events.record(event_undone, "undone", CREATED)
            unit.interim.save(undone.id, a_row(undone.payment_reference), CREATED)
            assert unit.payment_references.next_serial() == serial + 1
            raise Boom
        assert unit.accounts.get(undone.id) is None
        assert unit.accounts.get(kept.id) == kept
        assert unit.payment_references.next_serial() == serial + 1  # the undone serial, handed out again
        assert not unit.processed_events.seen(event_undone.id)
        unit.commit()

    assert read(uow, kept.id) == kept and read(uow, undone.id) is None
    with uow(read_only=True) as unit:
        assert [m.event_id for m in unit.outbox.pending(10)] == [event_kept.id]
        stored = unit.tenures.get(tenure.tenure_id)
        assert stored is not None and stored.data == {"kept": True}
        assert not unit.processed_events.seen(event_undone.id)
        assert unit.interim.by_account(undone.id) is None
    with uow() as unit:
        assert unit.payment_references.next_serial() == serial + 2


def test_a_savepoint_left_without_an_error_keeps_its_changes(uow: UowFactory) -> None:
    first, second = an_account(), an_account()
    with uow() as unit:
        unit.accounts.add(first, Decimal("0.00"))
        with unit.savepoint():
            unit.accounts.add(second, Decimal("0.00"))
        with pytest.raises(Boom), unit.savepoint():
            raise Boom
        unit.commit()
    assert read(uow, first.id) == first and read(uow, second.id) == second


def test_allocation_serials_are_consecutive_and_never_handed_out_twice_even_at_once(uow: UowFactory) -> None:
    serials: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(12)

    def allocate() -> None:
        barrier.wait()
        for _ in range(5):
            with uow() as unit:
                serial = unit.payment_references.next_serial()
                unit.commit()
            with lock:
                serials.append(serial)

    threads = [threading.Thread(target=allocate) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(serials) == 60 == len(set(serials))
    assert sorted(serials) == list(range(min(serials), min(serials) + 60))
    assert all(has_valid_check_digit(from_serial(serial)) for serial in serials)


def test_serials_in_one_unit_of_work_are_consecutive(uow: UowFactory) -> None:
    with uow() as unit:
        first = unit.payment_references.next_serial()
        assert [unit.payment_references.next_serial() for _ in range(3)] == [first + 1, first + 2, first + 3]
        unit.commit()
    with uow() as unit:
        assert unit.payment_references.next_serial() == first + 4


def test_a_serial_taken_by_a_rolled_back_transaction_is_given_again(uow: UowFactory) -> None:
    with uow() as unit:
        abandoned = unit.payment_references.next_serial()
    with uow() as unit:
        assert unit.payment_references.next_serial() == abandoned
        unit.commit()


def test_a_serial_first_taken_in_a_savepoint_undone_is_given_again(uow: UowFactory, backend: Store) -> None:
    writers_take_turns(backend)
    with uow() as unit:
        with uow() as other:  # serials handed out after this unit of work began
            before = other.payment_references.next_serial()
            other.commit()
        with pytest.raises(Boom), unit.savepoint():
            taken = unit.payment_references.next_serial()
            raise Boom
        assert taken == before + 1
        assert unit.payment_references.next_serial() == taken
        unit.commit()
    with uow() as unit:
        assert unit.payment_references.next_serial() == taken + 1


def _what_a_batch_reads(unit: UnitOfWork, event_ids: list[uuid.UUID], tenure_ids: list[uuid.UUID]) -> object:
    return (
        [unit.processed_events.seen(event_id) for event_id in event_ids],
        [unit.tenures.get(tenure_id) for tenure_id in tenure_ids],
        [unit.accounts.by_target(tenure_id, None) for tenure_id in tenure_ids],
        [[unit.interim.by_account(a.id) for a in unit.accounts.by_target(t, None)] for t in tenure_ids],
        unit.interim.registered_sinks(),
        unit.target_types.all(),
    )


def test_reading_ahead_changes_no_result(uow: UowFactory) -> None:
    accounts = [an_account() for _ in range(3)]
    events = [an_event(account) for account in accounts]
    with uow() as unit:
        for account in accounts:
            unit.accounts.add(account, Decimal("0.00"))
            unit.tenures.save(TenureRecord(account.target_id, {"n": account.payment_reference}, {}, True), CREATED)
            unit.interim.save(account.id, a_row(account.payment_reference), CREATED)
        unit.processed_events.record(events[0], "applied", CREATED)
        unit.deliveries.enable_sinks(["spreadsheet"], CREATED)
        unit.commit()
    event_ids = [event.id for event in events] + [uuid.uuid4()]
    tenure_ids = [account.target_id for account in accounts] + [uuid.uuid4()]

    with uow() as unit:
        plain = _what_a_batch_reads(unit, event_ids, tenure_ids)
    with uow() as unit:
        unit.read_ahead(event_ids, tenure_ids)
        ahead = _what_a_batch_reads(unit, event_ids, tenure_ids)
    with uow() as unit:
        unit.read_ahead([], [])
        unit.read_ahead(event_ids[:1], tenure_ids[:1])
        partly = _what_a_batch_reads(unit, event_ids, tenure_ids)

    assert plain == ahead == partly
    assert plain[0] == [True, False, False, False]  # type: ignore[index]


def test_what_was_read_ahead_is_changed_and_stored_as_if_it_was_not(uow: UowFactory) -> None:
    account = an_account()
    store(uow, account)
    changed = account.changed(OFFICER, CREATED + timedelta(hours=1), account_balance=Decimal("-9.00"))
    with uow() as unit:
        unit.read_ahead([], [account.target_id])
        unit.accounts.update(changed, account.version, Decimal("9.00"))
        unit.commit()
    assert read(uow, account.id) == changed
