"""The account activity ledger: the transactions that explain an account's balance.

Four rules, as the best ledgers keep them: a transaction never changes once posted;
its id is chosen by the client, so a retry with the same id and content is harmless;
a mistake is corrected by a Reversal, a new transaction undoing exactly one earlier
one; and the balance is always the sum of the transactions.

Every transaction type moves what the tenant owes one way (its `Direction`). Which sign
that gives the balance is the account's polarity, as for the arrears query: on a
Tenure (NegativeIsArrears) a charge makes the balance more negative.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from accounts.domain.errors import DomainError, ValidationProblem
from accounts.domain.polarity import ZERO, Polarity
from accounts.domain.rent_week import RentWeek, rent_week_of
from accounts.domain.values import iso, money, utc


class TransactionType(StrEnum):
    CHARGE = "Charge"
    REFUND = "Refund"
    PAYMENT = "Payment"
    HOUSING_BENEFIT = "HousingBenefit"
    WRITE_OFF = "WriteOff"
    ADJUSTMENT = "Adjustment"
    REVERSAL = "Reversal"
    OPENING_BALANCE = "OpeningBalance"


class Direction(StrEnum):
    """Which way a transaction moves what the tenant owes the council."""

    INCREASE_OWED = "IncreaseOwed"
    REDUCE_OWED = "ReduceOwed"

    @property
    def opposite(self) -> Direction:
        return Direction.REDUCE_OWED if self is Direction.INCREASE_OWED else Direction.INCREASE_OWED


# The types whose direction is fixed. An Adjustment carries its own; a Reversal takes the
# opposite of what it reverses; an OpeningBalance takes the sign of the balance it opens.
FIXED_DIRECTION: dict[TransactionType, Direction] = {
    TransactionType.CHARGE: Direction.INCREASE_OWED,
    TransactionType.REFUND: Direction.INCREASE_OWED,  # money paid back out: owed again
    TransactionType.PAYMENT: Direction.REDUCE_OWED,
    TransactionType.HOUSING_BENEFIT: Direction.REDUCE_OWED,
    TransactionType.WRITE_OFF: Direction.REDUCE_OWED,
}

# The types a client may post through the transactions route.
POSTABLE_TYPES = frozenset(TransactionType) - {TransactionType.REVERSAL, TransactionType.OPENING_BALANCE}


class LedgerConflict(DomainError):
    """The posting is well formed but the ledger's state refuses it (409)."""

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field} {rule}")


@dataclass(frozen=True)
class Transaction:
    """One posted transaction: immutable, explained by its type, and the balance it left."""

    id: UUID
    account_id: UUID
    transaction_type: TransactionType
    amount: Decimal
    direction: Direction
    transaction_date: date
    posted_at: datetime
    period_no: int
    financial_year: int
    description: str | None
    reference: str | None
    created_by: str
    reverses_id: UUID | None
    balance_after: Decimal

    def __post_init__(self) -> None:
        # The rules every stored transaction keeps; a client's mistakes are caught earlier,
        # by validate_request, with the names the client used.
        # Enums from their stored strings too, so `is` comparisons hold whoever built it.
        object.__setattr__(self, "transaction_type", TransactionType(self.transaction_type))
        object.__setattr__(self, "direction", Direction(self.direction))
        object.__setattr__(self, "amount", _positive_amount(self.amount))
        object.__setattr__(self, "balance_after", money(self.balance_after, "balanceAfter"))
        object.__setattr__(self, "posted_at", utc(self.posted_at, "postedAt"))
        fixed = FIXED_DIRECTION.get(self.transaction_type)
        if fixed is not None and self.direction is not fixed:
            raise ValidationProblem("direction", f"must be {fixed} on a {self.transaction_type}", self.direction)
        if (self.reverses_id is None) is (self.transaction_type is TransactionType.REVERSAL):
            raise ValidationProblem("reversesId", "is set on a Reversal and only on a Reversal", self.reverses_id)
        week = _rent_week(self.transaction_date)
        if (self.financial_year, self.period_no) != (week.financial_year, week.period_no):
            raise ValidationProblem("periodNo", f"must be the rent week of the transaction date ({week.label})")

    @property
    def owed_change(self) -> Decimal:
        """How much more the tenant owes after this transaction (negative: less)."""
        return self.amount if self.direction is Direction.INCREASE_OWED else -self.amount

    def balance_change(self, polarity: Polarity) -> Decimal:
        """How the account balance moves: on NegativeIsArrears a charge makes it more negative."""
        return -self.owed_change if polarity is Polarity.NEGATIVE_IS_ARREARS else self.owed_change

    @property
    def rent_week(self) -> RentWeek:
        return rent_week_of(self.transaction_date)


def to_wire(transaction: Transaction) -> dict[str, Any]:
    """The transaction as clients read it: camelCase, enums as strings, money as Decimal."""
    return {
        "id": str(transaction.id),
        "accountId": str(transaction.account_id),
        "transactionType": transaction.transaction_type.value,
        "amount": transaction.amount,
        "direction": transaction.direction.value,
        "transactionDate": transaction.transaction_date.isoformat(),
        "postedAt": iso(transaction.posted_at),
        "periodNo": transaction.period_no,
        "financialYear": transaction.financial_year,
        "description": transaction.description,
        "reference": transaction.reference,
        "createdBy": transaction.created_by,
        "reversesId": str(transaction.reverses_id) if transaction.reverses_id else None,
        "balanceAfter": transaction.balance_after,
    }


@dataclass(frozen=True)
class PostingRequest:
    """What a client asks to post; `createdBy` comes from the token, never from here."""

    id: UUID
    transaction_type: TransactionType
    amount: Decimal
    transaction_date: date
    direction: Direction | None = None
    description: str | None = None
    reference: str | None = None


def validate_request(request: PostingRequest) -> None:
    """Refuse a request that could never be posted, naming the field and the rule (400)."""
    kind = request.transaction_type
    if kind == TransactionType.REVERSAL:
        raise ValidationProblem("transactionType", "use the reversal route", kind)
    if kind == TransactionType.OPENING_BALANCE:
        raise ValidationProblem(
            "transactionType", "is written only by the migration and by creating an account with a balance", kind
        )
    if kind not in POSTABLE_TYPES:
        raise ValidationProblem("transactionType", "is not a transaction type", kind)
    _positive_amount(request.amount)
    if kind == TransactionType.ADJUSTMENT:
        if request.direction is None:
            raise ValidationProblem("direction", "is required on an Adjustment (IncreaseOwed or ReduceOwed)")
    elif request.direction is not None:
        raise ValidationProblem(
            "direction", f"is given only on an Adjustment: a {kind} is always {FIXED_DIRECTION[kind]}"
        )
    _rent_week(request.transaction_date)


def post(
    request: PostingRequest,
    *,
    account_id: UUID,
    polarity: Polarity,
    balance_before: Decimal,
    created_by: str,
    posted_at: datetime,
) -> Transaction:
    """The transaction `request` posts on an account whose balance is `balance_before`."""
    validate_request(request)
    direction = request.direction or FIXED_DIRECTION[request.transaction_type]
    return _transaction(
        id=request.id,
        account_id=account_id,
        transaction_type=request.transaction_type,
        amount=request.amount,
        direction=direction,
        transaction_date=request.transaction_date,
        posted_at=posted_at,
        description=request.description,
        reference=request.reference,
        created_by=created_by,
        reverses_id=None,
        polarity=polarity,
        balance_before=balance_before,
    )


def reverse(
    original: Transaction,
    *,
    reversal_id: UUID,
    reason: str,
    polarity: Polarity,
    balance_before: Decimal,
    created_by: str,
    posted_at: datetime,
    transaction_date: date,
) -> Transaction:
    """A Reversal undoing `original` exactly: the same amount the other way, the reason as its description.

    That `original` has not been reversed already is the service's to check (it needs
    the ledger); `refuse_second_reversal` says how to refuse it.
    """
    if original.transaction_type is TransactionType.REVERSAL:
        raise LedgerConflict("transactionId", "is a Reversal, and a Reversal cannot be reversed")
    if not reason or not reason.strip():
        raise ValidationProblem("reason", "must not be blank", reason)
    return _transaction(
        id=reversal_id,
        account_id=original.account_id,
        transaction_type=TransactionType.REVERSAL,
        amount=original.amount,
        direction=original.direction.opposite,
        transaction_date=transaction_date,
        posted_at=posted_at,
        description=reason,
        reference=None,
        created_by=created_by,
        reverses_id=original.id,
        polarity=polarity,
        balance_before=balance_before,
    )


def refuse_second_reversal(original: Transaction, existing_reversal: Transaction | None) -> None:
    """A transaction is reversed once: a second Reversal is a 409 naming the first."""
    if existing_reversal is not None:
        raise LedgerConflict("transactionId", f"has already been reversed by {existing_reversal.id}")


def same_request(existing: Transaction, request: PostingRequest, *, account_id: UUID | None = None) -> bool:
    """Whether a retry with an id already posted carries the same content (200 with the original; else 409).

    The direction is compared as asked: none asked means the type's own. When
    `account_id` is given, the retry must also be to the same account.
    """
    asked = request.direction or FIXED_DIRECTION.get(request.transaction_type)
    return (
        (account_id is None or existing.account_id == account_id)
        and existing.transaction_type == request.transaction_type
        and existing.amount == request.amount
        and existing.transaction_date == request.transaction_date
        and existing.direction == asked
        and existing.description == request.description
        and existing.reference == request.reference
    )


def same_reversal(existing: Transaction, *, original_id: UUID, reason: str) -> bool:
    """Whether a retried reversal with an id already posted is the same reversal (200) or not (409)."""
    return (
        existing.transaction_type is TransactionType.REVERSAL
        and existing.reverses_id == original_id
        and existing.description == reason
    )


OPENING_BALANCE_DESCRIPTION = "Opening balance"


def opening_balance(
    *,
    account_id: UUID,
    balance: Decimal,
    polarity: Polarity,
    created_by: str,
    posted_at: datetime,
    transaction_date: date,
    transaction_id: UUID,
) -> Transaction | None:
    """The OpeningBalance that brings an empty ledger to `balance`; None when there is nothing to open."""
    balance = money(balance, "accountBalance")
    if balance == ZERO:
        return None
    owed = -balance if polarity is Polarity.NEGATIVE_IS_ARREARS else balance
    return _transaction(
        id=transaction_id,
        account_id=account_id,
        transaction_type=TransactionType.OPENING_BALANCE,
        amount=abs(balance),
        direction=Direction.INCREASE_OWED if owed > ZERO else Direction.REDUCE_OWED,
        transaction_date=transaction_date,
        posted_at=posted_at,
        description=OPENING_BALANCE_DESCRIPTION,
        reference=None,
        created_by=created_by,
        reverses_id=None,
        polarity=polarity,
        balance_before=ZERO,
    )


def running_balances(opening: Decimal, transactions: Iterable[Transaction], polarity: Polarity) -> list[Decimal]:
    """The balance after each transaction, in the order given, starting from `opening`."""
    balances: list[Decimal] = []
    balance = opening
    for transaction in transactions:
        balance = balance + transaction.balance_change(polarity)
        balances.append(balance + ZERO)  # + 0.00: two places, never -0.00
    return balances


def balance_of(transactions: Iterable[Transaction], polarity: Polarity) -> Decimal:
    """The account balance the transactions add up to (what `ledger verify` checks against)."""
    return sum((transaction.balance_change(polarity) for transaction in transactions), ZERO) + ZERO


def _transaction(
    *,
    id: UUID,
    account_id: UUID,
    transaction_type: TransactionType,
    amount: Decimal,
    direction: Direction,
    transaction_date: date,
    posted_at: datetime,
    description: str | None,
    reference: str | None,
    created_by: str,
    reverses_id: UUID | None,
    polarity: Polarity,
    balance_before: Decimal,
) -> Transaction:
    """A new transaction in its rent week, with the balance it leaves."""
    week = _rent_week(transaction_date)
    balance_before = money(balance_before, "accountBalance")
    owed_change = amount if direction is Direction.INCREASE_OWED else -amount
    change = -owed_change if polarity is Polarity.NEGATIVE_IS_ARREARS else owed_change
    try:
        balance_after = money(balance_before + change, "accountBalance")
    except ValidationProblem:
        raise ValidationProblem(
            "amount", "would take the account balance beyond 1,000,000,000,000 in size", amount
        ) from None
    return Transaction(
        id=id,
        account_id=account_id,
        transaction_type=transaction_type,
        amount=amount,
        direction=direction,
        transaction_date=transaction_date,
        posted_at=posted_at,
        period_no=week.period_no,
        financial_year=week.financial_year,
        description=description,
        reference=reference,
        created_by=created_by,
        reverses_id=reverses_id,
        balance_after=balance_after,
    )


def owed_at_week_ends(before: Decimal, days: Mapping[date, Decimal], weeks: Sequence[RentWeek]) -> list[Decimal]:
    """What is owed at the end of each of `weeks` (consecutive, oldest first): `before` (all that was
    owed before the first of them) plus what each day's transactions add, up to that week's Sunday.
    Days after the last week count nowhere."""
    owed, at_ends = before, []
    by_week: dict[date, Decimal] = {}
    for day, change in days.items():
        monday = day - timedelta(days=day.weekday())
        by_week[monday] = by_week.get(monday, ZERO) + change
    for week in weeks:
        owed += by_week.get(week.starts, ZERO)
        at_ends.append(owed + ZERO)
    return at_ends


def _positive_amount(amount: Decimal) -> Decimal:
    amount = money(amount, "amount")
    if amount <= ZERO:
        raise ValidationProblem("amount", "must be greater than zero", amount)
    return amount


def _rent_week(day: date) -> RentWeek:
    if not isinstance(day, date) or isinstance(day, datetime):
        raise ValidationProblem("transactionDate", "must be a date", day)
    try:
        return rent_week_of(day)
    except ValueError:
        raise ValidationProblem("transactionDate", "is outside the years rent weeks are counted in", day) from None
