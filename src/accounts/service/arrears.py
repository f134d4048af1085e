"""The arrears worklist: a page of accounts in arrears, in the order a caseworker works through them.

The storage answers with accounts in order of a stored figure (`AccountRepository.worklist`,
served by an index); the domain works out each account's figures as of today
(`domain.arrears.worklist_entry`). A page ends with the place of its last entry (the stored
value sorted by and the account id), which the next page starts after: a keyset, so a page
costs the same however deep in the list it is, and an account changed between two pages is
neither listed twice nor skipped unless its own figure moved it across the place. The page
before is the same keyset read the other way from the place of a page's first entry (the order
is total, ties broken by the account id, so read backwards it is exactly reversed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from accounts.domain.account import Account, RentGroupType
from accounts.domain.arrears import WorklistEntry, WorklistSort, worklist_entry
from accounts.domain.errors import ValidationProblem
from accounts.service.accounts import utc_now
from accounts.service.unit_of_work import UnitOfWork, WorklistCursor

DEFAULT_PAGE = 50
MAX_PAGE = 1000


@dataclass(frozen=True)
class WorklistQuery:
    """What a caseworker asks for: which accounts, in which order, how many, after which place."""

    rent_group: RentGroupType | None = None
    min_weeks: Decimal | None = None
    min_owed: Decimal | None = None
    sort: WorklistSort = WorklistSort.AMOUNT_OWED
    descending: bool = True
    limit: int = DEFAULT_PAGE
    after: WorklistCursor | None = None
    before: WorklistCursor | None = None  # the page ending just before this place (a previous page)


@dataclass(frozen=True)
class WorklistPage:
    as_of: datetime  # today, as the days since the last payment and this week's charge are counted
    entries: list[WorklistEntry]
    next_page: WorklistCursor | None  # the place the next page starts after; None on the last
    previous_page: WorklistCursor | None = None  # the place the page before ends before; None on the first


def check(query: WorklistQuery) -> None:
    """Refuse what could never be answered, naming the parameter (400)."""
    if query.min_weeks is not None and (not query.min_weeks.is_finite() or query.min_weeks < 0):
        raise ValidationProblem("minWeeksInArrears", "must be a number of weeks, 0 or more", query.min_weeks)
    if query.min_owed is not None and (not query.min_owed.is_finite() or query.min_owed < 0):
        raise ValidationProblem("minAmountOwed", "must be an amount, 0 or more", query.min_owed)
    if not 1 <= query.limit <= MAX_PAGE:
        raise ValidationProblem("limit", f"must be between 1 and {MAX_PAGE}", query.limit)
    if query.after is not None and query.before is not None:
        raise ValidationProblem("cursor", "a page comes after one place or before another, not both", None)


@dataclass
class WorklistService:
    uow_factory: Callable[..., UnitOfWork]
    clock: Callable[[], datetime] = utc_now

    def page(self, query: WorklistQuery) -> WorklistPage:
        check(query)
        with self.uow_factory(read_only=True) as uow:
            if query.before is not None:
                found = self._read(uow, query, not query.descending, query.before)[::-1]
                more_before, more_after = len(found) > query.limit, True
                found = found[-query.limit :]
                if len(found) < query.limit:  # less than a page before the place: the first page, filled up
                    query = replace(query, before=None)
            if query.before is None:
                found = self._read(uow, query, query.descending, query.after)
                more_before, more_after = query.after is not None, len(found) > query.limit
                found = found[: query.limit]
        now = self.clock()
        entries = [worklist_entry(account, owed, now.date()) for account, owed in found]
        return WorklistPage(
            now,
            entries,
            self._place(entries[-1], query) if entries and more_after else None,
            self._place(entries[0], query) if entries and more_before else None,
        )

    @staticmethod
    def _read(
        uow: UnitOfWork, query: WorklistQuery, descending: bool, after: WorklistCursor | None
    ) -> list[tuple[Account, Decimal]]:
        return uow.accounts.worklist(
            query.rent_group,
            query.min_weeks,
            query.min_owed,
            query.sort,
            descending,
            after,
            query.limit + 1,  # one more: whether there is a page beyond
        )

    @staticmethod
    def _place(entry: WorklistEntry, query: WorklistQuery) -> WorklistCursor:
        return WorklistCursor(entry.sort_value(query.sort), entry.account_id)
