"""`/search`: the search box on every page: a payment reference, part of an address or a tenant's name,
and the accounts that match (`AccountService.search`, the one search the suspense page uses too)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from accounts.entrypoints.http.common import services
from accounts.entrypoints.pages.common import render, viewer
from accounts.service.accounts import SEARCH_LIMIT

router = APIRouter(include_in_schema=False)


@router.get("/search")
def search_page(request: Request, q: str = "") -> Response:
    who = viewer(request)
    result = services(request).accounts.search(q)
    title = f"Accounts matching \u2018{result.text}\u2019" if result.text else "Search accounts"
    context = {"title": title, "query": q, "result": result, "limit": SEARCH_LIMIT}
    return render(request, "search.html", context, who=who)
