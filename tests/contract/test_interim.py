"""Each tenure account's interim row, its versions, and what each sink is owed of it."""

from __future__ import annotations

import pytest

from accounts.domain.account import Account
from accounts.service.unit_of_work import ConcurrencyConflict
from tests.contract.conftest import Store, UowFactory, writers_take_turns
from tests.contract.values import CREATED, a_reference, a_row, an_account, store


def _accounts(uow: UowFactory, count: int) -> list[Account]:
    made = [an_account() for _ in range(count)]
    for account in made:
        store(uow, account)
    return made


def test_an_interim_row_is_saved_read_back_and_removed_with_its_versions(uow: UowFactory) -> None:
    [account] = _accounts(uow, 1)
    row = a_row(account.payment_reference)
    changed = a_row(account.payment_reference, post_code="E8 1DY", num_bedrooms=None, date_of_birth=None)
    with uow() as unit:
        assert unit.interim.by_account(account.id) is None
        assert unit.interim.remove(account.id) is None
        assert unit.interim.save(account.id, row, CREATED) == 1
        assert unit.interim.by_account(account.id) == row
        unit.commit()
    with uow() as unit:
        assert unit.interim.by_account(account.id) == row
        assert unit.interim.save(account.id, changed, CREATED) == 2
        unit.commit()
    with uow(read_only=True) as unit:
        assert unit.interim.by_account(account.id) == changed
        assert unit.deliveries.rows([row.payment_ref]) == [changed]
        assert unit.deliveries.account_ids() == {row.payment_ref: account.id}
    with uow() as unit:
        assert unit.interim.remove(account.id) == (row.payment_ref, 3)
        assert unit.interim.by_account(account.id) is None
        unit.commit()
    with uow() as unit:
        assert unit.interim.by_account(account.id) is None
        assert unit.deliveries.all() == []
        assert unit.interim.save(account.id, row, CREATED) == 1  # a row made again starts again
        unit.commit()


def test_a_row_whose_payment_reference_changes_keeps_one_row_under_its_new_key(uow: UowFactory) -> None:
    [account] = _accounts(uow, 1)
    old, new = a_row(account.payment_reference), a_row(a_reference())
    with uow() as unit:
        unit.interim.save(account.id, old, CREATED)
        unit.commit()
    with uow() as unit:
        assert unit.interim.save(account.id, new, CREATED) == 2
        unit.commit()
    with uow(read_only=True) as unit:
        assert unit.deliveries.all() == [new]
        assert unit.deliveries.rows([old.payment_ref]) == []
        assert unit.deliveries.account_ids() == {new.payment_ref: account.id}


def test_two_rows_never_share_a_payment_reference(uow: UowFactory) -> None:
    first, second = _accounts(uow, 2)
    shared = first.payment_reference
    with uow() as unit:
        unit.interim.save(first.id, a_row(shared), CREATED)
        unit.commit()
    with pytest.raises(ConcurrencyConflict), uow() as unit:
        unit.interim.save(second.id, a_row(shared), CREATED)
        unit.commit()
    with uow(read_only=True) as unit:
        assert unit.interim.by_account(second.id) is None


def test_a_row_changed_meanwhile_makes_the_commit_a_conflict(uow: UowFactory, backend: Store) -> None:
    writers_take_turns(backend)
    [account] = _accounts(uow, 1)
    with uow() as unit:
        unit.interim.save(account.id, a_row(account.payment_reference), CREATED)
        unit.commit()
    with uow() as unit:
        unit.interim.save(account.id, a_row(account.payment_reference, tenure="Ours"), CREATED)
        with uow() as other:
            other.interim.save(account.id, a_row(account.payment_reference, tenure="Theirs"), CREATED)
            other.commit()
        with pytest.raises(ConcurrencyConflict):
            unit.commit()
    with uow(read_only=True) as unit:
        row = unit.interim.by_account(account.id)
    assert row is not None and row.tenure == "Theirs"


def test_the_rows_are_read_in_payment_reference_order(uow: UowFactory) -> None:
    accounts = _accounts(uow, 4)
    rows = {account.id: a_row(account.payment_reference) for account in accounts}
    with uow() as unit:
        for account_id, row in reversed(rows.items()):
            unit.interim.save(account_id, row, CREATED)
        unit.commit()
    with uow(read_only=True) as unit:
        everything = unit.deliveries.all()
        streamed = list(unit.deliveries.stream())
        some = unit.deliveries.rows([accounts[0].payment_reference, accounts[2].payment_reference, "0000000000"])
    assert everything == streamed == sorted(rows.values(), key=lambda row: row.payment_ref)
    assert sorted(some, key=lambda row: row.payment_ref) == sorted(
        [rows[accounts[0].id], rows[accounts[2].id]], key=lambda row: row.payment_ref
    )


def _pending(uow: UowFactory, sink: str) -> list[tuple[str, int]]:
    with uow(read_only=True) as unit:
        return unit.deliveries.pending(sink, 100)


def test_a_sink_is_owed_the_versions_marked_and_a_mark_only_ever_rises(uow: UowFactory) -> None:
    ref = a_reference()
    with uow() as unit:
        unit.interim.mark_pending(["a", "b"], ref, 3)
        unit.interim.mark_pending([], ref, 9)  # no sink: nothing owed
        unit.commit()
    assert _pending(uow, "a") == _pending(uow, "b") == [(ref, 3)]

    with uow() as unit:
        unit.interim.mark_pending(["a"], ref, 5)
        unit.commit()
    assert _pending(uow, "a") == [(ref, 5)]

    # The reference reused by a row made again, which restarts at version 1: the mark still rises.
    with uow() as unit:
        unit.interim.mark_pending(["a", "b"], ref, 1)
        unit.commit()
    assert _pending(uow, "a") == [(ref, 6)]
    assert _pending(uow, "b") == [(ref, 4)]

    # Marked twice in one unit of work: the later mark comes after the earlier.
    with uow() as unit:
        unit.interim.mark_pending(["b"], ref, 2)
        unit.interim.mark_pending(["b"], ref, 2)
        unit.commit()
    assert _pending(uow, "b") == [(ref, 6)]


def test_a_delivery_clears_only_what_it_delivered_and_not_a_row_changed_since(uow: UowFactory) -> None:
    one, two, three = sorted(a_reference() for _ in range(3))
    with uow() as unit:
        unit.interim.mark_pending(["sink"], one, 2)
        unit.interim.mark_pending(["sink"], two, 1)
        unit.interim.mark_pending(["sink"], three, 1)
        unit.interim.mark_pending(["other"], one, 2)
        unit.commit()
    with uow(read_only=True) as unit:
        assert unit.deliveries.pending("sink", 2) == [(two, 1), (three, 1)]  # oldest version first, then by key
        assert unit.deliveries.has_pending("sink") and unit.deliveries.count_pending("sink") == 3
        assert not unit.deliveries.has_pending("nobody") and unit.deliveries.count_pending("nobody") == 0

    with uow() as unit:
        # `one` changed again (version 2) after version 1 was read for delivery: it stays owed.
        unit.deliveries.clear_pending("sink", [(one, 1), (two, 1), (three, 5)])
        unit.deliveries.clear_pending("sink", [])
        unit.commit()
    assert _pending(uow, "sink") == [(one, 2)]
    assert _pending(uow, "other") == [(one, 2)]
    with uow() as unit:
        unit.deliveries.clear_pending("sink", [(one, 2)])
        unit.commit()
    assert _pending(uow, "sink") == []


def test_a_sink_enabled_for_the_first_time_is_owed_every_row(uow: UowFactory) -> None:
    accounts = _accounts(uow, 3)
    with uow() as unit:
        for account in accounts:
            unit.interim.save(account.id, a_row(account.payment_reference), CREATED)
        unit.interim.save(accounts[0].id, a_row(accounts[0].payment_reference, tenure="Changed"), CREATED)
        unit.commit()
    with uow() as unit:
        assert unit.interim.registered_sinks() == []
        assert unit.deliveries.enable_sinks(["spreadsheet", "database"], CREATED) == ["spreadsheet", "database"]
        unit.commit()
    expected = sorted([(a.payment_reference, 2 if a is accounts[0] else 1) for a in accounts], key=lambda p: p[::-1])
    assert _pending(uow, "spreadsheet") == _pending(uow, "database") == expected

    with uow() as unit:
        unit.deliveries.clear_pending("database", expected)
        assert unit.deliveries.enable_sinks(["database", "spreadsheet", "workbook"], CREATED) == ["workbook"]
        unit.commit()
    with uow(read_only=True) as unit:
        assert unit.interim.registered_sinks() == ["database", "spreadsheet", "workbook"]
    assert _pending(uow, "database") == []
    assert _pending(uow, "workbook") == expected


def test_every_row_can_be_queued_again_for_a_sink(uow: UowFactory) -> None:
    accounts = _accounts(uow, 2)
    stray = a_reference()
    with uow() as unit:
        for account in accounts:
            unit.interim.save(account.id, a_row(account.payment_reference), CREATED)
        unit.interim.mark_pending(["sink"], stray, 7)  # a row since removed
        unit.commit()
    with uow() as unit:
        assert unit.deliveries.queue_everything("sink") == 2
        unit.commit()
    assert _pending(uow, "sink") == sorted((a.payment_reference, 1) for a in accounts)


def test_delivery_notes_change_nothing_owed(uow: UowFactory) -> None:
    ref = a_reference()
    with uow() as unit:
        unit.deliveries.enable_sinks(["sink"], CREATED)
        unit.interim.mark_pending(["sink"], ref, 1)
        unit.commit()
    with uow() as unit:
        unit.deliveries.note_delivery("sink", CREATED, "OSError: the share is offline")
        unit.deliveries.note_delivery("sink", CREATED, None)
        unit.deliveries.note_delivery("never-registered", CREATED, None)
        unit.commit()
    assert _pending(uow, "sink") == [(ref, 1)]
