"""Reading a payment file and the matching rules: what is a payment, what is rejected and why, where a payment goes."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from accounts.domain.account import Account, AccountStatus, AccountType
from accounts.domain.payment_file import (
    HEADER,
    PaymentFileRefused,
    PaymentLine,
    RejectedLine,
    SuspenseReason,
    describe,
    payment_transaction_id,
    read_payment_file,
    suspense_item_id,
    suspense_reason,
)
from accounts.domain.payment_reference import from_serial

GOOD = from_serial(123_456_789)  # 10 digits with a good check digit


def read(text: str) -> list[PaymentLine | RejectedLine]:
    return list(read_payment_file(io.StringIO(text, newline="")))


def one(line: str) -> PaymentLine | RejectedLine:
    [parsed] = read(f"{HEADER}\n{line}\n")
    return parsed


def reason_of(line: str) -> str:
    parsed = one(line)
    assert isinstance(parsed, RejectedLine), parsed
    assert parsed.line == 2
    return parsed.reason


def an_account(**overrides: object) -> Account:
    at = datetime(2026, 1, 5, tzinfo=UTC)
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "target_type": "Tenure",
        "target_id": uuid.uuid4(),
        "account_type": AccountType.MASTER,
        "payment_reference": GOOD,
        "created_by": "officer",
        "created_at": at,
        "last_updated_by": "officer",
        "last_updated_at": at,
    }
    values.update(overrides)
    return Account(**values)  # type: ignore[arg-type]


def test_a_line_is_a_payment_with_its_bank_reference_as_its_transaction_id() -> None:
    parsed = one(f"{GOOD},125.5,2026-04-06,Paypoint,PP-000123")

    assert parsed == PaymentLine(2, GOOD, Decimal("125.50"), date(2026, 4, 6), "Paypoint", "PP-000123")
    assert isinstance(parsed, PaymentLine)
    assert (
        parsed.transaction_id
        == payment_transaction_id("PP-000123")
        == uuid.uuid5(uuid.UUID("6f1f7c2e-3a51-5b8e-9c1d-8a0e2f4b7d93"), "PP-000123")
    )
    assert parsed.transaction_id != suspense_item_id("PP-000123")
    assert payment_transaction_id("PP-000124") != parsed.transaction_id


def test_columns_may_come_in_any_order_and_case_with_spaces_and_a_byte_order_mark() -> None:
    text = "\ufeff Reference ,METHOD,paymentDate,amount,paymentreference\r\nBACS-9,Bank transfer,2026-04-07,10.00, 123 456 7890 \r\n"

    [parsed] = read(text)

    assert parsed == PaymentLine(2, "123 456 7890", Decimal("10.00"), date(2026, 4, 7), "Bank transfer", "BACS-9")
    assert isinstance(parsed, PaymentLine) and parsed.matching_reference == "1234567890"


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("", "empty"),
        ("paymentReference,amount,paymentDate,method", "missing column(s) reference"),
        ("paymentReference,amount,date,method,reference", "missing column(s) paymentDate; unknown column(s) 'date'"),
        ("paymentReference,amount,paymentDate,method,reference,note", "unknown column(s) 'note'"),
        ("paymentReference,amount,amount,paymentDate,method,reference", "repeated column(s) amount"),
        ('"paymentReference,amount', "not valid CSV"),
    ],
)
def test_a_file_whose_header_is_wrong_is_refused_whole_naming_what_is_wrong(header: str, words: str) -> None:
    lines = read_payment_file(io.StringIO(f"{header}\n{GOOD},1.00,2026-04-06,Cash,R1\n" if header else "", newline=""))

    with pytest.raises(PaymentFileRefused) as refused:
        next(lines)
    assert words in refused.value.reason
    assert HEADER in refused.value.reason


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("", "amount is missing"),
        ("abc", "amount 'abc' is not a number"),
        ("1,000.00", "amount '1,000.00' is not a number"),
        ("£5", "amount '£5' is not a number"),
        ("NaN", "amount 'NaN' is not a number"),
        ("Infinity", "amount 'Infinity' is not a number"),
        ("1e3", "amount '1e3' is not a number"),
        ("-5.00", "amount '-5.00' must be greater than zero"),
        ("0", "amount '0' must be greater than zero"),
        ("0.00", "amount '0.00' must be greater than zero"),
        ("1.005", "amount '1.005' has more than 2 decimal places"),
        ("1000000000000", "amount '1000000000000' is too large"),
    ],
)
def test_an_amount_that_is_not_money_rejects_the_line(amount: str, reason: str) -> None:
    assert reason_of(f'{GOOD},"{amount}",2026-04-06,Cash,R1') == reason


@pytest.mark.parametrize(
    ("day", "reason"),
    [
        ("", "paymentDate is missing"),
        ("06/04/2026", "paymentDate '06/04/2026' is not a date (YYYY-MM-DD)"),
        ("2026-02-30", "paymentDate '2026-02-30' is not a date (YYYY-MM-DD)"),
        ("20260406", "paymentDate '20260406' is not a date (YYYY-MM-DD)"),
        ("0001-01-01", "paymentDate '0001-01-01' is outside the years rent weeks are counted in"),
    ],
)
def test_a_date_that_is_no_date_rejects_the_line(day: str, reason: str) -> None:
    assert reason_of(f"{GOOD},1.00,{day},Cash,R1") == reason


def test_a_missing_bank_reference_or_method_rejects_the_line() -> None:
    assert reason_of(f"{GOOD},1.00,2026-04-06,Cash,").startswith("reference is missing")
    assert reason_of(f"{GOOD},1.00,2026-04-06,  ,R1") == "method is missing"
    assert reason_of(f"{GOOD},1.00,2026-04-06,Cash,{'R' * 101}") == "reference is longer than 100 characters"
    assert reason_of(f"{GOOD},1.00,2026-04-06,Cash\u0007,R1") == "holds characters that are not printable"
    assert reason_of(f"{GOOD},1.00,2026-04-06,Cash,R1,extra") == "has 6 fields; the header has 5"
    assert reason_of(f"{GOOD},1.00,2026-04-06,Ca\ufffdsh,R1") == "is not UTF-8 text"


def test_a_missing_payment_reference_is_still_money_and_goes_to_suspense() -> None:
    parsed = one(",1.00,2026-04-06,Cash,R1")

    assert isinstance(parsed, PaymentLine)
    assert suspense_reason(parsed, None) is SuspenseReason.NO_ACCOUNT
    assert describe(SuspenseReason.NO_ACCOUNT, "") == "no payment reference was given"


def test_line_numbers_count_the_file_s_lines_blank_and_quoted_ones_included() -> None:
    text = (
        f"{HEADER}\n"
        f"{GOOD},1.00,2026-04-06,Cash,R1\n"
        "\n"
        f'{GOOD},2.00,2026-04-06,"Cash,\nat the counter",R2\n'
        f"{GOOD},x,2026-04-06,Cash,R3\n"
        f'{GOOD},1.00,2026-04-06,"Ca"sh,R4\n'
        f"{GOOD},4.00,2026-04-06,Cash,R5\n"
    )

    parsed = read(text)

    assert [(p.line, type(p).__name__) for p in parsed] == [
        (2, "PaymentLine"),
        (4, "RejectedLine"),  # a method over two lines: not printable
        (6, "RejectedLine"),
        (7, "RejectedLine"),
        (8, "PaymentLine"),
    ]
    assert isinstance(parsed[3], RejectedLine) and parsed[3].reason.startswith("is not valid CSV")


def test_a_quote_never_closed_rejects_its_line_and_swallows_no_more_than_the_rest() -> None:
    parsed = read(f'{HEADER}\n{GOOD},1.00,2026-04-06,Cash,R1\n{GOOD},1.00,2026-04-06,"Cash,R2\n{GOOD},1.00,x,y,z\n')

    assert [p.line for p in parsed] == [2, 3]
    assert isinstance(parsed[1], RejectedLine) and "not valid CSV" in parsed[1].reason


def test_the_file_is_read_as_it_is_streamed_not_held() -> None:
    def lines() -> object:
        yield HEADER + "\n"
        for n in range(10**9):  # far more than memory could hold
            yield f"{GOOD},1.00,2026-04-06,Cash,R{n}\n"

    reader = read_payment_file(lines())  # type: ignore[arg-type]
    first = [next(reader) for _ in range(3)]

    assert [p.line for p in first] == [2, 3, 4]


def payment(reference: str = GOOD) -> PaymentLine:
    return PaymentLine(2, reference, Decimal("1.00"), date(2026, 4, 6), "Cash", "R1")


def test_a_payment_whose_account_is_active_is_posted() -> None:
    assert suspense_reason(payment(), an_account()) is None
    suspended = an_account(account_status=AccountStatus.SUSPENDED)
    assert suspense_reason(payment(), suspended) is None


def test_a_payment_to_an_ended_account_goes_to_suspense() -> None:
    ended = an_account(account_status=AccountStatus.ENDED)

    assert suspense_reason(payment(), ended) is SuspenseReason.ACCOUNT_ENDED
    assert describe(SuspenseReason.ACCOUNT_ENDED, GOOD) == f"the account with payment reference {GOOD} has ended"


def test_a_reference_no_account_has_is_told_apart_from_a_mistyped_digit() -> None:
    mistyped = GOOD[:3] + str((int(GOOD[3]) + 1) % 10) + GOOD[4:]
    swapped = GOOD[:3] + GOOD[4] + GOOD[3] + GOOD[5:]

    assert suspense_reason(payment(mistyped), None) is SuspenseReason.CHECK_DIGIT_FAILS
    assert suspense_reason(payment(swapped), None) is SuspenseReason.CHECK_DIGIT_FAILS
    assert "check digit fails" in describe(SuspenseReason.CHECK_DIGIT_FAILS, mistyped)
    assert suspense_reason(payment(from_serial(987_654_321)), None) is SuspenseReason.NO_ACCOUNT
    assert suspense_reason(payment("123456789"), None) is SuspenseReason.NO_ACCOUNT  # 9 digits: no check digit
    assert suspense_reason(payment("HB-REF"), None) is SuspenseReason.NO_ACCOUNT


def test_an_account_found_by_a_legacy_reference_is_posted_to_whatever_its_check_digit() -> None:
    legacy = "2000000001"  # the housing system's own formula, not Damm
    assert suspense_reason(payment(legacy), None) is SuspenseReason.CHECK_DIGIT_FAILS

    assert suspense_reason(payment(legacy), an_account(payment_reference=legacy)) is None
