"""The arrears worklist's route: accounts in arrears with a caseworker's figures, sorted and paged."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, WithJsonSchema
from starlette.responses import Response

from accounts.domain.account import RentGroupType, tenure_to_wire
from accounts.domain.arrears import WorklistEntry, WorklistSort
from accounts.entrypoints.http.common import json_response, services
from accounts.entrypoints.http.cursors import bad_cursor, opaque, parts_of
from accounts.entrypoints.http.problems import ApiProblem, problem_responses
from accounts.entrypoints.http.reads import authorise_read
from accounts.entrypoints.http.schemas import MoneyOut, TenureOut
from accounts.service.arrears import DEFAULT_PAGE, MAX_PAGE, WorklistPage, WorklistQuery
from accounts.service.unit_of_work import WorklistCursor

SORTS = {sort.value.lower(): sort for sort in WorklistSort}
SORT_NAMES = ", ".join(sort.value for sort in WorklistSort)
LIMIT = Decimal(10) ** 12  # as NUMERIC(14,2): twelve digits before the point


def _any_case(*words: str) -> str:
    """A JSON Schema pattern matching any of the words in any case, or nothing (an empty value is the default),
    as `routes.any_case`; ECMA regexes have no i flag."""
    spelled = ("".join(f"[{c.lower()}{c.upper()}]" for c in word) for word in words)
    return f"^({'|'.join(spelled)})?$"


# Module-level: the routes' annotations are resolved against this module's names.
SORT_PATTERN = _any_case(*(sort.value for sort in WorklistSort))
DIRECTION_PATTERN = _any_case("asc", "desc")
# The filters as the query reads them: plain numbers (never "NaN" or "1e3" spelled as text), an amount in pence.
WEEKS_SCHEMA: dict[str, Any] = {"type": "number", "minimum": 0, "exclusiveMaximum": float(LIMIT)}
OWED_SCHEMA: dict[str, Any] = {**WEEKS_SCHEMA, "multipleOf": 0.01}


class WorklistEntryOut(BaseModel):
    accountId: UUID
    paymentReference: str
    rentGroupType: RentGroupType | None
    amountOwed: MoneyOut = Field(description="What the tenant owes, by the target type's polarity")
    weeklyCharge: MoneyOut = Field(description="The consolidated charges as one weekly figure (52 or 53 weeks a year)")
    weeksInArrears: float | None = Field(
        description="amountOwed / weeklyCharge to one decimal; null with no weekly charge (sorted as 0)"
    )
    collectableArrears: MoneyOut = Field(
        description="amountOwed less this rent week's charge, never below 0: a week's grace for payments in transit"
    )
    lastPaymentDate: date | None
    lastPaymentAmount: MoneyOut | None
    daysSinceLastPayment: int = Field(
        description="Days since lastPaymentDate; for an account never paid, since its start date (else its creation)"
    )
    tenure: TenureOut | None


class WorklistOut(BaseModel):
    asOf: date = Field(description="The day the days and this week's charge are counted on (UTC)")
    sortBy: WorklistSort
    direction: str
    accounts: list[WorklistEntryOut]
    nextCursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


def encode_cursor(sort: WorklistSort, descending: bool, place: WorklistCursor) -> str:
    """The place, with the order it is a place in: a cursor only continues the listing it came from."""
    value = place.value.isoformat() if isinstance(place.value, date) else str(place.value)
    return opaque([sort.value, "desc" if descending else "asc", value, str(place.account_id)])


def decode_cursor(text: str, sort: WorklistSort, descending: bool) -> WorklistCursor:
    """The place a page's nextCursor names; a 400 naming `cursor` for anything else, or another order's."""
    sorted_by, direction, value, account_id = parts_of(text, 4)
    try:
        place = WorklistCursor(
            date.fromisoformat(value) if sorted_by == WorklistSort.DAYS_SINCE_LAST_PAYMENT else _finite(value),
            UUID(account_id),
        )
    except (ValueError, InvalidOperation):
        raise bad_cursor() from None
    if (sorted_by, direction) != (sort.value, "desc" if descending else "asc"):
        raise bad_cursor(f"comes from a listing by {sorted_by} {direction}: ask with the same sortBy and direction")
    return place


def _finite(text: str) -> Decimal:
    value = Decimal(text)
    if not value.is_finite() or abs(value) >= LIMIT * 1000:  # weeks reach a thousand times the largest amount
        raise ValueError(text)
    return value


def _weeks(value: Decimal | None) -> Any:
    """One decimal, exactly as worked out (never through float)."""
    return None if value is None else orjson.Fragment(str(value))


def entry_wire(entry: WorklistEntry) -> dict[str, Any]:
    return {
        "accountId": str(entry.account_id),
        "paymentReference": entry.payment_reference,
        "rentGroupType": entry.rent_group_type.value if entry.rent_group_type else None,
        "amountOwed": entry.amount_owed,
        "weeklyCharge": entry.weekly_charge,
        "weeksInArrears": _weeks(entry.weeks_in_arrears),
        "collectableArrears": entry.collectable_arrears,
        "lastPaymentDate": entry.last_payment_date.isoformat() if entry.last_payment_date else None,
        "lastPaymentAmount": entry.last_payment_amount,
        "daysSinceLastPayment": entry.days_since_last_payment,
        "tenure": tenure_to_wire(entry.tenure),
    }


def page_wire(page: WorklistPage, query: WorklistQuery) -> dict[str, Any]:
    return {
        "asOf": page.as_of.date().isoformat(),
        "sortBy": query.sort.value,
        "direction": "desc" if query.descending else "asc",
        "accounts": [entry_wire(entry) for entry in page.entries],
        "nextCursor": encode_cursor(query.sort, query.descending, page.next_page) if page.next_page else None,
    }


def sort_of(sort_by: str | None) -> WorklistSort:
    """A sortBy in any case (default amountOwed); a 400 naming `sortBy` for anything else."""
    sort = SORTS.get((sort_by or WorklistSort.AMOUNT_OWED.value).lower())
    if sort is None:
        rule = f"must be one of {SORT_NAMES}"
        raise ApiProblem(400, f"sortBy {rule}", [{"name": "sortBy", "reason": rule}])
    return sort


def descending_of(direction: str | None) -> bool:
    """asc or desc in any case (default desc: the largest debt, most weeks or most days first)."""
    order = (direction or "desc").lower()
    if order not in ("asc", "desc"):
        raise ApiProblem(400, "direction must be asc or desc", [{"name": "direction", "reason": "must be asc or desc"}])
    return order == "desc"


def worklist_query(
    rent_group: RentGroupType | None,
    min_weeks: Decimal | None,
    min_owed: Decimal | None,
    sort_by: str | None,
    direction: str | None,
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
    before: str | None = None,
) -> WorklistQuery:
    """The service's query from the parameters the route and the /arrears page take alike (400s name them).

    `cursor` is a page's nextCursor (the page after it); `before` the same kind of cursor from a page's first
    entry (the page before it), which the /arrears page's "Previous" link carries."""
    sort = sort_of(sort_by)
    descending = descending_of(direction)
    return WorklistQuery(
        rent_group=rent_group,
        min_weeks=min_weeks,
        min_owed=min_owed,
        sort=sort,
        descending=descending,
        limit=limit,
        after=decode_cursor(cursor, sort, descending) if cursor else None,
        before=decode_cursor(before, sort, descending) if before else None,
    )


def add_worklist_routes(router: APIRouter) -> None:
    @router.get(
        "/arrears-worklist",
        response_model=WorklistOut,
        responses=problem_responses(400, 401, 403, 503),
        summary="Accounts in arrears with the figures a caseworker works from, sorted and paged",
        dependencies=[Depends(authorise_read)],
    )
    def arrears_worklist(
        request: Request,
        rentGroupType: Annotated[RentGroupType | None, Query(description="Only accounts of this rent group")] = None,
        minWeeksInArrears: Annotated[
            Decimal | None,
            Query(ge=0, lt=LIMIT, allow_inf_nan=False, description="Only accounts at least this many weeks behind"),
            WithJsonSchema(WEEKS_SCHEMA),
        ] = None,
        minAmountOwed: Annotated[
            Decimal | None,
            Query(
                ge=0, lt=LIMIT, decimal_places=2, allow_inf_nan=False, description="Only accounts owing at least this"
            ),
            WithJsonSchema(OWED_SCHEMA),
        ] = None,
        sortBy: Annotated[
            str | None,
            Query(
                description=f"One of {SORT_NAMES} (any case); default amountOwed",
                json_schema_extra={"pattern": SORT_PATTERN},
            ),
        ] = None,
        direction: Annotated[
            str | None,
            Query(
                description="asc or desc (any case); default desc: the largest debt, most weeks or most days first",
                json_schema_extra={"pattern": DIRECTION_PATTERN},
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Accounts a page")] = DEFAULT_PAGE,
        cursor: Annotated[str | None, Query(description="nextCursor of the page before")] = None,
    ) -> Response:
        query = worklist_query(rentGroupType, minWeeksInArrears, minAmountOwed, sortBy, direction, limit, cursor)
        return json_response(page_wire(services(request).worklist.page(query), query))
