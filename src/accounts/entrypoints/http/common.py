"""What every route module shares: who is asking, how a JSON body is read and checked, how an answer is
written, and how blocking work leaves the event loop. One place, so every route refuses and answers alike."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

import orjson
import pydantic
from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from accounts.domain.account import Actor
from accounts.domain.events import refuse_constant
from accounts.entrypoints.http.problems import ApiProblem, reason

M = TypeVar("M", bound=pydantic.BaseModel)

# An account is four levels deep (tenure.primaryTenants[0].fullName) and an event envelope
# little more; anything far deeper is refused before patching or validation recurses into it.
MAX_JSON_DEPTH = 32


def services(request: Request) -> Any:
    """The application the routes serve (`bootstrap.Application`)."""
    return request.app.state.application


def writer(request: Request) -> Actor:
    """Who is changing something: a token in a write group (else a 401 or 403 problem)."""
    settings = services(request).settings
    verifier = request.app.state.verifier
    return verifier.authorise(request.headers.get("authorization"), settings.write_groups, "change accounts")  # type: ignore[no-any-return]


def correlation(request: Request) -> UUID:
    return UUID(request.state.correlation_id)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value.quantize(Decimal("0.01"))))
    raise TypeError(f"cannot serialise {type(value).__name__}")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, default=_default), status_code=status, media_type="application/json", headers=headers
    )


async def read_json(request: Request, *, exact: bool = True) -> Any:
    """The body as JSON; with `exact`, numbers as Decimal (money never passes through float)."""
    raw = await request.body()
    if not raw:
        raise ApiProblem(400, "the request body is empty; send a JSON document")
    try:
        if not exact:
            body = json.loads(raw, parse_constant=refuse_constant)
        else:
            body = json.loads(raw, parse_float=Decimal, parse_constant=refuse_constant)
    except RecursionError:
        body = None
    except (ValueError, UnicodeDecodeError) as error:
        if "integer string conversion" in str(error):
            raise ApiProblem(400, "the request body is not valid JSON: a number has too many digits") from None
        raise ApiProblem(400, f"the request body is not valid JSON: {error}") from None
    else:
        if within_depth(body, MAX_JSON_DEPTH):
            return body
    raise ApiProblem(400, f"the JSON body is nested too deeply: at most {MAX_JSON_DEPTH} levels")


def within_depth(value: Any, limit: int) -> bool:
    """True when no object or array is nested deeper than `limit` (checked without recursion).

    Level by level, keeping only the objects and arrays: a batch of thousands of events is
    mostly strings, which are looked at once and never stacked.
    """
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return False
        deeper = []
        for node in level:
            for child in node.values() if isinstance(node, dict) else node:
                if isinstance(child, (dict, list)):
                    deeper.append(child)
        level = deeper
    return True


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def invalid(error: pydantic.ValidationError) -> ApiProblem:
    params = [
        {"name": ".".join(str(part) for part in item["loc"]) or "body", "reason": reason(item)}
        for item in error.errors(include_url=False)
    ]
    detail = "; ".join(f"{p['name']}: {p['reason']}" for p in params)
    return ApiProblem(400, detail, invalid_params=params)


async def model_from_json(request: Request, model: type[M], what: str) -> M:
    """A JSON object body as `model` (sent as application/json, else 415; money read exactly); every
    rule it breaks named in one 400 problem."""
    if media_type(request) != "application/json":
        raise ApiProblem(415, f"send the {what} as application/json")
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiProblem(400, f"the {what} must be a JSON object")
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as error:
        raise invalid(error) from None


def json_request_body(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """The OpenAPI `requestBody` of a route that reads `model` as JSON itself (see `model_from_json`)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def in_thread(function: Any, *args: Any) -> Any:
    """Blocking work (a unit of work) off the event loop."""
    return await run_in_threadpool(function, *args)
