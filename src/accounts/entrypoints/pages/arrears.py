"""`/arrears`: the arrears worklist as a caseworker reads it: filtered, sorted, paged, each row a way into
its account.

The page asks the worklist service exactly what `GET /api/v1/arrears-worklist` asks, through the same
parsing (`http.worklist.worklist_query`: sort names, directions, cursors), and takes the same parameter
names, so a filtered, sorted view is a URL to bookmark and works without JavaScript (a GET form).
What a person typed that cannot be a filter is shown back with a GOV.UK error summary and a 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from accounts.domain.account import RentGroupType
from accounts.domain.arrears import WorklistEntry, WorklistSort
from accounts.domain.errors import ValidationProblem
from accounts.entrypoints.http.common import services
from accounts.entrypoints.http.problems import ApiProblem
from accounts.entrypoints.http.worklist import LIMIT, encode_cursor, worklist_query
from accounts.entrypoints.pages.common import long_date, money, render, short_date, viewer
from accounts.service.arrears import DEFAULT_PAGE, WorklistPage, WorklistQuery

router = APIRouter(include_in_schema=False)

PAGE_SIZE = DEFAULT_PAGE
RENT_GROUPS = [group.value for group in RentGroupType]

# The filters' fields: the query parameter (as the API names it), the input's id, and what to ask for.
RENT_GROUP, MIN_WEEKS, MIN_OWED = "rentGroupType", "minWeeksInArrears", "minAmountOwed"
FIELD_IDS = {RENT_GROUP: "rent-group", MIN_WEEKS: "min-weeks", MIN_OWED: "min-owed"}


@dataclass(frozen=True)
class Column:
    """A sortable column: the sort it asks for and how each direction reads."""

    sort: WorklistSort
    heading: str
    descending: str  # what desc puts first, as a caseworker would say it
    ascending: str


COLUMNS = {
    column.sort: column
    for column in (
        Column(WorklistSort.AMOUNT_OWED, "Amount owed", "largest first", "smallest first"),
        Column(WorklistSort.WEEKS_IN_ARREARS, "Weeks in arrears", "most first", "fewest first"),
        Column(WorklistSort.DAYS_SINCE_LAST_PAYMENT, "Days since", "longest first", "shortest first"),
    )
}


def unbroken(text: str) -> str:
    """A date in a narrow column, never broken over two lines."""
    return text.replace(" ", "\u00a0")


def _number(text: str, field: str, places: int | None) -> tuple[Decimal | None, str | None]:
    """A filter's number as typed (blank is no filter); or why it cannot be one, as the error message says it."""
    text = text.strip().removeprefix("£").replace(",", "")
    if not text:
        return None, None
    what = "Minimum weeks" if field == MIN_WEEKS else "Minimum amount"
    example = "like 4 or 2.5" if field == MIN_WEEKS else "like 500 or 1250.50"
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        return None, f"Enter {what.lower()} as a number, {example}"
    if value < 0:
        return None, f"{what} must be 0 or more"
    if value >= LIMIT:
        return None, f"{what} must be less than {LIMIT:,}"
    if places is not None and value != value.quantize(Decimal(1).scaleb(-places)):
        return None, f"Enter {what.lower()} in pounds and pence, {example}"
    return value, None


def _rent_group(text: str) -> tuple[RentGroupType | None, str | None]:
    if not text:
        return None, None
    try:
        return RentGroupType(text), None
    except ValueError:
        return None, "Select a rent group from the list"


def _problem_messages(problem: ApiProblem) -> list[str]:
    """A parameter the form does not set (sort, direction, a page link) that is wrong: what to do about it."""
    names = {param.get("name") for param in problem.invalid_params or []}
    if names & {"cursor", "before"}:
        return ["The link to this page is out of date: go back to the first page of the worklist"]
    return ["The order asked for is not one this worklist has: choose a column heading to sort by it"]


@router.get("/arrears")
def arrears_page(
    request: Request,
    rentGroupType: str = "",
    minWeeksInArrears: str = "",
    minAmountOwed: str = "",
    sortBy: str | None = None,
    direction: str | None = None,
    cursor: str | None = None,
    before: str | None = None,
) -> Response:
    who = viewer(request)
    typed = {RENT_GROUP: rentGroupType, MIN_WEEKS: minWeeksInArrears, MIN_OWED: minAmountOwed}
    rent_group, group_error = _rent_group(rentGroupType)
    min_weeks, weeks_error = _number(minWeeksInArrears, MIN_WEEKS, None)
    min_owed, owed_error = _number(minAmountOwed, MIN_OWED, 2)
    errors = {
        field: message
        for field, message in ((RENT_GROUP, group_error), (MIN_WEEKS, weeks_error), (MIN_OWED, owed_error))
        if message
    }
    other_errors: list[str] = []
    query: WorklistQuery | None = None
    try:
        query = worklist_query(rent_group, min_weeks, min_owed, sortBy, direction, PAGE_SIZE, cursor, before)
    except ApiProblem as problem:
        other_errors = _problem_messages(problem)
    page: WorklistPage | None = None
    if query is not None and not errors:
        try:
            page = services(request).worklist.page(query)
        except ValidationProblem:
            other_errors = ["The link to this page is out of date: go back to the first page of the worklist"]
    context = _context(typed, errors, other_errors, query, page)
    return render(request, "arrears.html", context, status=400 if page is None else 200, who=who)


def _context(
    typed: dict[str, str],
    errors: dict[str, str],
    other_errors: list[str],
    query: WorklistQuery | None,
    page: WorklistPage | None,
) -> dict[str, Any]:
    sort = query.sort if query else WorklistSort.AMOUNT_OWED
    descending = query.descending if query else True
    filters = {name: value for name, value in typed.items() if value and name not in errors}

    def link(**more: str) -> str:
        return "/arrears?" + urlencode({**filters, **more})

    order = {"sortBy": sort.value, "direction": "desc" if descending else "asc"}
    headings = {}
    for column in COLUMNS.values():
        current = column.sort is sort
        flip = current and descending  # a second choice of the sorted column turns it round
        headings[column.sort.value] = {
            "text": column.heading,
            "href": link(sortBy=column.sort.value, direction="asc" if flip else "desc"),
            "aria_sort": ("descending" if descending else "ascending") if current else None,
            "action": f"sort {column.ascending if flip else column.descending}",
        }
    column = COLUMNS[sort]
    summary = [{"text": message, "href": f"#{FIELD_IDS[field]}"} for field, message in errors.items()]
    summary += [{"text": message, "href": "#results"} for message in other_errors]
    previous = next_ = None
    if page is not None and page.previous_page is not None:
        previous = link(**order, before=encode_cursor(sort, descending, page.previous_page))
    if page is not None and page.next_page is not None:
        next_ = link(**order, cursor=encode_cursor(sort, descending, page.next_page))
    return {
        "title": "Arrears worklist",
        "typed": typed,
        "errors": errors,
        "error_summary": summary,
        "field_ids": FIELD_IDS,
        "rent_groups": RENT_GROUPS,
        "order": order,
        "headings": headings,
        "caption": f"Accounts in arrears by {column.heading.lower()}, "
        f"{column.descending if descending else column.ascending}",
        "rows": [_row(entry) for entry in page.entries] if page else None,
        "as_of": long_date(page.as_of.date()) if page else None,
        "previous": previous,
        "next": next_,
        "clear": "/arrears?" + urlencode(order),
    }


@dataclass(frozen=True, slots=True)
class Row:
    """One account as a caseworker reads it, all text (the template escapes it). Attributes, not a dict: Jinja
    looks an attribute up first, and fifty rows of seven cells pay for each lookup that fails."""

    href: str
    payment_reference: str
    address: str
    tenants: str
    amount_owed: str
    weeks: str | None  # None: no weekly charge to measure by
    last_payment: str | None  # None: never paid
    days_since: int


def _row(entry: WorklistEntry) -> Row:
    tenure = entry.tenure
    last = None
    if entry.last_payment_date is not None:
        last = f"{money(entry.last_payment_amount)} on {unbroken(short_date(entry.last_payment_date))}"
    return Row(
        href=f"/accounts/{entry.account_id}",
        payment_reference=entry.payment_reference,
        address=(tenure.full_address if tenure else None) or "Not known",
        tenants=", ".join(tenant.full_name for tenant in tenure.primary_tenants) if tenure else "",
        amount_owed=money(entry.amount_owed),
        weeks=None if entry.weeks_in_arrears is None else str(entry.weeks_in_arrears),
        last_payment=last,
        days_since=entry.days_since_last_payment,
    )
