"""What every page shares: who is signed in (the JWT in a cookie), forms safe from cross-site requests,
and rendering a template in the GOV.UK Design System's layout. Pages translate; the services decide.

A page that cannot be shown raises `PageProblem` (or `SignInNeeded`); `install` turns them into an HTML
page with the right status: a person in a browser never sees a problem+json document or a stack trace.
"""

from __future__ import annotations

import hmac
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse, Response

from accounts.entrypoints.http.auth import Principal
from accounts.entrypoints.http.problems import ApiProblem
from accounts.settings import Settings

HERE = Path(__file__).parent
CSRF_COOKIE = "accounts_csrf"
CSRF_FIELD = "csrfToken"
SERVICE_NAME = "Housing finance accounts"

environment = jinja2.Environment(
    loader=jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader(HERE / "templates"),
            jinja2.PrefixLoader({"govuk_frontend_jinja": jinja2.PackageLoader("govuk_frontend_jinja")}),
        ]
    ),
    autoescape=True,  # names and addresses come from data: always escaped
    auto_reload=False,  # templates ship with the package: no stat of each file on every page
    undefined=jinja2.ChainableUndefined,  # as Nunjucks: the GOV.UK macros read params that may be absent
    trim_blocks=True,
    lstrip_blocks=True,
)


def money(value: Any) -> str:
    """£1,234.56, and -£12.00 for a credit: the way finance officers read amounts."""
    if value is None:
        return ""
    sign = "-" if value < 0 else ""
    return f"{sign}£{abs(value):,.2f}"


def long_date(day: date) -> str:
    """1 June 2026: the GOV.UK style for dates."""
    return f"{day.day} {day:%B %Y}"


def short_date(day: date) -> str:
    """1 Jun 2026: GOV.UK's style where space is short (tables, a chart's axis)."""
    return f"{day.day} {day:%b %Y}"


def when(at: datetime | None) -> str:
    """2 December 2026 at 14:05 UTC: the way GOV.UK writes a date and time."""
    if at is None:
        return ""
    at = at.astimezone(UTC)
    return f"{long_date(at)} at {at:%H:%M} UTC"


environment.filters.update(money=money, long_date=long_date, short_date=short_date, when=when)


def frontend_assets(settings: Settings) -> Path:
    """Where GOV.UK Frontend's CSS, fonts, images and JavaScript were unpacked."""
    return settings.frontend_assets_dir or Path(sys.prefix) / "share" / "govuk-frontend"


class PageProblem(Exception):
    """A page that cannot be shown, as the person will read it."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


class SignInNeeded(Exception):
    """No valid token in the cookie: the sign-in page, with why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Viewer:
    """Who is looking at a page, and whether they may act as well as see."""

    principal: Principal
    can_write: bool

    @property
    def name(self) -> str:
        actor = self.principal.actor
        return actor.name or actor.email


def settings_of(request: Request) -> Settings:
    return request.app.state.application.settings  # type: ignore[no-any-return]


def viewer(request: Request, *, write: bool = False) -> Viewer:
    """The signed-in person from the auth cookie: read group to see, write group to act (else 401/403 pages)."""
    settings = settings_of(request)
    token = request.cookies.get(settings.auth_cookie)
    if not token:
        raise SignInNeeded(f"You are not signed in: there is no {settings.auth_cookie} cookie.")
    try:
        principal = request.app.state.verifier.verify(token)
    except ApiProblem as problem:
        raise SignInNeeded(f"Your sign-in is no longer valid ({problem.detail.removeprefix('the ')}).") from None
    can_write = bool(principal.groups.intersection(settings.write_groups))
    if write and not can_write:
        raise PageProblem(
            403,
            "You cannot do this",
            f"To do this you need to be in one of the groups: {', '.join(settings.write_groups)}.",
        )
    if not can_write and not principal.groups.intersection(settings.read_groups):
        raise PageProblem(
            403,
            "You cannot see this",
            f"To see accounts you need to be in one of the groups: {', '.join(settings.read_groups)}.",
        )
    return Viewer(principal, can_write)


def csrf_token(request: Request) -> str:
    """This browser's form token: kept in a cookie no other site can read or send, and repeated in each form."""
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not token:
        token = request.state.new_csrf = secrets.token_urlsafe(32)
    return str(token)


async def form_of(request: Request) -> Mapping[str, Any]:
    """A posted form, once it is shown to come from one of our own pages (else a 403 page)."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise PageProblem(
            403, "This form did not come from this service", "Go back to the page, reload it and try again."
        )
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    kept = request.cookies.get(CSRF_COOKIE)
    if not (isinstance(sent, str) and kept and hmac.compare_digest(sent.encode(), kept.encode())):
        raise PageProblem(
            403,
            "This form has expired",
            "The form was not sent from this service's page. Go back, reload the page and try again.",
        )
    return form


def set_cookie(request: Request, response: Response, name: str, value: str, *, max_age: int | None = None) -> None:
    """Cookies the pages set: never readable by scripts, not sent by other sites' forms, Secure in production."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=settings_of(request).environment == "production",
        path="/",
    )


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    who: Viewer | None = None,
) -> HTMLResponse:
    """A page in the service's layout, with the form token every form on it carries."""
    page = environment.get_template(template).render(
        {
            "service_name": SERVICE_NAME,
            "path": request.url.path,
            "viewer": who,
            "csrf_field": CSRF_FIELD,
            "csrf_token": csrf_token(request),
            **(context or {}),
        }
    )
    response = HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})
    new = getattr(request.state, "new_csrf", None)
    if new:
        set_cookie(request, response, CSRF_COOKIE, new)
    return response


def local_path(target: str | None, default: str = "/arrears") -> str:
    """Where to go after signing in: only a path on this site (never //elsewhere or a full URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def install_page_problems(app: FastAPI) -> None:
    async def page_problem(request: Request, problem: Exception) -> Response:
        assert isinstance(problem, PageProblem)
        return render(
            request, "problem.html", {"title": problem.title, "detail": problem.detail}, status=problem.status
        )

    async def sign_in_needed(request: Request, problem: Exception) -> Response:
        assert isinstance(problem, SignInNeeded)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return render(request, "sign_in.html", sign_in_context(request, problem.reason, target), status=401)

    app.add_exception_handler(PageProblem, page_problem)
    app.add_exception_handler(SignInNeeded, sign_in_needed)


def sign_in_context(request: Request, reason: str | None, target: str) -> dict[str, Any]:
    settings = settings_of(request)
    return {
        "title": "Sign in",
        "reason": reason,
        "next": local_path(target),
        "cookie": settings.auth_cookie,
        "read_groups": settings.read_groups,
        "write_groups": settings.write_groups,
        "can_paste": settings.environment == "development",
    }
