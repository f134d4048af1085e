"""`/suspense`: payments that came in but could not be posted, each with why; a finance officer proposes the
account a payment belongs to (found with the search box's own search) and a different one approves, and
only then is it posted.

The pages call what the JSON routes call (`entrypoints/http/payment_files.py`): `SuspenseService.list`,
`get`, `propose` and `approve`, with the signed-in person as the actor, so the two-person rule is the
domain's, whichever way an officer comes in. What the service refuses is shown on the item's page, in the
person's words, with the status the API would answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from accounts.domain.account import Account
from accounts.domain.errors import ValidationProblem
from accounts.domain.suspense import SameApprover, SuspenseConflict, SuspenseItem, SuspenseStatus
from accounts.entrypoints.http.common import correlation, in_thread, services
from accounts.entrypoints.http.payment_files import decode_cursor, encode_cursor
from accounts.entrypoints.http.problems import ApiProblem
from accounts.entrypoints.pages.common import PageProblem, Viewer, form_of, money, render, viewer
from accounts.service.accounts import SEARCH_LIMIT, AccountNotFound
from accounts.service.payment_files import SuspenseItemNotFound

router = APIRouter(include_in_schema=False)
PAGE = 50  # items a page of the list
NO_ITEM = (
    "Page not found",
    "There is no payment in suspense at this address. Go back to the list of payments in suspense.",
)


@dataclass(frozen=True)
class Problem:
    """What the service refused, for the error summary: the words, and the field they are about."""

    text: str
    field: str  # the id the error summary links to ("": about the whole item, no link)


def _item_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise PageProblem(404, *NO_ITEM) from None


def _account(application: Any, account_id: UUID | None) -> Account | None:
    """The account a proposal names (None: none, or it is gone: the page says so, the approval refuses)."""
    if account_id is None:
        return None
    try:
        account: Account = application.accounts.get(account_id)
    except AccountNotFound:
        return None
    return account


def _banner(application: Any, posted: str | None, proposed: str | None) -> dict[str, Any] | None:
    """What the last step did, read back from the item (so a reload says the same, and a made-up id nothing)."""
    wanted, status = (posted, SuspenseStatus.RESOLVED) if posted else (proposed, SuspenseStatus.PROPOSED)
    if not wanted:
        return None
    try:
        item = application.suspense.get(UUID(wanted))
    except (ValueError, SuspenseItemNotFound):
        return None
    if item.status is not status:
        return None
    return {
        "kind": "posted" if posted else "proposed",
        "item": item,
        "account": _account(application, item.proposed_account_id),
    }


@router.get("/suspense")
def suspense_list(
    request: Request, cursor: str | None = None, posted: str | None = None, proposed: str | None = None
) -> Response:
    who = viewer(request)
    application = services(request)
    try:
        after = decode_cursor(cursor) if cursor else None
    except ApiProblem:
        raise PageProblem(
            400, "This page of the list does not exist", "Go back to the first page of the list."
        ) from None
    page = application.suspense.list(after=after, limit=PAGE)
    wanted = {item.proposed_account_id for item in page.items if item.proposed_account_id is not None}
    accounts = {account_id: _account(application, account_id) for account_id in wanted}
    context = {
        "title": "Payments in suspense",
        "items": page.items,
        "accounts": accounts,
        "next": f"/suspense?cursor={encode_cursor(page.next_page)}" if page.next_page else None,
        "first_page": cursor is None,
        "banner": _banner(application, posted, proposed),
    }
    return render(request, "suspense.html", context, who=who)


@router.get("/suspense/{item_id}")
def suspense_item(request: Request, item_id: str, q: str = "") -> Response:
    who = viewer(request)
    return item_page(request, who, _item_id(item_id), q)


def item_page(
    request: Request, who: Viewer, item_id: UUID, q: str, problem: Problem | None = None, status: int = 200
) -> Response:
    """One payment in suspense: what came in and why it is here, its proposal, and (for a finance officer)
    approving it or finding the account to propose."""
    application = services(request)
    try:
        item: SuspenseItem = application.suspense.get(item_id)
    except SuspenseItemNotFound:
        raise PageProblem(404, *NO_ITEM) from None
    open_item = item.status is not SuspenseStatus.RESOLVED
    found = application.accounts.search(q) if (q.strip() and who.can_write and open_item) else None
    context = {
        "title": f"Payment of {money(item.amount)} in suspense",
        "item": item,
        "account": _account(application, item.proposed_account_id),
        "q": q,
        "found": found,
        "limit": SEARCH_LIMIT,
        "open": open_item,
        "problem": problem,
    }
    return render(request, "suspense_item.html", context, status=status, who=who)


async def again(request: Request, who: Viewer, item_id: UUID, q: str, problem: Problem, status: int) -> Response:
    """The item's page again, saying what was refused (in the error summary) with the API's status."""
    page: Response = await in_thread(item_page, request, who, item_id, q, problem, status)
    return page


@router.post("/suspense/{item_id}/proposal")
async def propose(request: Request, item_id: str) -> Response:
    who = viewer(request, write=True)
    form = await form_of(request)
    wanted = _item_id(item_id)
    q = str(form.get("q") or "")
    try:
        account_id = UUID(str(form.get("accountId") or ""))
    except ValueError:
        problem = Problem("Choose the account the payment belongs to", "accountId")
        return await again(request, who, wanted, q, problem, 400)
    try:
        await in_thread(services(request).suspense.propose, wanted, account_id, who.principal.actor)
    except SuspenseItemNotFound:
        raise PageProblem(404, *NO_ITEM) from None
    except ValidationProblem:
        problem = Problem("That account no longer exists: search for the account again", "account-search")
        return await again(request, who, wanted, q, problem, 400)
    except SuspenseConflict as conflict:
        problem = Problem(f"The payment cannot be placed now: {conflict}", "")
        return await again(request, who, wanted, q, problem, 409)
    return RedirectResponse(f"/suspense?proposed={wanted}", status_code=303)


@router.post("/suspense/{item_id}/approval")
async def approve(request: Request, item_id: str) -> Response:
    who = viewer(request, write=True)
    await form_of(request)
    wanted = _item_id(item_id)
    try:
        await in_thread(services(request).suspense.approve, wanted, who.principal.actor, correlation(request))
    except SuspenseItemNotFound:
        raise PageProblem(404, *NO_ITEM) from None
    except SameApprover:
        problem = Problem(
            "You proposed this account, so you cannot approve it too: a different finance officer must approve it",
            "approve",
        )
        return await again(request, who, wanted, "", problem, 403)
    except SuspenseConflict as conflict:
        problem = Problem(f"The payment cannot be approved: {conflict}", "")
        return await again(request, who, wanted, "", problem, 409)
    return RedirectResponse(f"/suspense?posted={wanted}", status_code=303)
