"""The account page: the account and its figures, its statement a page at a time with the running
balance, the statement as CSV, and its balance over the last 52 rent weeks as a chart drawn here.

Translate only: the ledger service answers (`statement`, the same pages the API's statement route
reads; `overview`, the figures and the weekly balances), and the API's statement codecs are reused:
its cursors (a page's link carries the cursors of the pages before it, so Previous is a link too)
and its CSV download.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from starlette.responses import Response

from accounts.domain.ledger import Transaction
from accounts.entrypoints.http.ledger import decode_cursor, encode_cursor, statement_csv
from accounts.entrypoints.http.problems import ApiProblem
from accounts.entrypoints.pages.chart import balance_chart
from accounts.entrypoints.pages.common import PageProblem, long_date, render, viewer
from accounts.service.accounts import AccountNotFound
from accounts.service.ledger import LedgerService, Statement
from accounts.service.unit_of_work import StatementCursor

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_PAGES = 500  # pages of cursors a link carries (a 2,000-character URL at the least)
TRAIL_SEPARATOR = "."  # not in the cursors' URL-safe base64


@dataclass(frozen=True)
class Row:
    """A statement line as the page shows it: the amount signed as it moved the balance."""

    transaction: Transaction
    amount: Decimal
    balance: Decimal


def ledger_of(request: Request) -> LedgerService:
    return request.app.state.application.ledger  # type: ignore[no-any-return]


def account_id_of(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise not_found() from None


def not_found() -> PageProblem:
    return PageProblem(
        404,
        "Account not found",
        "There is no account at this address. Check the address, or find the account on the worklist.",
    )


def trail_of(text: str | None) -> list[StatementCursor]:
    """The cursors of the statement pages before this one (the page's `page` parameter)."""
    if not text:
        return []
    parts = text.split(TRAIL_SEPARATOR)
    try:
        if len(parts) <= MAX_PAGES:
            return [decode_cursor(part) for part in parts]
    except ApiProblem:  # the API's codec refuses what no page gave
        pass
    raise PageProblem(
        404, "Page not found", "This page of the statement does not exist. Go to the account's first page."
    )


def trail_text(trail: list[StatementCursor]) -> str:
    return TRAIL_SEPARATOR.join(encode_cursor(cursor) for cursor in trail)


def size_of(text: str | None) -> int:
    """Lines a statement page (`size`): a number from 1 to 100, else the usual 20."""
    if text is not None and text.isdigit() and 1 <= int(text) <= MAX_PAGE_SIZE:
        return int(text)
    return PAGE_SIZE


def rows_of(statement: Statement) -> list[Row]:
    """Each line with the amount that moved the balance: what it adds to the line before's balance."""
    rows, before = [], statement.opening_balance
    for line in statement.lines:
        rows.append(Row(line.transaction, line.balance_after - before, line.balance_after))
        before = line.balance_after
    return rows


def page_link(account_id: UUID, trail: list[StatementCursor], size: int) -> str:
    query = [f"page={trail_text(trail)}"] if trail else []
    if size != PAGE_SIZE:
        query.append(f"size={size}")
    return f"/accounts/{account_id}" + (f"?{'&'.join(query)}" if query else "") + "#statement"


@router.get("/accounts/{id}")
def account_page(request: Request, id: str) -> Response:
    who = viewer(request)
    account_id = account_id_of(id)
    trail = trail_of(request.query_params.get("page"))
    size = size_of(request.query_params.get("size"))
    ledger = ledger_of(request)
    try:
        overview = ledger.overview(account_id)
        statement = ledger.statement(account_id, after=trail[-1] if trail else None, limit=size)
    except AccountNotFound:
        raise not_found() from None
    pagination: dict[str, Any] = {}
    if trail:
        pagination["previous"] = {"href": page_link(account_id, trail[:-1], size), "labelText": "Earlier transactions"}
    if statement.next_page is not None:
        pagination["next"] = {
            "href": page_link(account_id, [*trail, statement.next_page], size),
            "labelText": "Later transactions",
        }
    account = overview.account
    context = {
        "title": f"Account {account.payment_reference}",
        "account": account,
        "figures": overview.figures,
        "statement": statement,
        "rows": rows_of(statement),
        "page_number": len(trail) + 1,
        "pagination": pagination,
        "chart": balance_chart([(week.week.starts, week.balance) for week in overview.weeks]),
        "weeks": overview.weeks,
        "long_date": long_date,
    }
    return render(request, "account.html", context, who=who)


@router.get("/accounts/{id}/statement.csv")
def statement_download(request: Request, id: str) -> Response:
    viewer(request)
    account_id = account_id_of(id)
    try:
        return statement_csv(ledger_of(request), account_id)
    except AccountNotFound:
        raise not_found() from None
