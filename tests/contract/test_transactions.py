"""The ledger in storage: a transaction comes back exactly, is posted once, reversed once, and listed in statement order."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from accounts.domain.account import Account
from accounts.domain.ledger import (
    Direction,
    PostingRequest,
    Transaction,
    TransactionType,
    opening_balance,
    post,
    reverse,
)
from accounts.domain.polarity import Polarity
from accounts.service.unit_of_work import ConcurrencyConflict, LedgerDifference, StatementCursor
from tests.contract.conftest import Store, UowFactory, writers_take_turns
from tests.contract.values import CREATED, OFFICER, an_account, store


class Boom(Exception):
    pass


def a_posting(
    account: Account,
    kind: TransactionType = TransactionType.CHARGE,
    amount: str = "100.00",
    day: date = date(2026, 1, 12),
    *,
    balance_before: str = "0.00",
    polarity: Polarity = Polarity.NEGATIVE_IS_ARREARS,
    direction: Direction | None = None,
    description: str | None = None,
    reference: str | None = None,
    posted_at: datetime = CREATED,
) -> Transaction:
    request = PostingRequest(uuid.uuid4(), kind, Decimal(amount), day, direction, description, reference)
    return post(
        request,
        account_id=account.id,
        polarity=polarity,
        balance_before=Decimal(balance_before),
        created_by=OFFICER.label,
        posted_at=posted_at,
    )


def a_reversal(original: Transaction, balance_before: str = "0.00") -> Transaction:
    return reverse(
        original,
        reversal_id=uuid.uuid4(),
        reason="Posted to the wrong account",
        polarity=Polarity.NEGATIVE_IS_ARREARS,
        balance_before=Decimal(balance_before),
        created_by=OFFICER.label,
        posted_at=CREATED + timedelta(hours=1),
        transaction_date=original.transaction_date,
    )


def post_all(uow: UowFactory, *transactions: Transaction) -> None:
    with uow() as unit:
        for transaction in transactions:
            unit.transactions.add(transaction)
        unit.commit()


def stored_account(uow: UowFactory, **overrides: object) -> Account:
    account = an_account(**overrides)
    store(uow, account)
    return account


def test_a_transaction_stored_is_read_back_exactly(uow: UowFactory) -> None:
    account = stored_account(uow)
    posted_at = datetime(2026, 3, 30, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=1)))
    charge = a_posting(
        account,
        TransactionType.ADJUSTMENT,
        "999999999999.99",
        date(2025, 4, 6),  # a Sunday: the last week (53rd) of the 2024/25 rent year
        direction=Direction.REDUCE_OWED,
        description="Zoë's “opening” adjustment",
        reference="BACS/ÅØ-0001",
        posted_at=posted_at,
        balance_before="-999999999999.99",
    )
    small = a_posting(account, TransactionType.PAYMENT, "0.01", date(2025, 4, 7), balance_before="0.00")
    post_all(uow, charge, small)

    with uow(read_only=True) as unit:
        read = unit.transactions.get(charge.id)
        other = unit.transactions.get(small.id)

    assert read == charge and other == small
    assert read is not None and other is not None
    assert (read.transaction_type, read.direction) == (TransactionType.ADJUSTMENT, Direction.REDUCE_OWED)
    assert str(read.amount) == "999999999999.99" and str(read.balance_after) == "0.00"
    assert str(other.amount) == "0.01" and str(other.balance_after) == "0.01"
    assert read.transaction_date == date(2025, 4, 6) and (read.financial_year, read.period_no) == (2024, 53)
    assert (other.financial_year, other.period_no) == (2025, 1)
    assert read.posted_at == datetime(2026, 3, 30, 22, 59, 59, 999999, tzinfo=UTC)
    assert read.posted_at.tzinfo is not None and read.posted_at.utcoffset() == timedelta(0)
    assert read.description == "Zoë's “opening” adjustment" and read.reference == "BACS/ÅØ-0001"
    assert read.created_by == OFFICER.label and read.reverses_id is None
    assert other.description is None and other.reference is None


def test_a_reversal_is_read_back_by_its_id_and_as_the_reversal_of_what_it_reverses(uow: UowFactory) -> None:
    account = stored_account(uow)
    charge = a_posting(account)
    reversal = a_reversal(charge, balance_before="-100.00")
    post_all(uow, charge)
    post_all(uow, reversal)

    with uow(read_only=True) as unit:
        assert unit.transactions.reversal_of(charge.id) == reversal
        assert unit.transactions.get(reversal.id) == reversal
        assert unit.transactions.reversal_of(reversal.id) is None
        assert unit.transactions.get(uuid.uuid4()) is None
        assert unit.transactions.reversal_of(uuid.uuid4()) is None
    assert reversal.reverses_id == charge.id and reversal.direction is Direction.REDUCE_OWED
    assert reversal.balance_after == Decimal("0.00")


def test_a_transaction_added_is_found_in_its_unit_of_work_before_commit_and_by_no_other(uow: UowFactory) -> None:
    account = stored_account(uow)
    charge = a_posting(account)
    reversal = a_reversal(charge, balance_before="-100.00")

    with uow() as unit:
        assert unit.transactions.get(charge.id) is None  # read, and remembered as absent
        assert unit.transactions.reversal_of(charge.id) is None
        unit.transactions.add(charge)
        unit.transactions.add(reversal)
        assert unit.transactions.get(charge.id) == charge
        assert unit.transactions.get(reversal.id) == reversal
        assert unit.transactions.reversal_of(charge.id) == reversal
        assert unit.transactions.posted() == [charge, reversal]
        with uow(read_only=True) as other:
            assert other.transactions.get(charge.id) is None
            assert other.transactions.reversal_of(charge.id) is None
        unit.commit()

    with uow(read_only=True) as unit:
        assert unit.transactions.get(charge.id) == charge
        assert unit.transactions.posted() == []


def test_a_transaction_not_committed_is_not_stored(uow: UowFactory) -> None:
    account = stored_account(uow)
    charge = a_posting(account)
    with uow() as unit:
        unit.transactions.add(charge)
    with uow(read_only=True) as unit:
        assert unit.transactions.get(charge.id) is None
        assert unit.transactions.page(account.id, from_date=None, to_date=None, after=None, limit=10) == []


def test_a_savepoint_undoes_the_transactions_added_inside_it_only(uow: UowFactory) -> None:
    account = stored_account(uow)
    kept = a_posting(account)
    undone = a_posting(account, TransactionType.PAYMENT, "40.00", balance_before="-100.00")
    reversal = a_reversal(kept, balance_before="-100.00")
    after = a_posting(account, TransactionType.PAYMENT, "60.00", balance_before="-100.00")

    with uow() as unit:
        unit.transactions.add(kept)
        with pytest.raises(Boom), unit.savepoint():
            unit.transactions.add(undone)
            unit.transactions.add(reversal)
            assert unit.transactions.reversal_of(kept.id) == reversal
            raise Boom
        assert unit.transactions.get(undone.id) is None
        assert unit.transactions.get(reversal.id) is None
        assert unit.transactions.reversal_of(kept.id) is None
        assert unit.transactions.posted() == [kept]
        with unit.savepoint():
            unit.transactions.add(after)
        assert unit.transactions.posted() == [kept, after]
        unit.commit()

    with uow(read_only=True) as unit:
        listed = unit.transactions.page(account.id, from_date=None, to_date=None, after=None, limit=10)
        assert [transaction for _, transaction in listed] == [kept, after]
        assert unit.transactions.get(undone.id) is None
        assert unit.transactions.reversal_of(kept.id) is None


def test_a_transaction_id_already_posted_makes_the_commit_a_conflict(uow: UowFactory) -> None:
    account = stored_account(uow)
    charge = a_posting(account)
    post_all(uow, charge)
    again = replace(a_posting(account, TransactionType.PAYMENT, "5.00"), id=charge.id)
    other = a_posting(account, TransactionType.PAYMENT, "7.00")

    with uow() as unit, pytest.raises(ConcurrencyConflict):
        unit.transactions.add(other)
        unit.transactions.add(again)
        unit.commit()

    with uow() as unit, pytest.raises(ConcurrencyConflict):  # twice in one unit of work
        twice = a_posting(account, TransactionType.PAYMENT, "9.00")
        unit.transactions.add(twice)
        unit.transactions.add(twice)
        unit.commit()

    with uow(read_only=True) as unit:
        assert unit.transactions.get(charge.id) == charge
        assert unit.transactions.get(other.id) is None  # nothing of a refused commit is kept
        listed = unit.transactions.page(account.id, from_date=None, to_date=None, after=None, limit=10)
        assert [transaction for _, transaction in listed] == [charge]


def test_a_transaction_is_reversed_once_a_second_reversal_makes_the_commit_a_conflict(uow: UowFactory) -> None:
    account = stored_account(uow)
    charge = a_posting(account)
    first = a_reversal(charge, balance_before="-100.00")
    post_all(uow, charge, first)

    with uow() as unit, pytest.raises(ConcurrencyConflict):
        unit.transactions.add(a_reversal(charge))
        unit.commit()

    with uow(read_only=True) as unit:
        assert unit.transactions.reversal_of(charge.id) == first


def test_two_transactions_reversing_one_transaction_at_once_commit_one_reversal(
    uow: UowFactory, backend: Store
) -> None:
    writers_take_turns(backend)
    account = stored_account(uow)
    charge = a_posting(account)
    post_all(uow, charge)
    ours, theirs = a_reversal(charge, "-100.00"), a_reversal(charge, "-100.00")

    with uow() as unit:
        assert unit.transactions.reversal_of(charge.id) is None
        unit.transactions.add(ours)
        with uow() as other:
            assert other.transactions.reversal_of(charge.id) is None
            other.transactions.add(theirs)
            other.commit()
        with pytest.raises(ConcurrencyConflict):
            unit.commit()

    with uow(read_only=True) as unit:
        assert unit.transactions.reversal_of(charge.id) == theirs
        assert unit.transactions.get(ours.id) is None


def test_a_transaction_of_an_account_not_stored_makes_the_commit_a_conflict(uow: UowFactory) -> None:
    with uow() as unit, pytest.raises(ConcurrencyConflict):
        unit.transactions.add(a_posting(an_account()))
        unit.commit()


def _statement(
    unit_uow: UowFactory,
    account_id: uuid.UUID,
    *,
    from_date: date | None = None,
    to_date: date | None = None,
    after: StatementCursor | None = None,
    limit: int = 100,
) -> list[tuple[StatementCursor, Transaction]]:
    with unit_uow(read_only=True) as unit:
        return unit.transactions.page(account_id, from_date=from_date, to_date=to_date, after=after, limit=limit)


def test_a_statement_lists_by_transaction_date_then_posting_order_within_bounds_after_a_cursor(
    uow: UowFactory,
) -> None:
    account, other = stored_account(uow), stored_account(uow)
    jan_10 = a_posting(account, day=date(2026, 1, 10))
    jan_12 = a_posting(account, TransactionType.PAYMENT, "30.00", date(2026, 1, 12))
    post_all(uow, jan_10, jan_12)
    back_dated = a_posting(account, TransactionType.CHARGE, "5.00", date(2026, 1, 5))  # posted later, listed first
    jan_12_later = a_posting(account, TransactionType.HOUSING_BENEFIT, "20.00", date(2026, 1, 12))
    jan_20 = a_posting(account, TransactionType.WRITE_OFF, "1.00", date(2026, 1, 20))
    post_all(uow, back_dated, jan_12_later, a_posting(other, day=date(2026, 1, 11)))
    post_all(uow, jan_20)

    everything = _statement(uow, account.id)
    assert [t for _, t in everything] == [back_dated, jan_10, jan_12, jan_12_later, jan_20]
    places = [place for place, _ in everything]
    assert places == sorted(places)
    assert [place.transaction_date for place in places] == [t.transaction_date for _, t in everything]
    assert places[2].position < places[3].position  # the same day: in posting order

    # Bounds are inclusive at both ends.
    bounded = _statement(uow, account.id, from_date=date(2026, 1, 10), to_date=date(2026, 1, 12))
    assert [t for _, t in bounded] == [jan_10, jan_12, jan_12_later]
    assert [t for _, t in _statement(uow, account.id, from_date=date(2026, 1, 13))] == [jan_20]
    assert [t for _, t in _statement(uow, account.id, to_date=date(2026, 1, 5))] == [back_dated]
    assert _statement(uow, account.id, from_date=date(2026, 1, 21)) == []

    # Paged: each page starts strictly after the last place of the one before, within the same bounds.
    first = _statement(uow, account.id, limit=2)
    assert first == everything[:2]
    second = _statement(uow, account.id, after=first[-1][0], limit=2)
    assert second == everything[2:4]
    assert _statement(uow, account.id, after=second[-1][0], limit=2) == everything[4:]
    assert _statement(uow, account.id, after=everything[-1][0]) == []
    within = _statement(uow, account.id, to_date=date(2026, 1, 12), after=everything[2][0])
    assert [t for _, t in within] == [jan_12_later]
    assert _statement(uow, uuid.uuid4()) == []


def test_what_is_owed_before_a_place_in_the_statement_sums_the_transactions_listed_before_it(
    uow: UowFactory,
) -> None:
    account, other = stored_account(uow), stored_account(uow)
    charge = a_posting(account, TransactionType.CHARGE, "100.00", date(2026, 1, 12))
    payment = a_posting(account, TransactionType.PAYMENT, "30.50", date(2026, 1, 12))
    refund = a_posting(account, TransactionType.REFUND, "0.25", date(2026, 1, 19))
    back_dated = a_posting(
        account, TransactionType.ADJUSTMENT, "10.00", date(2026, 1, 1), direction=Direction.REDUCE_OWED
    )
    post_all(uow, charge, payment, refund, back_dated, a_posting(other, day=date(2025, 12, 1)))

    places = [place for place, _ in _statement(uow, account.id)]
    with uow(read_only=True) as unit:
        owed = [unit.transactions.owed_before(account.id, place) for place in places]
        past_the_end = unit.transactions.owed_before(account.id, StatementCursor(date(2026, 2, 1), 0))
        before_anything = unit.transactions.owed_before(account.id, StatementCursor(date(2025, 1, 1), 0))
        of_no_account = unit.transactions.owed_before(uuid.uuid4(), StatementCursor(date(2026, 2, 1), 0))

    # Statement order: back-dated (-10), charge (+100), payment (-30.50), refund (+0.25).
    assert [str(value) for value in owed] == ["0.00", "-10.00", "90.00", "59.50"]
    assert str(past_the_end) == "59.75"
    assert str(before_anything) == "0.00" and str(of_no_account) == "0.00"


def test_what_is_owed_by_day_is_the_sum_before_the_first_day_then_each_days_sum_up_to_the_last(
    uow: UowFactory,
) -> None:
    account, other = stored_account(uow), stored_account(uow)
    post_all(
        uow,
        a_posting(account, TransactionType.CHARGE, "100.00", date(2026, 1, 5)),
        a_posting(account, TransactionType.PAYMENT, "30.50", date(2026, 1, 11)),  # the day before the first
        a_posting(account, TransactionType.CHARGE, "100.00", date(2026, 1, 12)),  # the first day
        a_posting(account, TransactionType.PAYMENT, "0.25", date(2026, 1, 12)),
        a_posting(account, TransactionType.PAYMENT, "120.00", date(2026, 1, 16)),
        a_posting(account, TransactionType.CHARGE, "100.00", date(2026, 1, 18)),  # the last day
        a_posting(account, TransactionType.CHARGE, "100.00", date(2026, 1, 19)),  # after it
        a_posting(other, TransactionType.CHARGE, "7.00", date(2026, 1, 12)),
    )
    with uow(read_only=True) as unit:
        found = unit.transactions.owed_by_day(account.id, date(2026, 1, 12), date(2026, 1, 18))
        nothing_before = unit.transactions.owed_by_day(account.id, date(2025, 1, 1), date(2025, 1, 7))
        of_no_account = unit.transactions.owed_by_day(uuid.uuid4(), date(2026, 1, 12), date(2026, 1, 18))

    assert str(found.before) == "69.50"
    assert {day: str(owed) for day, owed in found.days.items()} == {
        date(2026, 1, 12): "99.75",
        date(2026, 1, 16): "-120.00",
        date(2026, 1, 18): "100.00",
    }
    assert str(nothing_before.before) == "0.00" and nothing_before.days == {}
    assert str(of_no_account.before) == "0.00" and of_no_account.days == {}


def test_the_ledger_lists_exactly_the_accounts_whose_balance_is_not_the_sum_of_their_transactions(
    uow: UowFactory,
) -> None:
    charged = Decimal("-120.40")  # a Tenure (NegativeIsArrears): owing 120.40 is a balance of -120.40
    tenure_agrees = stored_account(uow, account_balance=charged)
    tenure_disagrees = stored_account(uow, account_balance=Decimal("120.40"))  # the sign the other way
    recovery_agrees = stored_account(uow, target_type="HousingBenefit", account_balance=Decimal("120.40"))
    recovery_disagrees = stored_account(uow, target_type="HousingBenefit", account_balance=Decimal("120.39"))
    nothing_posted = stored_account(uow)  # balance 0.00, no transactions: agrees
    never_opened = stored_account(uow, account_balance=Decimal("-15.00"))  # a balance, no transactions
    in_credit = stored_account(uow, account_balance=Decimal("50.00"))
    opening = opening_balance(
        account_id=in_credit.id,
        balance=Decimal("50.00"),
        polarity=Polarity.NEGATIVE_IS_ARREARS,
        created_by="migration",
        posted_at=CREATED,
        transaction_date=date(2026, 1, 5),
        transaction_id=uuid.uuid4(),
    )
    assert opening is not None
    transactions = [opening]
    for account in (tenure_agrees, tenure_disagrees, recovery_agrees, recovery_disagrees):
        transactions += [  # owed: 150.40 - 30.00 = 120.40
            a_posting(account, TransactionType.CHARGE, "150.40"),
            a_posting(account, TransactionType.PAYMENT, "30.00"),
        ]
    post_all(uow, *transactions)

    with uow(read_only=True) as unit:
        found = set(unit.transactions.differences())

    assert found == {
        LedgerDifference(tenure_disagrees.id, Decimal("120.40"), Decimal("-120.40")),
        LedgerDifference(recovery_disagrees.id, Decimal("120.39"), Decimal("120.40")),
        LedgerDifference(never_opened.id, Decimal("-15.00"), Decimal("0.00")),
    }
    assert all(str(difference.ledger_balance) in {"-120.40", "120.40", "0.00"} for difference in found)
    assert nothing_posted.id not in {difference.account_id for difference in found}
