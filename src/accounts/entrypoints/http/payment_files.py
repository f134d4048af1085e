"""Payment files and suspense over HTTP: import a file, list what is in suspense, propose and approve.

`POST /payment-files` takes the CSV itself as the body (`text/csv`), up to a limit of its own
(ACCOUNTS_MAX_PAYMENT_FILE_BYTES; the general body limit lets this route through up to it). The
body is streamed into a spooled temporary file as it arrives (held in memory up to a megabyte,
on disk beyond), so nothing is posted from a file that turns out too large, and the import then
reads it a line at a time.
"""

from __future__ import annotations

import io
import re
import tempfile
from datetime import date
from typing import Annotated, Any
from uuid import UUID

import pydantic
from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from accounts.domain.ledger import to_wire
from accounts.domain.payment_file import HEADER, PaymentFileRefused
from accounts.domain.suspense import SameApprover, SuspenseConflict, SuspenseItem
from accounts.domain.values import iso as _iso
from accounts.entrypoints.http.common import (
    correlation,
    in_thread,
    json_request_body,
    json_response,
    media_type,
    model_from_json,
    services,
    writer,
)
from accounts.entrypoints.http.cursors import bad_cursor, opaque, parts_of
from accounts.entrypoints.http.problems import ApiProblem, problem_responses
from accounts.entrypoints.http.reads import authorise_read, parse_uuid
from accounts.service.payment_files import ImportReport, SuspenseItemNotFound
from accounts.service.unit_of_work import SuspenseCursor

PAYMENT_FILES_PATH = "/api/v1/payment-files"
CSV_TYPE = "text/csv"
MAX_PAGE = 1000
SPOOL_IN_MEMORY = 1024 * 1024  # a file above this is spooled to disk while it arrives
ItemId = Annotated[str, Path(description="The suspense item's id", json_schema_extra={"format": "uuid"})]


def too_large(limit: int) -> str:
    """The 413's words: the limit, and the setting that moves it."""
    return (
        f"a payment file must be at most {limit:,} bytes ({limit / 1024 / 1024:g} MB, ACCOUNTS_MAX_PAYMENT_FILE_BYTES)"
    )


class ProposalIn(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    accountId: UUID = pydantic.Field(description="The account the payment belongs to")


class SuspenseItemOut(pydantic.BaseModel):
    id: UUID
    paymentReference: str
    amount: float
    paymentDate: date
    method: str
    reference: str
    reason: str
    reasonDescription: str
    createdAt: str
    status: str
    proposedAccountId: UUID | None = None
    proposedBy: str | None = None
    approvedBy: str | None = None
    resolvedAt: str | None = None
    transactionId: UUID | None = None


class SuspensePageOut(pydantic.BaseModel):
    items: list[SuspenseItemOut]
    nextCursor: str | None = None


class SuspendedLineOut(pydantic.BaseModel):
    line: int
    suspenseItem: SuspenseItemOut


class RejectedLineOut(pydantic.BaseModel):
    line: int
    reason: str


class ImportOut(pydantic.BaseModel):
    lines: int
    posted: int
    postedAmount: float
    suspense: int
    suspenseAmount: float
    rejected: int
    alreadyImported: int
    suspenseLines: list[SuspendedLineOut]
    rejectedLines: list[RejectedLineOut]


def item_wire(item: SuspenseItem) -> dict[str, Any]:
    return {
        "id": str(item.id),
        "paymentReference": item.payment_reference,
        "amount": item.amount,
        "paymentDate": item.payment_date.isoformat(),
        "method": item.method,
        "reference": item.reference,
        "reason": item.reason.value,
        "reasonDescription": item.reason_text,
        "createdAt": _iso(item.created_at),
        "status": item.status.value,
        "proposedAccountId": str(item.proposed_account_id) if item.proposed_account_id else None,
        "proposedBy": item.proposed_by,
        "approvedBy": item.approved_by,
        "resolvedAt": _iso(item.resolved_at),
        "transactionId": str(item.transaction_id) if item.transaction_id else None,
    }


def report_wire(report: ImportReport) -> dict[str, Any]:
    """The import's answer (the API's, and `accounts payments import --json`)."""
    return {
        "lines": report.lines,
        "posted": report.posted,
        "postedAmount": report.posted_amount,
        "suspense": report.suspense,
        "suspenseAmount": report.suspense_amount,
        "rejected": len(report.rejected),
        "alreadyImported": report.already_imported,
        "suspenseLines": [{"line": s.line, "suspenseItem": item_wire(s.item)} for s in report.suspended],
        "rejectedLines": [{"line": r.line, "reason": r.reason} for r in report.rejected],
    }


def encode_cursor(cursor: SuspenseCursor) -> str:
    return opaque([cursor.payment_date.isoformat(), cursor.reference])


def decode_cursor(text: str) -> SuspenseCursor:
    """The place a suspense page's nextCursor names; anything else is a 400 naming `cursor`."""
    day, reference = parts_of(text, 2)
    try:
        return SuspenseCursor(date.fromisoformat(day), reference)
    except ValueError:
        raise bad_cursor() from None


async def spool_body(request: Request, limit: int) -> tempfile.SpooledTemporaryFile[bytes]:
    """The body as it arrives, into a spooled file; 413 naming the limit as soon as it is passed."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiProblem(413, too_large(limit))
    # Handed to the import, which closes it.
    spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise ApiProblem(413, too_large(limit))
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


def _problem(error: Exception) -> ApiProblem:
    """The service's refusals in the API's words."""
    if isinstance(error, SuspenseItemNotFound):
        return ApiProblem(404, str(error))
    if isinstance(error, SameApprover):
        return ApiProblem(403, str(error))
    if isinstance(error, SuspenseConflict):
        return ApiProblem(409, str(error))
    if isinstance(error, PaymentFileRefused):
        return ApiProblem(400, f"not imported: {error.reason}", [{"name": "header", "reason": error.reason}])
    raise error


def add_payment_file_routes(router: APIRouter) -> None:
    @router.post(
        "/payment-files",
        response_model=ImportOut,
        responses=problem_responses(400, 401, 403, 413, 415, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    CSV_TYPE: {
                        "schema": {
                            "type": "string",
                            "description": f"A header row {HEADER} (its columns in any order and case), then a "
                            "payment a line; a line that is not a payment is rejected alone",
                            # The header the file must start with, as it is documented.
                            "pattern": f"^\ufeff?{re.escape(HEADER)}(\r?\n|$)",
                        }
                    }
                },
            }
        },
        summary="Import a payment file: each line posted, set aside in suspense, or rejected; never posted twice",
    )
    async def import_payment_file(request: Request) -> Response:
        who = writer(request)
        kind = media_type(request)
        if kind != CSV_TYPE:
            raise ApiProblem(415, f"send the payment file as {CSV_TYPE}; got {kind or 'no content type'}")
        application = services(request)
        spool = await spool_body(request, application.settings.max_payment_file_bytes)

        def run() -> ImportReport:
            # Undecodable bytes become U+FFFD: their line is rejected ("is not UTF-8 text"), the rest imported.
            with spool, io.TextIOWrapper(spool, encoding="utf-8-sig", errors="replace", newline="") as text:
                report: ImportReport = application.payment_files.import_file(text, who, correlation(request))
                return report

        try:
            report = await in_thread(run)
        except PaymentFileRefused as refused:
            raise _problem(refused) from None
        return json_response(report_wire(report))

    @router.get(
        "/suspense",
        response_model=SuspensePageOut,
        responses=problem_responses(400, 401, 403, 503),
        summary="Payments in suspense, oldest payment first, with the reason each could not be posted",
    )
    def list_suspense(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Items a page")] = 100,
        cursor: Annotated[str | None, Query(description="nextCursor of the page before")] = None,
        includeResolved: Annotated[bool, Query(description="Resolved items too")] = False,
    ) -> Response:
        authorise_read(request)
        after = decode_cursor(cursor) if cursor else None
        page = services(request).suspense.list(include_resolved=includeResolved, after=after, limit=limit)
        return json_response(
            {
                "items": [item_wire(item) for item in page.items],
                "nextCursor": encode_cursor(page.next_page) if page.next_page else None,
            }
        )

    @router.get(
        "/suspense/{id}",
        response_model=SuspenseItemOut,
        responses=problem_responses(400, 401, 403, 404, 503),
        summary="One suspense item",
    )
    def get_suspense_item(request: Request, id: ItemId) -> Response:
        authorise_read(request)
        try:
            return json_response(item_wire(services(request).suspense.get(parse_uuid(id, "id"))))
        except SuspenseItemNotFound as error:
            raise _problem(error) from None

    @router.post(
        "/suspense/{id}/proposal",
        response_model=SuspenseItemOut,
        responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 503),
        openapi_extra=json_request_body(ProposalIn),
        summary="Propose the account a payment in suspense belongs to (a second person approves)",
    )
    async def propose(request: Request, id: ItemId) -> Response:
        who = writer(request)
        item_id = parse_uuid(id, "id")
        asked = await model_from_json(request, ProposalIn, "proposal")
        try:
            item = await in_thread(services(request).suspense.propose, item_id, asked.accountId, who)
        except (SuspenseItemNotFound, SuspenseConflict) as error:
            raise _problem(error) from None
        return json_response(item_wire(item))

    @router.post(
        "/suspense/{id}/approval",
        response_model=SuspenseItemOut,
        responses=problem_responses(400, 401, 403, 404, 409, 503),
        summary="Approve the proposal (not its proposer): the payment is posted to the proposed account",
    )
    async def approve(request: Request, id: ItemId) -> Response:
        who = writer(request)
        item_id = parse_uuid(id, "id")
        try:
            resolved = await in_thread(services(request).suspense.approve, item_id, who, correlation(request))
        except (SuspenseItemNotFound, SuspenseConflict, SameApprover) as error:
            raise _problem(error) from None
        return json_response({**item_wire(resolved.item), "transaction": to_wire(resolved.transaction)})
