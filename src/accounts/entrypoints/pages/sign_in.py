"""Signing in and out of the pages, and `/` (the worklist is where caseworkers start)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from accounts.entrypoints.http.problems import ApiProblem
from accounts.entrypoints.pages.common import (
    form_of,
    local_path,
    render,
    set_cookie,
    settings_of,
    sign_in_context,
)

router = APIRouter(include_in_schema=False)


@router.get("/")
def home() -> Response:
    return RedirectResponse("/arrears", status_code=302)


@router.get("/sign-in")
def sign_in_page(request: Request, next: str | None = None) -> Response:
    return render(request, "sign_in.html", sign_in_context(request, None, local_path(next)))


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    """Development only: a pasted token becomes the cookie the council's sign-in would have set."""
    form = await form_of(request)
    settings = settings_of(request)
    target = local_path(str(form.get("next") or ""))
    if settings.environment != "development":
        context = sign_in_context(request, "Sign in through the council's sign-in: tokens are not pasted here.", target)
        return render(request, "sign_in.html", context, status=403)
    token = str(form.get("token") or "").strip()
    error = None
    if not token:
        error = "Enter a token"
    else:
        try:
            request.app.state.verifier.verify(token)
        except ApiProblem as problem:
            error = f"That token cannot be used: {problem.detail.removeprefix('the ')}"
    if error:
        context = {**sign_in_context(request, None, target), "error": error}
        return render(request, "sign_in.html", context, status=400)
    response = RedirectResponse(target, status_code=303)
    set_cookie(request, response, settings.auth_cookie, token)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    await form_of(request)
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(settings_of(request).auth_cookie, path="/")
    return response
