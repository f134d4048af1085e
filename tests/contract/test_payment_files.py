"""What a payment file's batch reads at once, and suspense items in storage, on every implementation.

Accounts by many payment references in one read; transactions by many ids in one read; suspense
items come back exactly, one per bank reference, versions guarded, listed oldest payment first.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from accounts.domain.ledger import PostingRequest, Transaction, TransactionType, post
from accounts.domain.payment_file import PaymentLine, SuspenseReason, payment_transaction_id
from accounts.domain.polarity import Polarity
from accounts.domain.suspense import SuspenseItem, SuspenseStatus
from accounts.service.unit_of_work import ConcurrencyConflict, SuspenseCursor
from tests.contract.conftest import Store, UowFactory, writers_take_turns
from tests.contract.values import CREATED, OFFICER, a_reference, an_account, store

LATER = CREATED + timedelta(hours=2)


def test_accounts_are_found_by_many_payment_references_at_once(uow: UowFactory) -> None:
    first, second = an_account(), an_account()
    store(uow, first)
    store(uow, second)
    absent = a_reference()

    with uow() as unit:
        found = unit.accounts.by_payment_references([first.payment_reference, absent, second.payment_reference])
        held = unit.accounts.by_payment_references([second.payment_reference], for_update=True)

    assert found == {first.payment_reference: first, second.payment_reference: second}
    assert held == {second.payment_reference: second}


def test_by_payment_references_sees_what_this_unit_of_work_changed(uow: UowFactory) -> None:
    account, added = an_account(), an_account()
    store(uow, account)
    moved_to = a_reference()

    with uow() as unit:
        unit.accounts.by_payment_references([account.payment_reference])
        unit.accounts.add(added, Decimal("0.00"))
        changed = replace(account, payment_reference=moved_to, version=2)
        unit.accounts.update(changed, 1, Decimal("0.00"))
        found = unit.accounts.by_payment_references(
            [account.payment_reference, moved_to, added.payment_reference], for_update=True
        )

    assert found == {moved_to: changed, added.payment_reference: added}


def test_a_change_made_from_held_accounts_never_loses_one_committed_after_they_were_first_read(
    uow: UowFactory, backend: Store
) -> None:
    """Held (PostgreSQL: locked, read again if changed), the latest version is changed; or (the fakes' snapshot)
    the commit is a conflict, retried. Either way the change committed meanwhile stays."""
    writers_take_turns(backend)
    account = an_account()
    store(uow, account)
    ref = account.payment_reference

    with uow() as unit:
        unit.accounts.by_payment_references([ref])
        with uow() as other:
            other.accounts.update(replace(account, agreement_type="Changed meanwhile", version=2), 1, Decimal("0"))
            other.commit()
        held = unit.accounts.by_payment_references([ref], for_update=True)[ref]
        try:
            paid = replace(held, account_balance=Decimal("10.00"), version=held.version + 1)
            unit.accounts.update(paid, held.version, Decimal("-10.00"))
            unit.commit()
        except ConcurrencyConflict:
            pass

    with uow(read_only=True) as unit:
        stored = unit.accounts.get(account.id)
    assert stored is not None and stored.agreement_type == "Changed meanwhile"
    if backend.name == "postgresql":
        assert (stored.account_balance, stored.version) == (Decimal("10.00"), 3)


def test_by_payment_references_of_nothing_is_nothing(uow: UowFactory) -> None:
    with uow(read_only=True) as unit:
        assert unit.accounts.by_payment_references([]) == {}
        assert unit.transactions.get_many([]) == {}
        assert unit.suspense.by_references([]) == {}


def test_transactions_are_found_by_many_ids_at_once_posted_before_or_here(uow: UowFactory) -> None:
    account = an_account()
    store(uow, account)

    def a_payment(reference: str) -> Transaction:
        request = PostingRequest(
            payment_transaction_id(reference), TransactionType.PAYMENT, Decimal("5.00"), date(2026, 4, 6)
        )
        return post(
            request,
            account_id=account.id,
            polarity=Polarity.NEGATIVE_IS_ARREARS,
            balance_before=Decimal("0.00"),
            created_by=OFFICER.label,
            posted_at=CREATED,
        )

    before, here = a_payment("PP-1"), a_payment("PP-2")
    with uow() as unit:
        unit.transactions.add(before)
        unit.commit()

    with uow() as unit:
        unit.transactions.add(here)
        found = unit.transactions.get_many([payment_transaction_id(r) for r in ("PP-1", "PP-2", "PP-3")])

    assert found == {before.id: before, here.id: here}


def an_item(reference: str = "BACS-1", day: date = date(2026, 4, 6), **overrides: object) -> SuspenseItem:
    payment = PaymentLine(7, " 123 456 ", Decimal("12.34"), day, "Bank transfer", reference)
    item = SuspenseItem.set_aside(payment, SuspenseReason.NO_ACCOUNT, CREATED)
    return replace(item, **overrides) if overrides else item


def add_items(uow: UowFactory, *items: SuspenseItem) -> None:
    with uow() as unit:
        for item in items:
            unit.suspense.add(item)
        unit.commit()


def test_a_suspense_item_comes_back_exactly_by_id_and_by_reference(uow: UowFactory) -> None:
    item = an_item()
    add_items(uow, item)

    with uow(read_only=True) as unit:
        assert unit.suspense.get(item.id) == item
        assert unit.suspense.get(uuid.uuid4()) is None
        assert unit.suspense.by_references(["BACS-1", "BACS-0"]) == {"BACS-1": item}
        read = unit.suspense.get(item.id)
    assert read is not None and read.created_at.tzinfo is not None and read.payment_reference == " 123 456 "


def test_a_resolved_item_keeps_who_proposed_who_approved_and_what_was_posted(uow: UowFactory) -> None:
    item = an_item()
    add_items(uow, item)
    account_id, transaction_id = uuid.uuid4(), uuid.uuid4()
    proposed = item.propose(account_id, OFFICER.label)
    resolved = proposed.approved("manager@hackney.gov.uk", LATER, transaction_id)

    with uow() as unit:
        unit.suspense.update(proposed, item.version)
        unit.commit()
    with uow() as unit:
        unit.suspense.update(resolved, proposed.version)
        unit.commit()

    with uow(read_only=True) as unit:
        stored = unit.suspense.get(item.id)
    assert stored == resolved
    assert stored is not None and stored.status is SuspenseStatus.RESOLVED and stored.resolved_at == LATER
    assert (stored.proposed_account_id, stored.transaction_id) == (account_id, transaction_id)


def test_one_item_per_bank_reference_is_all_storage_allows(uow: UowFactory) -> None:
    add_items(uow, an_item("BACS-1"))

    with pytest.raises(ConcurrencyConflict), uow() as unit:
        unit.suspense.add(replace(an_item("BACS-1"), id=uuid.uuid4()))
        unit.commit()
    with pytest.raises(ConcurrencyConflict), uow() as unit:
        unit.suspense.add(an_item("BACS-1"))
        unit.commit()


def test_an_update_made_from_a_stale_read_is_refused(uow: UowFactory) -> None:
    item = an_item()
    add_items(uow, item)
    with uow() as unit:
        unit.suspense.update(item.propose(uuid.uuid4(), OFFICER.label), item.version)
        unit.commit()

    with pytest.raises(ConcurrencyConflict), uow() as unit:
        unit.suspense.update(item.propose(uuid.uuid4(), "someone.else"), item.version)
        unit.commit()


def test_an_update_committed_meanwhile_makes_the_commit_a_conflict(uow: UowFactory, backend: Store) -> None:
    writers_take_turns(backend)
    item = an_item()
    add_items(uow, item)

    with pytest.raises(ConcurrencyConflict), uow() as first:
        read = first.suspense.get(item.id)
        assert read is not None
        with uow() as second:
            second.suspense.update(item.propose(uuid.uuid4(), "someone.else"), item.version)
            second.commit()
        first.suspense.update(read.propose(uuid.uuid4(), OFFICER.label), read.version)
        first.commit()


def test_items_are_listed_oldest_payment_first_then_by_reference_a_page_at_a_time(uow: UowFactory) -> None:
    items = [
        an_item("R-C", date(2026, 4, 9)),
        an_item("R-B", date(2026, 4, 6)),
        an_item("R-A", date(2026, 4, 6)),
        an_item("R-D", date(2026, 4, 10)),
    ]
    resolved = an_item("R-0", date(2026, 4, 1)).propose(uuid.uuid4(), "a").approved("b", LATER, uuid.uuid4())
    add_items(uow, *items, resolved)

    with uow(read_only=True) as unit:
        first = unit.suspense.page(include_resolved=False, after=None, limit=2)
        rest = unit.suspense.page(include_resolved=False, after=SuspenseCursor(date(2026, 4, 6), "R-B"), limit=5)
        everything = unit.suspense.page(include_resolved=True, after=None, limit=10)

    assert [item.reference for item in first] == ["R-A", "R-B"]
    assert [item.reference for item in rest] == ["R-C", "R-D"]
    assert [item.reference for item in everything] == ["R-0", "R-A", "R-B", "R-C", "R-D"]


def test_a_savepoint_undoes_an_item_added_inside_it(uow: UowFactory) -> None:
    class Boom(Exception):
        pass

    with uow() as unit:
        with pytest.raises(Boom), unit.savepoint():
            unit.suspense.add(an_item("R-UNDONE"))
            raise Boom
        unit.suspense.add(an_item("R-KEPT"))
        unit.commit()

    with uow(read_only=True) as unit:
        assert set(unit.suspense.by_references(["R-UNDONE", "R-KEPT"])) == {"R-KEPT"}


def test_created_at_is_kept_to_the_microsecond_in_utc(uow: UowFactory) -> None:
    item = an_item(created_at=datetime(2026, 4, 6, 23, 59, 59, 999999, tzinfo=UTC))
    add_items(uow, item)

    with uow(read_only=True) as unit:
        assert unit.suspense.get(item.id) == item
