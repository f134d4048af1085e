"""Payment files: the CSV the bank and the paypoints send, read a line at a time.

A file has a header row naming the columns `paymentReference,amount,paymentDate,method,reference`
(in any order); a file whose columns are wrong or missing is refused whole, before anything is
posted. Each line after it is then either a payment (`PaymentLine`) or rejected with its line
number and the reason (`RejectedLine`): money that cannot be read as money, a date that is no
date, a missing bank reference. Where a payment goes (posted, or set aside in suspense) is
`suspense_reason`'s to say, once the service has looked the payment reference up.

The bank's `reference` is the payment's idempotency key: the transaction it posts has the id
`payment_transaction_id(reference)`, so a file imported twice, or two files that overlap, post
each payment once. Pure: no I/O; the lines come from whatever the caller streams.
"""

from __future__ import annotations

import csv
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import TYPE_CHECKING

from accounts.domain import payment_reference as prn
from accounts.domain.errors import DomainError
from accounts.domain.rent_week import FIRST_DAY, LAST_DAY
from accounts.domain.values import MONEY_LIMIT

if TYPE_CHECKING:
    from accounts.domain.account import Account

COLUMNS = ("paymentReference", "amount", "paymentDate", "method", "reference")
HEADER = ",".join(COLUMNS)
# As stored: account_transactions.reference is 100 characters; suspense items keep what was given.
MAX_REFERENCE = 100
MAX_PAYMENT_REFERENCE = 100
MAX_METHOD = 100
# Fixed for ever: the ids of payments already posted depend on them.
PAYMENT_NAMESPACE = uuid.UUID("6f1f7c2e-3a51-5b8e-9c1d-8a0e2f4b7d93")
SUSPENSE_NAMESPACE = uuid.UUID("0b4c1d7e-92a3-5f64-8e1b-3c7d9a2f5e60")

_AMOUNT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SPACES = re.compile(r"[\s-]+")
_REPLACEMENT = "\ufffd"  # what undecodable bytes became (the text is read with errors="replace")


class PaymentFileRefused(DomainError):
    """The file as a whole is not a payment file (its header): nothing in it is posted."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class SuspenseReason(StrEnum):
    """Why a payment could not be posted to an account, and waits in suspense for a person."""

    NO_ACCOUNT = "NoAccountWithReference"
    CHECK_DIGIT_FAILS = "CheckDigitFails"
    ACCOUNT_ENDED = "AccountEnded"


@dataclass(frozen=True, slots=True)
class PaymentLine:
    """One payment as the file gives it; `payment_reference` as given (spaces and all)."""

    line: int
    payment_reference: str
    amount: Decimal
    payment_date: date
    method: str
    reference: str

    @property
    def transaction_id(self) -> uuid.UUID:
        return payment_transaction_id(self.reference)

    @property
    def matching_reference(self) -> str:
        """The payment reference to look an account up by: what was typed, without spaces or dashes."""
        return normalise(self.payment_reference)


@dataclass(frozen=True, slots=True)
class RejectedLine:
    """A line that is no payment, with why (in words naming the column)."""

    line: int
    reason: str


def payment_transaction_id(reference: str) -> uuid.UUID:
    """The id of the Payment a bank reference posts: the same reference, the same transaction, whichever file."""
    return uuid.uuid5(PAYMENT_NAMESPACE, reference)


def suspense_item_id(reference: str) -> uuid.UUID:
    """The id of the suspense item a bank reference makes: at most one per reference."""
    return uuid.uuid5(SUSPENSE_NAMESPACE, reference)


def normalise(payment_reference: str) -> str:
    return _SPACES.sub("", payment_reference)


def looks_like_payment_reference(text: str) -> bool:
    """Whether an account could hold it (9 or 10 digits): only those are looked up."""
    return text.isascii() and text.isdigit() and len(text) in (prn.SERIAL_DIGITS, prn.SERIAL_DIGITS + 1)


def suspense_reason(payment: PaymentLine, account: Account | None) -> SuspenseReason | None:
    """Where a payment goes: None, posted to `account` (the one holding its payment reference); else why not.

    The reference is looked up first: references that came from the housing system carry the
    council's own check digit, not ours, and are matched all the same. Only a reference that no
    account has is tried against the check digit, which tells a mistyped digit from a stranger.
    """
    if account is None:
        typed = payment.matching_reference
        if len(typed) == prn.SERIAL_DIGITS + 1 and typed.isdigit() and not prn.has_valid_check_digit(typed):
            return SuspenseReason.CHECK_DIGIT_FAILS
        return SuspenseReason.NO_ACCOUNT
    if not account.is_active:
        return SuspenseReason.ACCOUNT_ENDED
    return None


def describe(reason: SuspenseReason, payment_reference: str) -> str:
    """The reason in words, for the import's answer and the suspense list."""
    typed = normalise(payment_reference)
    if reason is SuspenseReason.CHECK_DIGIT_FAILS:
        return f"no account has payment reference {typed} and its check digit fails: a digit was probably mistyped"
    if reason is SuspenseReason.ACCOUNT_ENDED:
        return f"the account with payment reference {typed} has ended"
    if not typed:
        return "no payment reference was given"
    return f"no account has payment reference {typed}"


def read_payment_file(text: Iterable[str]) -> Iterator[PaymentLine | RejectedLine]:
    """Each line of the file after its header, as a payment or a rejection, in order; streamed.

    `text` is the file's lines as `open(..., newline="")` gives them. PaymentFileRefused (before
    anything is yielded) when the header is not the payment file's. Blank lines are skipped.
    """
    reader = csv.reader(text, strict=True)
    positions = _read_header(reader)
    width = len(COLUMNS)
    while True:
        first = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield RejectedLine(first, f"is not valid CSV: {error}")
            continue
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        if len(fields) != width:
            yield RejectedLine(first, f"has {len(fields)} fields; the header has {width}")
            continue
        yield read_line(first, [fields[position] for position in positions])


def _read_header(reader: Iterator[list[str]]) -> list[int]:
    """Where each column is; PaymentFileRefused naming what is wrong with the header."""
    try:
        header = next(reader)
    except StopIteration:
        raise PaymentFileRefused(f"the file is empty: it needs the header row {HEADER}") from None
    except csv.Error as error:
        raise PaymentFileRefused(f"the header row must be {HEADER}; it is not valid CSV: {error}") from None
    names = [name.lstrip("\ufeff").strip() for name in header]
    by_lower = {name.lower(): name for name in COLUMNS}
    unknown = [name for name in names if name.lower() not in by_lower]
    seen = [by_lower[name.lower()] for name in names if name.lower() in by_lower]
    missing = [name for name in COLUMNS if name not in seen]
    repeated = sorted({name for name in seen if seen.count(name) > 1})
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:5])
        problems.append(f"unknown column(s) {shown}")
    if repeated:
        problems.append(f"repeated column(s) {', '.join(repeated)}")
    if problems:
        raise PaymentFileRefused(f"the header row must be {HEADER}: {'; '.join(problems)}")
    return [seen.index(name) for name in COLUMNS]


def read_line(line: int, fields: list[str]) -> PaymentLine | RejectedLine:
    """One line's fields, in COLUMNS order, as a payment; or the first reason it is not one."""
    payment_ref, amount_text, date_text, method, reference = (field.strip() for field in fields)
    if any(_REPLACEMENT in field for field in fields):
        return RejectedLine(line, "is not UTF-8 text")
    amount = _amount(amount_text)
    if isinstance(amount, str):
        return RejectedLine(line, amount)
    day = _date(date_text)
    if isinstance(day, str):
        return RejectedLine(line, day)
    if not reference:
        return RejectedLine(line, "reference is missing: the bank's reference makes the payment importable once")
    if len(reference) > MAX_REFERENCE:
        return RejectedLine(line, f"reference is longer than {MAX_REFERENCE} characters")
    if not method:
        return RejectedLine(line, "method is missing")
    if len(method) > MAX_METHOD:
        return RejectedLine(line, f"method is longer than {MAX_METHOD} characters")
    if len(payment_ref) > MAX_PAYMENT_REFERENCE:
        return RejectedLine(line, f"paymentReference is longer than {MAX_PAYMENT_REFERENCE} characters")
    if not payment_ref.isprintable() or not reference.isprintable() or not method.isprintable():
        return RejectedLine(line, "holds characters that are not printable")
    return PaymentLine(line, payment_ref, amount, day, method, reference)


def _amount(text: str) -> Decimal | str:
    if not text:
        return "amount is missing"
    shown = repr(text[:40])
    if not _AMOUNT.match(text):
        return f"amount {shown} is not a number"
    try:
        amount = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only what Decimal reads
        return f"amount {shown} is not a number"
    if amount <= 0:
        return f"amount {shown} must be greater than zero"
    if amount.as_tuple().exponent < -2:  # type: ignore[operator]
        return f"amount {shown} has more than 2 decimal places"
    if amount >= MONEY_LIMIT:
        return f"amount {shown} is too large"
    return amount.quantize(Decimal("0.01"))


def _date(text: str) -> date | str:
    if not text:
        return "paymentDate is missing"
    shown = repr(text[:40])
    if not _DATE.match(text):
        return f"paymentDate {shown} is not a date (YYYY-MM-DD)"
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return f"paymentDate {shown} is not a date (YYYY-MM-DD)"
    if not FIRST_DAY <= day <= LAST_DAY:
        return f"paymentDate {shown} is outside the years rent weeks are counted in"
    return day
