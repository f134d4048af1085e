"""The two hottest reads, `GET /accounts/{id}` and `GET /accounts?targetId=`, as lean routes.

They are most of the API's traffic. They are ordinary routes of the application, behind
every middleware (correlation ids, body limits, the problem handlers), but answered
without FastAPI's dependency solving and parameter validation, which cost several times
the read itself: `ReadRoute` hands the request straight to the endpoint, which checks the
token, parses what it needs (`account_id`, `target_query`) and raises the same problems
FastAPI's validation would, word for word; the one problem handler answers them.

The parameters FastAPI would have validated are still declared, for the OpenAPI document
only, by the `*_parameters` functions given as the routes' dependencies.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from uuid import UUID

import pydantic
from fastapi import Path, Query, Request
from fastapi.routing import APIRoute
from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.routing import request_response

from accounts.domain.account import AccountType
from accounts.entrypoints.http.problems import ApiProblem, reason
from accounts.service.accounts import AccountNotFound
from accounts.service.ports import StoredAccount

ACCOUNT_TYPES = frozenset(account_type.value for account_type in AccountType)
JSON_TYPE = (b"content-type", b"application/json")


def _enum_reason() -> str:
    """What FastAPI's validation says of an unknown account type, in this API's words (`reason`)."""
    try:
        pydantic.TypeAdapter(AccountType).validate_python("")
    except pydantic.ValidationError as error:
        return reason(error.errors(include_url=False)[0])
    raise AssertionError("an empty account type was accepted")


ACCOUNT_TYPE_REASON = _enum_reason()


class ReadRoute(APIRoute):
    """A route answered by its endpoint called with the request alone: no dependency solving.

    Its dependencies (see `account_parameters`, `target_parameters`) are never run: they
    declare the parameters for the OpenAPI document. It is served as a Starlette route is
    (Starlette's `request_response`: the endpoint's exceptions go to the application's handlers).
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        super().__init__(path, endpoint, **options)
        self.app = request_response(self.endpoint)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return self.endpoint


# What the document declares ------------------------------------------------------------------


# Checked by parse_uuid, whose problem names the parameter, rather than by FastAPI.
AccountId = Annotated[str, Path(description="The account id", json_schema_extra={"format": "uuid"})]


def account_parameters(id: AccountId) -> None:
    """The document's parameters of GET /accounts/{id}; `account_id` parses them."""


def target_parameters(
    targetId: Annotated[str, Query(description="The tenure (target) id", json_schema_extra={"format": "uuid"})],
    accountType: Annotated[AccountType | None, Query()] = None,
    type: Annotated[AccountType | None, Query(description="Alias of accountType")] = None,
) -> None:
    """The document's parameters of GET /accounts; `target_query` parses them."""


# The one parser ----------------------------------------------------------------------------------


def parse_uuid(value: str, name: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise ApiProblem(
            400, f"{name} must be a UUID, got {value[:64]!r}", [{"name": name, "reason": "must be a UUID"}]
        ) from None


def account_id(request: Request) -> UUID:
    return parse_uuid(request.path_params["id"], "id")


def target_query(query: QueryParams) -> tuple[UUID, str | None]:
    """(target id, account type or None) from the query, as FastAPI would have read it.

    A repeated parameter counts by its last value; unknown parameters are ignored; accountType
    wins over its alias type. A missing targetId or an unknown type is refused as FastAPI's
    validation refuses it (every such problem at once), an empty targetId as the route did.
    """
    target = query.get("targetId")
    problems = [] if target is not None else [{"name": "targetId", "reason": "is required"}]
    for name in ("accountType", "type"):
        value = query.get(name)
        if value is not None and value not in ACCOUNT_TYPES:
            problems.append({"name": name, "reason": ACCOUNT_TYPE_REASON})
    if problems:
        raise ApiProblem(400, "; ".join(f"{p['name']}: {p['reason']}" for p in problems), problems)
    if not target:
        raise ApiProblem(400, "targetId is required", [{"name": "targetId", "reason": "is required"}])
    return parse_uuid(target, "targetId"), query.get("accountType") or query.get("type")


# The one response builder ------------------------------------------------------------------------


class WireResponse(Response):
    """A 200 of JSON already written (an account's stored wire JSON, a list of them).

    Its headers are written directly, in the order Starlette's `Response` writes them (ETag,
    Content-Length, Content-Type), instead of through Starlette's header building, on every read.
    """

    def __init__(self, body: bytes, etag: str | None = None) -> None:
        self.status_code = 200
        self.body = body
        self.background = None
        sized = [(b"content-length", str(len(body)).encode("latin-1")), JSON_TYPE]
        self.raw_headers = [(b"etag", etag.encode("latin-1")), *sized] if etag is not None else sized


def stored_account_response(stored: StoredAccount) -> Response:
    """An account read as stored (its wire JSON): the same bytes and ETag a change answers with."""
    return WireResponse(stored.wire, stored.etag)


def stored_list_response(wires: list[bytes]) -> Response:
    return WireResponse(b'{"accountResponseList":[' + b",".join(wires) + b"]}")


# The endpoints -----------------------------------------------------------------------------------


def authorise_read(request: Request) -> None:
    """The token may read accounts (else a 401 or 403 problem); checked before the parameters are."""
    state = request.app.state
    state.verifier.authorise(
        request.headers.get("authorization"), state.application.settings.read_groups, "read accounts"
    )


async def get_account(request: Request) -> Response:
    authorise_read(request)
    wanted = account_id(request)
    stored = await request.app.state.application.reads.account(wanted)
    if stored is None:
        raise AccountNotFound(wanted)
    return stored_account_response(stored)


async def find_accounts(request: Request) -> Response:
    authorise_read(request)
    target, account_type = target_query(request.query_params)
    return stored_list_response(await request.app.state.application.reads.by_target(target, account_type))
