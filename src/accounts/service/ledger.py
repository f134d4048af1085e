"""Ledger use cases: posting, reversing, the statement and the check that balances add up.

A posting is an account change like any other (`change_account` with the transaction that
explains the new balance), so the account's event, its interim row and the posting's own
event are written at commit by the unit of work, as for every change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TypeVar
from uuid import UUID, uuid4

from accounts.domain import ledger
from accounts.domain.account import Account, Actor, Change
from accounts.domain.arrears import WorklistEntry, worklist_entry
from accounts.domain.ledger import LedgerConflict, PostingRequest, Transaction
from accounts.domain.polarity import ZERO, Polarity
from accounts.domain.rent_week import RentWeek, rent_weeks_up_to
from accounts.service.accounts import (
    AccountNotFound,
    Clock,
    PreconditionFailed,
    etag_matches,
    post_to_account,
    record_posting,
    target_type_of,
    utc_now,
)
from accounts.service.unit_of_work import LedgerDifference, StatementCursor, UnitOfWork, in_transaction

log = logging.getLogger(__name__)
T = TypeVar("T")


class TransactionNotFound(Exception):
    def __init__(self, account_id: UUID, transaction_id: UUID) -> None:
        self.transaction_id = transaction_id
        super().__init__(f"account {account_id} has no transaction {transaction_id}")


@dataclass(frozen=True)
class Posted:
    """What a posting answers: the transaction, the account after it, and whether it was posted now
    (False: the same id was posted before with the same content, and this is that transaction)."""

    transaction: Transaction
    account: Account
    created: bool


@dataclass(frozen=True)
class StatementLine:
    transaction: Transaction
    balance_after: Decimal  # the running balance in statement order


@dataclass(frozen=True)
class Statement:
    """One page of an account's statement, oldest first (transaction date, then posting order)."""

    account: Account
    opening_balance: Decimal  # before the page's first line
    closing_balance: Decimal  # after its last line
    lines: list[StatementLine]
    next_page: StatementCursor | None


@dataclass(frozen=True)
class WeekBalance:
    week: RentWeek
    balance: Decimal  # the account's balance at the end of the week (its Sunday), as the statement counts it


@dataclass(frozen=True)
class AccountOverview:
    """An account as a caseworker reads it: its figures today (as the worklist works them out) and its
    balance at the end of each of the last rent weeks, oldest first, the current week last."""

    account: Account
    figures: WorklistEntry
    weeks: list[WeekBalance]


CHART_WEEKS = 52


@dataclass
class LedgerService:
    uow_factory: Callable[..., UnitOfWork]
    clock: Clock = utc_now
    attempts: int = 5

    def post(
        self,
        account_id: UUID,
        request: PostingRequest,
        actor: Actor,
        correlation_id: UUID,
        if_match: str | None = None,
    ) -> Posted:
        """Post one transaction; the same id again is answered with the original (same content) or refused."""
        ledger.validate_request(request)

        def run(uow: UnitOfWork) -> Posted:
            account = _current(uow, account_id, if_match)
            existing = uow.transactions.get(request.id)
            if existing is not None:
                if not ledger.same_request(existing, request, account_id=account_id):
                    raise _id_taken(existing)
                return Posted(existing, account, False)
            transaction, new = post_to_account(uow, account, request, self._change(actor, correlation_id))
            return Posted(transaction, new, True)

        return self._in_transaction(run)

    def reverse(
        self,
        account_id: UUID,
        transaction_id: UUID,
        reason: str,
        actor: Actor,
        correlation_id: UUID,
        reversal_id: UUID | None = None,
        if_match: str | None = None,
    ) -> Posted:
        """Post the Reversal of one of the account's transactions (once; a retry gets the same Reversal)."""

        def run(uow: UnitOfWork) -> Posted:
            account = _current(uow, account_id, if_match)
            original = uow.transactions.get(transaction_id)
            if original is None or original.account_id != account_id:
                raise TransactionNotFound(account_id, transaction_id)
            earlier = uow.transactions.reversal_of(transaction_id)
            if (
                earlier is not None
                and reversal_id in (None, earlier.id)
                and ledger.same_reversal(earlier, original_id=transaction_id, reason=reason)
            ):
                return Posted(earlier, account, False)  # a retry: the Reversal it asked for
            ledger.refuse_second_reversal(original, earlier)
            wanted = reversal_id or uuid4()
            if (taken := uow.transactions.get(wanted)) is not None:
                raise _id_taken(taken)
            change = self._change(actor, correlation_id)
            reversal = ledger.reverse(
                original,
                reversal_id=wanted,
                reason=reason,
                polarity=target_type_of(uow, account.target_type).polarity,
                balance_before=account.account_balance,
                created_by=actor.label,
                posted_at=change.at,
                transaction_date=change.at.date(),
            )
            new = record_posting(uow, account, reversal, change)
            return Posted(reversal, new, True)

        return self._in_transaction(run)

    def transaction(self, account_id: UUID, transaction_id: UUID) -> Transaction:
        with self.uow_factory(read_only=True) as uow:
            found = uow.transactions.get(transaction_id)
        if found is None or found.account_id != account_id:
            raise TransactionNotFound(account_id, transaction_id)
        return found

    def statement(
        self,
        account_id: UUID,
        *,
        from_date: date | None = None,
        to_date: date | None = None,
        after: StatementCursor | None = None,
        limit: int = 100,
    ) -> Statement:
        """A page of the statement: its opening balance is everything before its first line."""
        with self.uow_factory(read_only=True) as uow:
            account = uow.accounts.get(account_id)
            if account is None:
                raise AccountNotFound(account_id)
            polarity = target_type_of(uow, account.target_type).polarity
            rows = uow.transactions.page(account_id, from_date=from_date, to_date=to_date, after=after, limit=limit + 1)
            # Everything before the page: up to and including the row the cursor names, or before `from`.
            start = StatementCursor(after.transaction_date, after.position + 1) if after else None
            owed = uow.transactions.owed_before(account_id, start or StatementCursor(from_date or date.min, 0))
        more = len(rows) > limit
        rows = rows[:limit]
        opening = _balance(owed, polarity)
        lines, balance = [], opening
        for _, transaction in rows:
            balance = balance + transaction.balance_change(polarity) + ZERO
            lines.append(StatementLine(transaction, balance))
        return Statement(account, opening, balance, lines, rows[-1][0] if more else None)

    def overview(self, account_id: UUID, *, weeks: int = CHART_WEEKS) -> AccountOverview:
        """The account, its worklist figures, and its balance at the end of the last `weeks` rent weeks
        (from the ledger in one read: what was owed before them, and what each day since added)."""
        today = self.clock().date()
        rent_weeks = rent_weeks_up_to(today, weeks)
        with self.uow_factory(read_only=True) as uow:
            account = uow.accounts.get(account_id)
            if account is None:
                raise AccountNotFound(account_id)
            target_type = target_type_of(uow, account.target_type)
            daily = uow.transactions.owed_by_day(account_id, rent_weeks[0].starts, rent_weeks[-1].ends)
        owed = ledger.owed_at_week_ends(daily.before, daily.days, rent_weeks)
        balances = [
            WeekBalance(week, _balance(at_end, target_type.polarity))
            for week, at_end in zip(rent_weeks, owed, strict=True)
        ]
        figures = worklist_entry(account, target_type.amount_owed(account.account_balance), today)
        return AccountOverview(account, figures, balances)

    def verify(self) -> Iterator[LedgerDifference]:
        """Every account whose balance is not the sum of its transactions (none, when all is well)."""
        with self.uow_factory(read_only=True) as uow:
            yield from uow.transactions.differences()

    def _change(self, actor: Actor, correlation_id: UUID) -> Change:
        return Change(actor=actor, correlation_id=correlation_id, at=self.clock())

    def _in_transaction(self, run: Callable[[UnitOfWork], T]) -> T:
        """Another posting that won a race (the account, the same id) is seen on the next attempt:
        its transaction answers a retry, and an If-Match it outdated is a 412 there."""
        return in_transaction(self.uow_factory, run, self.attempts, "a posting")


def _current(uow: UnitOfWork, account_id: UUID, if_match: str | None) -> Account:
    # Held until commit: postings to one account queue instead of losing races they retry.
    account = uow.accounts.get(account_id, for_update=True)
    if account is None:
        raise AccountNotFound(account_id)
    if if_match is not None and not etag_matches(if_match, account):
        raise PreconditionFailed(f"If-Match {if_match} is not the account's current version")
    return account


def _id_taken(existing: Transaction) -> LedgerConflict:
    return LedgerConflict("id", f"{existing.id} is already a different transaction; choose a new id")


def _balance(owed: Decimal, polarity: Polarity) -> Decimal:
    return (-owed if polarity is Polarity.NEGATIVE_IS_ARREARS else owed) + ZERO
