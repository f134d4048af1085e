"""The ledger's routes: post a transaction, reverse one, read the statement (JSON or CSV)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Path, Query, Request
from pydantic import WithJsonSchema
from starlette.responses import Response, StreamingResponse

from accounts.domain.account import etag
from accounts.domain.ledger import to_wire
from accounts.entrypoints.http.common import (
    correlation,
    in_thread,
    json_request_body,
    json_response,
    model_from_json,
    services,
    writer,
)
from accounts.entrypoints.http.cursors import bad_cursor, opaque, parts_of
from accounts.entrypoints.http.problems import ApiProblem, problem_responses
from accounts.entrypoints.http.reads import AccountId, authorise_read, parse_uuid
from accounts.entrypoints.http.schemas import Day, ReversalIn, StatementOut, TransactionIn, TransactionOut
from accounts.service.ledger import LedgerService, Posted, Statement, StatementLine
from accounts.service.unit_of_work import StatementCursor

MAX_PAGE = 1000
CSV_TYPE = "text/csv"
CSV_COLUMNS = (
    "transactionDate",
    "periodNo",
    "financialYear",
    "transactionType",
    "direction",
    "amount",
    "balanceAfter",
    "description",
    "reference",
    "id",
    "reversesId",
    "postedAt",
    "createdBy",
)
IF_MATCH = Annotated[
    str | None,
    Header(alias="If-Match", description="The account's ETag you read; 412 unless it is the current one"),
    WithJsonSchema({"type": "string"}),
]
TransactionId = Annotated[str, Path(description="The transaction id", json_schema_extra={"format": "uuid"})]


def encode_cursor(cursor: StatementCursor) -> str:
    return opaque([cursor.transaction_date.isoformat(), str(cursor.position)])


def decode_cursor(text: str) -> StatementCursor:
    """The place a statement page's nextCursor names; anything else is a 400 naming `cursor`."""
    day, position = parts_of(text, 2)
    try:
        return StatementCursor(date.fromisoformat(day), int(position))
    except ValueError:
        raise bad_cursor() from None


def line_wire(line: StatementLine) -> dict[str, Any]:
    return {**to_wire(line.transaction), "balanceAfter": line.balance_after}


def statement_wire(statement: Statement) -> dict[str, Any]:
    return {
        "accountId": str(statement.account.id),
        "openingBalance": statement.opening_balance,
        "closingBalance": statement.closing_balance,
        "transactions": [line_wire(line) for line in statement.lines],
        "nextCursor": encode_cursor(statement.next_page) if statement.next_page else None,
    }


def csv_lines(pages: Iterator[Statement]) -> Iterator[str]:
    """The whole statement as CSV, a page at a time (never held whole)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for page in pages:
        for line in page.lines:
            wire = line_wire(line)
            writer.writerow(["" if wire[name] is None else wire[name] for name in CSV_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def statement_csv(
    ledger: LedgerService,
    account_id: UUID,
    *,
    from_date: date | None = None,
    to_date: date | None = None,
    after: StatementCursor | None = None,
) -> StreamingResponse:
    """The statement as a CSV download, read and written a page at a time (the API's and the account
    page's alike). Its first page is read before answering: an unknown account is raised, not streamed."""
    first = ledger.statement(account_id, from_date=from_date, to_date=to_date, after=after, limit=MAX_PAGE)

    def pages() -> Iterator[Statement]:
        page = first
        yield page
        while page.next_page is not None:
            page = ledger.statement(
                account_id, from_date=from_date, to_date=to_date, after=page.next_page, limit=MAX_PAGE
            )
            yield page

    filename = f"statement-{first.account.payment_reference}.csv"
    return StreamingResponse(
        csv_lines(pages()),
        media_type=f"{CSV_TYPE}; charset=utf-8",
        # Names and money: kept by no cache on the way (a browser's download included).
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


def wants_csv(request: Request) -> bool:
    accepted = [part.split(";")[0].strip().lower() for part in request.headers.get("accept", "").split(",")]
    return CSV_TYPE in accepted and "application/json" not in accepted[: accepted.index(CSV_TYPE)]


def add_ledger_routes(router: APIRouter) -> None:
    def posted_response(account_id: UUID, posted: Posted) -> Response:
        transaction = posted.transaction
        headers = {
            "ETag": etag(posted.account),
            "Location": f"/api/v1/accounts/{account_id}/transactions/{transaction.id}",
        }
        return json_response(to_wire(transaction), 201 if posted.created else 200, headers)

    @router.post(
        "/accounts/{id}/transactions",
        status_code=201,
        response_model=TransactionOut,
        responses={
            200: {
                "description": "Posted before with this id and the same content: the original",
                "model": TransactionOut,
            },
            **problem_responses(400, 401, 403, 404, 409, 412, 413, 415, 503),
        },
        openapi_extra=json_request_body(TransactionIn),
        summary="Post a transaction to the account's ledger; its id makes a retry harmless",
    )
    async def post_transaction(request: Request, id: AccountId, if_match: IF_MATCH = None) -> Response:
        who = writer(request)
        account_id = parse_uuid(id, "id")
        posting = (await model_from_json(request, TransactionIn, "transaction")).to_request()
        ledger = services(request).ledger
        posted = await in_thread(ledger.post, account_id, posting, who, correlation(request), if_match)
        return posted_response(account_id, posted)

    @router.post(
        "/accounts/{id}/transactions/{transactionId}/reversal",
        status_code=201,
        response_model=TransactionOut,
        responses={
            200: {"description": "Reversed before for the same reason: that Reversal", "model": TransactionOut},
            **problem_responses(400, 401, 403, 404, 409, 412, 413, 415, 503),
        },
        openapi_extra=json_request_body(ReversalIn),
        summary="Reverse one transaction (once); a Reversal cannot be reversed",
    )
    async def reverse_transaction(
        request: Request, id: AccountId, transactionId: TransactionId, if_match: IF_MATCH = None
    ) -> Response:
        who = writer(request)
        account_id, transaction_id = parse_uuid(id, "id"), parse_uuid(transactionId, "transactionId")
        asked = await model_from_json(request, ReversalIn, "reversal")
        ledger = services(request).ledger
        posted = await in_thread(
            ledger.reverse, account_id, transaction_id, asked.reason, who, correlation(request), asked.id, if_match
        )
        return posted_response(account_id, posted)

    @router.get(
        "/accounts/{id}/transactions/{transactionId}",
        response_model=TransactionOut,
        responses=problem_responses(400, 401, 403, 404, 503),
        summary="One transaction of the account",
    )
    def get_transaction(request: Request, id: AccountId, transactionId: TransactionId) -> Response:
        authorise_read(request)
        account_id, transaction_id = parse_uuid(id, "id"), parse_uuid(transactionId, "transactionId")
        return json_response(to_wire(services(request).ledger.transaction(account_id, transaction_id)))

    @router.get(
        "/accounts/{id}/transactions",
        response_model=StatementOut,
        responses={
            200: {"content": {CSV_TYPE: {"schema": {"type": "string", "description": "The whole statement"}}}},
            **problem_responses(400, 401, 403, 404, 503),
        },
        summary="The statement: oldest first, with opening, closing and running balances; CSV with Accept: text/csv",
    )
    def statement(
        request: Request,
        id: AccountId,
        from_: Annotated[Day | None, Query(alias="from", description="First transaction date (inclusive)")] = None,
        to: Annotated[Day | None, Query(description="Last transaction date (inclusive); not before from")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Transactions a page")] = 100,
        cursor: Annotated[str | None, Query(description="nextCursor of the page before")] = None,
    ) -> Response:
        authorise_read(request)
        account_id = parse_uuid(id, "id")
        if from_ is not None and to is not None and to < from_:
            raise ApiProblem(400, "to must not be before from", [{"name": "to", "reason": "must not be before from"}])
        ledger = services(request).ledger
        after = decode_cursor(cursor) if cursor else None
        if wants_csv(request):
            return statement_csv(ledger, account_id, from_date=from_, to_date=to, after=after)
        page = ledger.statement(account_id, from_date=from_, to_date=to, after=after, limit=limit)
        return json_response(statement_wire(page))
