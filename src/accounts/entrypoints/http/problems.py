"""Problem documents (RFC 9457): every error the API gives, in one shape.

Each says what was wrong in words a person can act on, and names the field and the
rule where there is one. No error path returns a stack trace or a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from accounts.domain.errors import DomainError, ValidationProblem
from accounts.domain.ledger import LedgerConflict
from accounts.service.accounts import AccountConflict, AccountNotFound, PreconditionFailed
from accounts.service.charge_runs import ChargeRunNotFound
from accounts.service.ledger import TransactionNotFound
from accounts.service.ports import TransientError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

TITLES = {
    400: "Bad request",
    401: "Unauthorised",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Request body too large",
    415: "Unsupported media type",
    500: "Internal error",
    503: "Service unavailable",
}


class InvalidParam(BaseModel):
    name: str
    reason: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    invalid_params: list[InvalidParam] | None = Field(default=None, alias="invalidParams")


class ApiProblem(Exception):
    """Raised anywhere in the HTTP layer to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        invalid_params: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.invalid_params = invalid_params
        self.headers = headers or {}


# A problem names at most this many fields and says at most this much: a body of thousands of
# unknown fields must not earn an answer many times its own size (2 MB for a 256 KB body).
MAX_INVALID_PARAMS = 25
MAX_DETAIL_CHARS = 2000


def problem_response(
    status: int,
    detail: str,
    *,
    instance: str | None = None,
    invalid_params: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    if invalid_params and len(invalid_params) > MAX_INVALID_PARAMS:
        detail = f"{len(invalid_params)} problems, the first {MAX_INVALID_PARAMS} named: {detail}"
        invalid_params = invalid_params[:MAX_INVALID_PARAMS]
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[: MAX_DETAIL_CHARS - 1] + "\u2026"
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if invalid_params:
        body["invalidParams"] = invalid_params
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI declarations of the problem documents a route can answer."""
    return {
        status: {
            "description": TITLES.get(status, "Error"),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


# Pydantic's words for a broken rule, in the words of this API's clients.
PLAIN_REASONS = {
    "missing": "is required",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "list_type": "must be a JSON array",
    "string_type": "must be a string",
    "uuid_parsing": "must be a UUID",
    "uuid_type": "must be a UUID",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "extra_forbidden": "is not a known field; check its spelling",
}
PATTERN_REASONS = {"^[0-9]{9,10}$": "must be 9 or 10 digits"}


def reason(error: Mapping[str, Any]) -> str:
    """What rule one pydantic error broke, said plainly."""
    kind = str(error.get("type", ""))
    context = error.get("ctx") or {}
    if kind == "enum" and "expected" in context:
        return f"must be one of {str(context['expected']).replace(chr(39), '')}"
    if kind == "string_pattern_mismatch":
        pattern = str(context.get("pattern", ""))
        return PATTERN_REASONS.get(pattern, f"must match the pattern {pattern}")
    return PLAIN_REASONS.get(kind) or str(error.get("msg", "is not valid")).removeprefix("Value error, ")


def problem_schemas() -> dict[str, Any]:
    """The Problem schema and what it refers to, for the document's components."""
    schema = Problem.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    return {**schema.pop("$defs", {}), "Problem": schema}


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


# The name of a route that only refuses its methods with a 405 (a path that another route's parameter
# would otherwise take: PATCH /accounts/arrears is not PATCH /accounts/{id}).
REFUSES_METHODS = "refuses_methods"


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route answers on this path (what a 405's Allow header must list): for each method,
    the first route that takes the path with it decides, as the router does."""
    path = scope.get("path", "")
    deciding: dict[str, Route] = {}
    for route in app.router.routes:
        if isinstance(route, Route) and route.methods and route.path_regex.match(path):
            for method in route.methods:
                deciding.setdefault(method, route)
    return sorted(method for method, route in deciding.items() if route.name != REFUSES_METHODS)


def install(app: FastAPI) -> None:
    async def api_problem(request: Request, error: Exception) -> Response:
        assert isinstance(error, ApiProblem)
        return problem_response(
            error.status,
            error.detail,
            instance=request.url.path,
            invalid_params=error.invalid_params,
            headers=error.headers,
        )

    async def validation(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        params = [{"name": _location(tuple(item["loc"])), "reason": reason(item)} for item in error.errors()]
        detail = "; ".join(f"{p['name']}: {p['reason']}" for p in params) or "the request is not valid"
        return problem_response(400, detail, instance=request.url.path, invalid_params=params)

    async def domain(request: Request, error: Exception) -> Response:
        if isinstance(error, ValidationProblem):
            params = [{"name": error.field, "reason": error.rule}]
            return problem_response(400, str(error), instance=request.url.path, invalid_params=params)
        return problem_response(400, str(error), instance=request.url.path)

    async def not_found(request: Request, error: Exception) -> Response:
        return problem_response(404, str(error), instance=request.url.path)

    async def conflict(request: Request, error: Exception) -> Response:
        assert isinstance(error, AccountConflict | LedgerConflict)
        params = [{"name": error.field, "reason": str(error)}]
        return problem_response(409, str(error), instance=request.url.path, invalid_params=params)

    async def precondition(request: Request, error: Exception) -> Response:
        return problem_response(412, str(error), instance=request.url.path)

    async def unavailable(request: Request, error: Exception) -> Response:
        log.warning("answering 503: %s", error)
        return problem_response(
            503,
            "a service this API depends on is unavailable; try again shortly",
            instance=request.url.path,
            headers={"Retry-After": "5"},
        )

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        headers = dict(error.headers or {})
        if error.status_code == 405:
            # Each method of a path is a route of its own, so the router names only the first one's methods.
            headers["Allow"] = ", ".join(allowed_methods(app, request.scope))
        return problem_response(error.status_code, str(error.detail), instance=request.url.path, headers=headers)

    async def unexpected(request: Request, error: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(500, "an unexpected error occurred; it has been logged", instance=request.url.path)

    app.add_exception_handler(ApiProblem, api_problem)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(DomainError, domain)
    app.add_exception_handler(AccountNotFound, not_found)
    app.add_exception_handler(AccountConflict, conflict)
    app.add_exception_handler(LedgerConflict, conflict)
    app.add_exception_handler(TransactionNotFound, not_found)
    app.add_exception_handler(ChargeRunNotFound, not_found)
    app.add_exception_handler(PreconditionFailed, precondition)
    app.add_exception_handler(TransientError, unavailable)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
