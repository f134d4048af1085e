"""The ledger's rules: what each type does to what is owed, on both polarities; what is refused; retries."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts.domain.account import AccountStatus
from accounts.domain.account import to_wire as account_to_wire
from accounts.domain.errors import DomainError, ValidationProblem
from accounts.domain.ledger import (
    FIXED_DIRECTION,
    Direction,
    LedgerConflict,
    PostingRequest,
    Transaction,
    TransactionType,
    balance_of,
    opening_balance,
    owed_at_week_ends,
    post,
    refuse_second_reversal,
    reverse,
    running_balances,
    same_request,
    same_reversal,
    to_wire,
    validate_request,
)
from accounts.domain.polarity import DEFAULT_TARGET_TYPES, Polarity
from accounts.domain.values import money
from tests.unit.test_domain_account import an_account

NEGATIVE = Polarity.NEGATIVE_IS_ARREARS  # a Tenure: a charge makes the balance more negative
POSITIVE = Polarity.POSITIVE_IS_ARREARS  # a HousingBenefit overpayment: a charge makes it more positive
ACCOUNT = uuid.UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")
OFFICER = "rent.officer@hackney.gov.uk"
POSTED = datetime(2026, 4, 8, 10, 30, tzinfo=UTC)
WEDNESDAY = date(2026, 4, 8)  # 2026/27 week 1


def a_request(transaction_type: TransactionType = TransactionType.CHARGE, **overrides: object) -> PostingRequest:
    values: dict[str, object] = {
        "id": uuid.UUID("11111111-1111-4111-8111-111111111111"),
        "transaction_type": transaction_type,
        "amount": Decimal("100.00"),
        "transaction_date": WEDNESDAY,
    }
    if transaction_type is TransactionType.ADJUSTMENT:
        values["direction"] = Direction.INCREASE_OWED
    values.update(overrides)
    return PostingRequest(**values)  # type: ignore[arg-type]


def posted(
    request: PostingRequest, polarity: Polarity = NEGATIVE, balance_before: str = "0.00", **overrides: object
) -> Transaction:
    values: dict[str, object] = {
        "account_id": ACCOUNT,
        "polarity": polarity,
        "balance_before": Decimal(balance_before),
        "created_by": OFFICER,
        "posted_at": POSTED,
    }
    values.update(overrides)
    return post(request, **values)  # type: ignore[arg-type]


def reversal_of(original: Transaction, polarity: Polarity = NEGATIVE, **overrides: object) -> Transaction:
    values: dict[str, object] = {
        "reversal_id": uuid.UUID("22222222-2222-4222-8222-222222222222"),
        "reason": "Posted to the wrong account",
        "polarity": polarity,
        "balance_before": original.balance_after,
        "created_by": "supervisor@hackney.gov.uk",
        "posted_at": POSTED + timedelta(days=1),
        "transaction_date": WEDNESDAY + timedelta(days=1),
    }
    values.update(overrides)
    return reverse(original, **values)  # type: ignore[arg-type]


# What each type does to what is owed, and to the balance on each polarity -----------------

OWED_EFFECT = [
    (TransactionType.CHARGE, {}, Direction.INCREASE_OWED),
    (TransactionType.REFUND, {}, Direction.INCREASE_OWED),
    (TransactionType.PAYMENT, {}, Direction.REDUCE_OWED),
    (TransactionType.HOUSING_BENEFIT, {}, Direction.REDUCE_OWED),
    (TransactionType.WRITE_OFF, {}, Direction.REDUCE_OWED),
    (TransactionType.ADJUSTMENT, {"direction": Direction.INCREASE_OWED}, Direction.INCREASE_OWED),
    (TransactionType.ADJUSTMENT, {"direction": Direction.REDUCE_OWED}, Direction.REDUCE_OWED),
]


@pytest.mark.parametrize(("transaction_type", "asked", "direction"), OWED_EFFECT)
def test_each_type_moves_what_is_owed_its_own_way(
    transaction_type: TransactionType, asked: dict[str, object], direction: Direction
) -> None:
    transaction = posted(a_request(transaction_type, amount=Decimal("25.50"), **asked))

    assert transaction.direction is direction
    assert transaction.owed_change == (Decimal("25.50") if direction is Direction.INCREASE_OWED else Decimal("-25.50"))


@pytest.mark.parametrize(("transaction_type", "asked", "direction"), OWED_EFFECT)
def test_on_a_tenure_what_increases_the_owed_makes_the_balance_more_negative(
    transaction_type: TransactionType, asked: dict[str, object], direction: Direction
) -> None:
    transaction = posted(a_request(transaction_type, **asked), NEGATIVE, balance_before="-40.00")

    expected = Decimal("-140.00") if direction is Direction.INCREASE_OWED else Decimal("60.00")
    assert transaction.balance_after == expected
    assert transaction.balance_change(NEGATIVE) == expected - Decimal("-40.00")


@pytest.mark.parametrize(("transaction_type", "asked", "direction"), OWED_EFFECT)
def test_on_a_positive_is_arrears_account_what_increases_the_owed_makes_the_balance_more_positive(
    transaction_type: TransactionType, asked: dict[str, object], direction: Direction
) -> None:
    transaction = posted(a_request(transaction_type, **asked), POSITIVE, balance_before="40.00")

    expected = Decimal("140.00") if direction is Direction.INCREASE_OWED else Decimal("-60.00")
    assert transaction.balance_after == expected
    assert transaction.balance_change(POSITIVE) == expected - Decimal("40.00")


def test_a_weekly_charge_then_a_payment_on_a_tenure_reads_as_arrears_then_square() -> None:
    tenure = next(target for target in DEFAULT_TARGET_TYPES if target.name == "Tenure")
    charge = posted(a_request(TransactionType.CHARGE, amount=Decimal("123.45")), tenure.polarity)
    payment = posted(
        a_request(TransactionType.PAYMENT, id=uuid.uuid4(), amount=Decimal("123.45")),
        tenure.polarity,
        balance_before=str(charge.balance_after),
    )

    assert charge.balance_after == Decimal("-123.45")
    assert tenure.in_arrears(charge.balance_after)
    assert tenure.amount_owed(charge.balance_after) == Decimal("123.45")
    assert str(payment.balance_after) == "0.00"  # not "-0.00"
    assert not tenure.in_arrears(payment.balance_after)


def test_a_posting_records_who_when_and_its_rent_week() -> None:
    request = a_request(description="Rent week 1", reference="BANK-REF-001", transaction_date=date(2026, 4, 5))
    transaction = posted(request, posted_at=datetime(2026, 4, 8, 11, 30, tzinfo=timezone(timedelta(hours=1))))

    assert transaction.id == request.id
    assert transaction.account_id == ACCOUNT
    assert transaction.created_by == OFFICER
    assert transaction.posted_at == POSTED and transaction.posted_at.tzinfo is UTC
    assert (transaction.financial_year, transaction.period_no) == (2025, 52)  # the Sunday before the first Monday
    assert transaction.rent_week.label == "2025/26 week 52"
    assert (transaction.description, transaction.reference, transaction.reverses_id) == (
        "Rent week 1",
        "BANK-REF-001",
        None,
    )


def test_a_charge_in_the_53rd_week_of_2024_25_is_period_53() -> None:
    transaction = posted(a_request(transaction_date=date(2025, 4, 3)))

    assert (transaction.financial_year, transaction.period_no) == (2024, 53)


def test_a_charge_on_the_first_monday_of_april_is_period_1_of_the_new_rent_year() -> None:
    transaction = posted(a_request(transaction_date=date(2026, 4, 6)))

    assert (transaction.financial_year, transaction.period_no) == (2026, 1)


def test_the_amount_is_kept_exact_to_the_penny() -> None:
    transaction = posted(a_request(amount=Decimal("0.10")), balance_before="0.20")

    assert transaction.balance_after == Decimal("0.10")  # 0.20 - 0.10 with no float in sight
    assert str(posted(a_request(amount=Decimal("5"))).amount) == "5.00"


# Bad requests: each a problem naming the field and the rule, nothing posted ---------------


@pytest.mark.parametrize(
    ("amount", "rule"),
    [
        (Decimal("0"), "must be greater than zero"),
        (Decimal("0.00"), "must be greater than zero"),
        (Decimal("-10.00"), "must be greater than zero"),
        (Decimal("10.001"), "must have at most two decimal places"),
        (Decimal("NaN"), "must be a finite number"),
        (Decimal("sNaN"), "must be a finite number"),
        (Decimal("Infinity"), "must be a finite number"),
        (Decimal("-Infinity"), "must be a finite number"),
        (Decimal("1000000000000.00"), "must be less than 1,000,000,000,000 in size"),
        (10.5, "must be a finite number"),  # a float is never money
    ],
)
def test_a_bad_amount_is_refused_naming_the_amount(amount: Decimal, rule: str) -> None:
    request = a_request(amount=amount)

    with pytest.raises(ValidationProblem) as refused:
        validate_request(request)
    assert (refused.value.field, refused.value.rule) == ("amount", rule)
    with pytest.raises(ValidationProblem):
        posted(request)


def test_the_largest_amount_that_fits_is_accepted() -> None:
    transaction = posted(a_request(TransactionType.PAYMENT, amount=Decimal("999999999999.99")))

    assert transaction.balance_after == Decimal("999999999999.99")


def test_a_posting_that_would_overflow_the_balance_is_refused_naming_the_amount() -> None:
    with pytest.raises(ValidationProblem) as refused:
        posted(a_request(amount=Decimal("0.02")), balance_before="-999999999999.98")

    assert refused.value.field == "amount"
    assert "balance" in refused.value.rule


def test_an_adjustment_without_a_direction_is_refused() -> None:
    with pytest.raises(ValidationProblem) as refused:
        validate_request(a_request(TransactionType.ADJUSTMENT, direction=None))

    assert refused.value.field == "direction"
    assert "required" in refused.value.rule


@pytest.mark.parametrize("transaction_type", sorted(FIXED_DIRECTION))
@pytest.mark.parametrize("direction", list(Direction))
def test_a_direction_on_anything_but_an_adjustment_is_refused(
    transaction_type: TransactionType, direction: Direction
) -> None:
    with pytest.raises(ValidationProblem) as refused:
        validate_request(a_request(transaction_type, direction=direction))

    assert refused.value.field == "direction"
    assert "only on an Adjustment" in refused.value.rule


def test_a_reversal_cannot_be_posted_through_the_transactions_route() -> None:
    with pytest.raises(ValidationProblem) as refused:
        validate_request(a_request(TransactionType.REVERSAL))

    assert (refused.value.field, refused.value.rule) == ("transactionType", "use the reversal route")


def test_an_opening_balance_cannot_be_posted_through_the_transactions_route() -> None:
    with pytest.raises(ValidationProblem) as refused:
        posted(a_request(TransactionType.OPENING_BALANCE))

    assert refused.value.field == "transactionType"
    assert refused.value.rule == "is written only by the migration and by creating an account with a balance"


def test_an_unknown_type_is_refused_naming_the_type() -> None:
    with pytest.raises(ValidationProblem) as refused:
        validate_request(a_request("Bribe"))  # type: ignore[arg-type]

    assert (refused.value.field, refused.value.rule) == ("transactionType", "is not a transaction type")


def test_a_type_given_as_its_wire_string_is_the_type() -> None:
    transaction = posted(a_request("Payment"))  # type: ignore[arg-type]

    assert transaction.transaction_type is TransactionType.PAYMENT
    assert transaction.direction is Direction.REDUCE_OWED


@pytest.mark.parametrize("day", [date(1, 1, 1), date(9999, 12, 31)])
def test_a_date_with_no_rent_week_is_refused_naming_the_transaction_date(day: date) -> None:
    with pytest.raises(ValidationProblem) as refused:
        validate_request(a_request(transaction_date=day))

    assert refused.value.field == "transactionDate"


def test_a_timestamp_is_not_a_transaction_date() -> None:
    with pytest.raises(ValidationProblem) as refused:
        validate_request(a_request(transaction_date=POSTED))

    assert (refused.value.field, refused.value.rule) == ("transactionDate", "must be a date")


def test_a_posting_time_without_a_timezone_is_refused() -> None:
    with pytest.raises(ValidationProblem) as refused:
        posted(a_request(), posted_at=datetime(2026, 4, 8, 10, 30))

    assert refused.value.field == "postedAt"


# The account's status ---------------------------------------------------------------------


def refuse_on_status(status: AccountStatus, transaction_type: TransactionType) -> None:
    """The rule is the account's own (`Account.refuse_posting`): an account in that status asked to post."""
    an_account(account_status=status).refuse_posting(transaction_type)


def test_an_ended_account_refuses_new_charges_as_a_conflict() -> None:
    with pytest.raises(LedgerConflict) as refused:
        refuse_on_status(AccountStatus.ENDED, TransactionType.CHARGE)

    assert refused.value.field == "transactionType"
    assert "Ended" in refused.value.rule
    assert isinstance(refused.value, DomainError) and not isinstance(refused.value, ValidationProblem)


@pytest.mark.parametrize("transaction_type", sorted(set(TransactionType) - {TransactionType.CHARGE}))
def test_an_ended_account_still_takes_payments_refunds_and_corrections(transaction_type: TransactionType) -> None:
    refuse_on_status(AccountStatus.ENDED, transaction_type)


@pytest.mark.parametrize("status", [AccountStatus.ACTIVE, AccountStatus.SUSPENDED])
@pytest.mark.parametrize("transaction_type", list(TransactionType))
def test_active_and_suspended_accounts_take_every_type(
    status: AccountStatus, transaction_type: TransactionType
) -> None:
    refuse_on_status(status, transaction_type)


# Reversals --------------------------------------------------------------------------------


@pytest.mark.parametrize("polarity", list(Polarity))
@pytest.mark.parametrize(("transaction_type", "asked", "direction"), OWED_EFFECT)
def test_a_reversal_undoes_exactly_what_it_reverses(
    polarity: Polarity, transaction_type: TransactionType, asked: dict[str, object], direction: Direction
) -> None:
    original = posted(a_request(transaction_type, amount=Decimal("42.17"), **asked), polarity, balance_before="10.00")
    reversal = reversal_of(original, polarity)

    assert reversal.transaction_type is TransactionType.REVERSAL
    assert reversal.amount == original.amount
    assert reversal.direction is direction.opposite
    assert reversal.owed_change == -original.owed_change
    assert reversal.balance_after == Decimal("10.00")
    assert reversal.reverses_id == original.id
    assert reversal.account_id == original.account_id


def test_a_reversal_records_its_reason_who_and_when() -> None:
    original = posted(a_request())
    reversal = reversal_of(original, reason="Charged twice")

    assert reversal.id == uuid.UUID("22222222-2222-4222-8222-222222222222")
    assert reversal.description == "Charged twice"
    assert reversal.created_by == "supervisor@hackney.gov.uk"
    assert reversal.transaction_date == date(2026, 4, 9)
    assert (reversal.financial_year, reversal.period_no) == (2026, 1)
    assert reversal.posted_at == POSTED + timedelta(days=1)


@pytest.mark.parametrize("reason", ["", "   ", "\n\t"])
def test_a_reversal_needs_a_reason(reason: str) -> None:
    with pytest.raises(ValidationProblem) as refused:
        reversal_of(posted(a_request()), reason=reason)

    assert (refused.value.field, refused.value.rule) == ("reason", "must not be blank")


def test_a_reversal_cannot_be_reversed() -> None:
    reversal = reversal_of(posted(a_request()))

    with pytest.raises(LedgerConflict) as refused:
        reversal_of(reversal, reversal_id=uuid.uuid4())
    assert refused.value.field == "transactionId"
    assert "cannot be reversed" in refused.value.rule


def test_an_opening_balance_can_be_reversed() -> None:
    opening = an_opening_balance("-250.00", NEGATIVE)
    assert opening is not None

    assert reversal_of(opening).balance_after == Decimal("0.00")


def test_a_transaction_is_reversed_once() -> None:
    original = posted(a_request())
    first = reversal_of(original)

    refuse_second_reversal(original, None)
    with pytest.raises(LedgerConflict) as refused:
        refuse_second_reversal(original, first)
    assert refused.value.field == "transactionId"
    assert str(first.id) in refused.value.rule


def test_a_retried_reversal_is_the_same_reversal_only_for_the_same_original_and_reason() -> None:
    original = posted(a_request())
    reversal = reversal_of(original, reason="Charged twice")

    assert same_reversal(reversal, original_id=original.id, reason="Charged twice")
    assert not same_reversal(reversal, original_id=original.id, reason="Wrong amount")
    assert not same_reversal(reversal, original_id=uuid.uuid4(), reason="Charged twice")
    assert not same_reversal(original, original_id=original.id, reason="Charged twice")


# Idempotent retries -----------------------------------------------------------------------


@pytest.mark.parametrize(("transaction_type", "asked", "direction"), OWED_EFFECT)
def test_a_retry_with_the_same_content_is_the_same_request(
    transaction_type: TransactionType, asked: dict[str, object], direction: Direction
) -> None:
    request = a_request(transaction_type, description="Week 1", reference="REF", **asked)
    existing = posted(request, balance_before="-500.00")

    assert same_request(existing, request)
    assert same_request(existing, request, account_id=ACCOUNT)
    assert same_request(existing, dataclasses.replace(request, amount=Decimal("100.0")))  # the same number


@pytest.mark.parametrize(
    "change",
    [
        {"transaction_type": TransactionType.PAYMENT},
        {"amount": Decimal("100.01")},
        {"transaction_date": WEDNESDAY + timedelta(days=1)},
        {"description": "Something else"},
        {"reference": "REF-2"},
        {"direction": Direction.REDUCE_OWED},
    ],
)
def test_a_retry_with_different_content_is_not_the_same_request(change: dict[str, object]) -> None:
    request = a_request(TransactionType.ADJUSTMENT, description="Week 1", reference="REF")
    existing = posted(request)

    assert not same_request(existing, dataclasses.replace(request, **change))  # type: ignore[arg-type]


def test_a_retry_naming_the_direction_its_type_already_has_is_the_same_request() -> None:
    request = a_request(TransactionType.CHARGE)
    existing = posted(request)

    assert same_request(existing, dataclasses.replace(request, direction=Direction.INCREASE_OWED))
    assert not same_request(existing, dataclasses.replace(request, direction=Direction.REDUCE_OWED))


def test_a_retry_of_an_adjustment_that_leaves_out_its_direction_is_not_the_same_request() -> None:
    request = a_request(TransactionType.ADJUSTMENT)

    assert not same_request(posted(request), dataclasses.replace(request, direction=None))


def test_a_retry_to_another_account_is_not_the_same_request() -> None:
    request = a_request()

    assert not same_request(posted(request), request, account_id=uuid.uuid4())


def test_the_same_id_as_a_reversal_or_an_opening_balance_is_not_the_same_request() -> None:
    reversal = reversal_of(posted(a_request()))
    request = a_request(
        TransactionType.ADJUSTMENT,
        id=reversal.id,
        direction=reversal.direction,
        amount=reversal.amount,
        transaction_date=reversal.transaction_date,
        description=reversal.description,
    )

    assert not same_request(reversal, request)


# Opening balances -------------------------------------------------------------------------


def an_opening_balance(balance: str, polarity: Polarity) -> Transaction | None:
    return opening_balance(
        account_id=ACCOUNT,
        balance=Decimal(balance),
        polarity=polarity,
        created_by="migration",
        posted_at=POSTED,
        transaction_date=date(2026, 4, 8),
        transaction_id=uuid.UUID("33333333-3333-4333-8333-333333333333"),
    )


@pytest.mark.parametrize(
    ("balance", "polarity", "direction"),
    [
        ("-300.00", NEGATIVE, Direction.INCREASE_OWED),  # a tenure in arrears
        ("45.10", NEGATIVE, Direction.REDUCE_OWED),  # a tenure in credit
        ("300.00", POSITIVE, Direction.INCREASE_OWED),  # an overpayment to recover
        ("-45.10", POSITIVE, Direction.REDUCE_OWED),
        ("-0.01", NEGATIVE, Direction.INCREASE_OWED),
    ],
)
def test_an_opening_balance_brings_an_empty_ledger_to_the_balance(
    balance: str, polarity: Polarity, direction: Direction
) -> None:
    opening = an_opening_balance(balance, polarity)

    assert opening is not None
    assert opening.transaction_type is TransactionType.OPENING_BALANCE
    assert opening.direction is direction
    assert opening.amount == abs(Decimal(balance))
    assert opening.balance_after == Decimal(balance)
    assert opening.balance_change(polarity) == Decimal(balance)
    assert opening.id == uuid.UUID("33333333-3333-4333-8333-333333333333")
    assert opening.created_by == "migration"
    assert (opening.financial_year, opening.period_no) == (2026, 1)


@pytest.mark.parametrize("balance", ["0.00", "0", "-0.00"])
def test_a_zero_balance_needs_no_opening_balance(balance: str) -> None:
    assert an_opening_balance(balance, NEGATIVE) is None
    assert an_opening_balance(balance, POSITIVE) is None


def test_an_opening_balance_of_bad_money_is_refused_naming_the_balance() -> None:
    with pytest.raises(ValidationProblem) as refused:
        an_opening_balance("1.234", NEGATIVE)

    assert refused.value.field == "accountBalance"


# Balances ---------------------------------------------------------------------------------


def test_running_balances_follow_the_postings_and_a_reversal_puts_one_back() -> None:
    charge = posted(a_request(amount=Decimal("100.00")))
    payment = posted(
        a_request(TransactionType.PAYMENT, id=uuid.uuid4(), amount=Decimal("60.00")), balance_before="-100.00"
    )
    reversal = reversal_of(payment)
    ledger = [charge, payment, reversal]

    assert running_balances(Decimal("0.00"), ledger, NEGATIVE) == [
        Decimal("-100.00"),
        Decimal("-40.00"),
        Decimal("-100.00"),
    ]
    assert running_balances(Decimal("0.00"), ledger, NEGATIVE) == [t.balance_after for t in ledger]
    assert running_balances(Decimal("20.00"), ledger, POSITIVE) == [
        Decimal("120.00"),
        Decimal("60.00"),
        Decimal("120.00"),
    ]
    assert balance_of(ledger, NEGATIVE) == Decimal("-100.00")
    assert balance_of([], NEGATIVE) == Decimal("0.00")
    assert running_balances(Decimal("0.00"), [], NEGATIVE) == []


@given(
    st.lists(
        st.tuples(
            st.sampled_from(OWED_EFFECT),
            st.decimals(min_value=Decimal("0.01"), max_value=Decimal("10000.00"), places=2),
        ),
        max_size=30,
    ),
    st.sampled_from(list(Polarity)),
)
def test_the_balance_is_always_the_sum_of_the_transactions(
    postings: list[tuple[tuple[TransactionType, dict[str, object], Direction], Decimal]], polarity: Polarity
) -> None:
    balance = Decimal("0.00")
    ledger: list[Transaction] = []
    for (transaction_type, asked, _), amount in postings:
        transaction = posted(
            a_request(transaction_type, id=uuid.uuid4(), amount=amount, **asked), polarity, balance_before=str(balance)
        )
        ledger.append(transaction)
        balance = transaction.balance_after

    assert balance_of(ledger, polarity) == balance
    assert running_balances(Decimal("0.00"), ledger, polarity) == [t.balance_after for t in ledger]
    owed = sum((t.owed_change for t in ledger), Decimal("0.00"))
    assert balance == (-owed if polarity is NEGATIVE else owed)
    assert all(money(t.balance_after, "balanceAfter") == t.balance_after for t in ledger)


# The wire ---------------------------------------------------------------------------------


def test_a_transaction_reads_on_the_wire_in_camel_case_with_iso_dates_and_exact_money() -> None:
    original = posted(a_request(description="Week 1 rent", reference="R1"), balance_before="-0.50")
    reversal = reversal_of(original)

    assert to_wire(original) == {
        "id": "11111111-1111-4111-8111-111111111111",
        "accountId": str(ACCOUNT),
        "transactionType": "Charge",
        "amount": Decimal("100.00"),
        "direction": "IncreaseOwed",
        "transactionDate": "2026-04-08",
        "postedAt": "2026-04-08T10:30:00Z",
        "periodNo": 1,
        "financialYear": 2026,
        "description": "Week 1 rent",
        "reference": "R1",
        "createdBy": OFFICER,
        "reversesId": None,
        "balanceAfter": Decimal("-100.50"),
    }
    wire = to_wire(reversal)
    assert (wire["transactionType"], wire["direction"], wire["reversesId"]) == (
        "Reversal",
        "ReduceOwed",
        "11111111-1111-4111-8111-111111111111",
    )
    json.dumps(wire, default=str)  # plain JSON types apart from money


def test_posted_at_is_written_as_the_account_writes_its_times() -> None:
    from tests.unit.test_domain_account import an_account

    account = an_account(created_at=POSTED, last_updated_at=POSTED)
    transaction = posted(a_request(), posted_at=POSTED)

    assert to_wire(transaction)["postedAt"] == account_to_wire(account)["createdAt"]


def test_the_wire_enum_strings_are_the_issues_names() -> None:
    assert [t.value for t in TransactionType] == [
        "Charge",
        "Refund",
        "Payment",
        "HousingBenefit",
        "WriteOff",
        "Adjustment",
        "Reversal",
        "OpeningBalance",
    ]
    assert [d.value for d in Direction] == ["IncreaseOwed", "ReduceOwed"]


# A transaction keeps its rules however it is built (as from a stored row) ----------------


def test_a_stored_transaction_read_back_from_strings_is_the_same_transaction() -> None:
    original = posted(a_request(TransactionType.ADJUSTMENT, direction=Direction.REDUCE_OWED))
    fields = dataclasses.asdict(original)
    fields.update(transaction_type="Adjustment", direction="ReduceOwed")

    assert Transaction(**fields) == original


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"direction": Direction.REDUCE_OWED}, "direction"),  # a Charge never reduces what is owed
        ({"amount": Decimal("0.00")}, "amount"),
        ({"reverses_id": uuid.uuid4()}, "reversesId"),  # only a Reversal reverses
        ({"period_no": 2}, "periodNo"),  # not the rent week of its date
        ({"financial_year": 2025}, "periodNo"),
        ({"balance_after": Decimal("1.001")}, "balanceAfter"),
        ({"posted_at": datetime(2026, 4, 8)}, "postedAt"),
    ],
)
def test_a_transaction_that_breaks_a_rule_cannot_be_made(change: dict[str, object], field: str) -> None:
    original = posted(a_request())

    with pytest.raises(ValidationProblem) as refused:
        dataclasses.replace(original, **change)  # type: ignore[arg-type]
    assert refused.value.field == field


def test_a_reversal_without_what_it_reverses_cannot_be_made() -> None:
    reversal = reversal_of(posted(a_request()))

    with pytest.raises(ValidationProblem) as refused:
        dataclasses.replace(reversal, reverses_id=None)
    assert refused.value.field == "reversesId"


def test_a_transaction_never_changes() -> None:
    transaction = posted(a_request())

    with pytest.raises(dataclasses.FrozenInstanceError):
        transaction.amount = Decimal("1.00")  # type: ignore[misc]


def test_what_is_owed_at_each_weeks_end_adds_each_days_change_to_what_was_owed_before() -> None:
    from accounts.domain.rent_week import rent_weeks_up_to

    weeks = rent_weeks_up_to(date(2026, 4, 22), 3)  # Mondays 6, 13 and 20 April 2026
    days = {
        date(2026, 4, 6): Decimal("100.00"),  # a Monday: its own week
        date(2026, 4, 12): Decimal("-30.50"),  # a Sunday: still the first week
        date(2026, 4, 20): Decimal("-0.25"),
        date(2026, 4, 27): Decimal("999.00"),  # after the last week: counted nowhere
    }

    owed = owed_at_week_ends(Decimal("10.00"), days, weeks)

    assert [str(value) for value in owed] == ["79.50", "79.50", "79.25"]
    assert owed_at_week_ends(Decimal("0.00"), {}, weeks) == [Decimal("0.00")] * 3
