"""The Accounts API routes, under /api/v1, in the existing clients' wire format."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import orjson
import pydantic
from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import WithJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from accounts.domain.account import Account, AccountType, etag, to_wire
from accounts.domain.errors import ImmutableField, ValidationProblem
from accounts.domain.events import MalformedEvent, parse_envelope
from accounts.entrypoints.http import reads
from accounts.entrypoints.http.charge_runs import add_charge_run_routes
from accounts.entrypoints.http.common import (
    correlation,
    in_thread,
    invalid,
    json_request_body,
    json_response,
    media_type,
    model_from_json,
    read_json,
    services,
    writer,
)
from accounts.entrypoints.http.ledger import add_ledger_routes
from accounts.entrypoints.http.payment_files import add_payment_file_routes
from accounts.entrypoints.http.problems import REFUSES_METHODS, ApiProblem, problem_responses
from accounts.entrypoints.http.reads import AccountId, parse_uuid
from accounts.entrypoints.http.schemas import (
    JSON_PATCH_SCHEMA,
    AccountCreate,
    AccountList,
    AccountPatched,
    AccountResponse,
    EventsAccepted,
    Health,
    TargetTypeList,
    merge_patch_schema,
    unknown_fields,
)
from accounts.entrypoints.http.worklist import add_worklist_routes
from accounts.service.accounts import ARREARS_SORT_NAMES
from accounts.service.log_context import about
from accounts.service.ports import TENURE_TOPIC

MAX_EVENTS_PER_REQUEST = 100_000  # far above what the body limit lets through: the bytes decide
EVENTS_PATH = "/api/v1/events"


def events_too_large(limit: int) -> str:
    """The intake's 413: its own limit, and the setting that moves it."""
    return (
        f"a batch of events must be at most {limit:,} bytes ({limit / 1024 / 1024:g} MB, ACCOUNTS_MAX_EVENTS_BODY_BYTES):"
        " send it in parts"
    )


MERGE_PATCH_SCHEMA = merge_patch_schema()
MERGE_PATCH_DEFS = dict(MERGE_PATCH_SCHEMA["$defs"])
SORT_NAMES_LOWER = frozenset(name.lower() for name in ARREARS_SORT_NAMES)
# The years an envelope's dateTime may name: every offset then still gives an instant in UTC.
YEARS = r"(000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
UUID_SCHEMA: dict[str, Any] = {"type": "string", "format": "uuid"}
ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An MTFH event envelope, such as TenureCreatedEvent",
    "required": ["id", "eventType", "dateTime", "entityId"],
    "properties": {
        "id": UUID_SCHEMA,
        "eventType": {"type": "string", "minLength": 1, "examples": ["TenureCreatedEvent"]},
        "sourceDomain": {"type": "string"},
        "sourceSystem": {"type": "string"},
        "version": {"type": "string"},
        "correlationId": UUID_SCHEMA,
        "dateTime": {
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339, in the years 0002 to 9998",
            "pattern": f"^{YEARS}-",
        },
        "user": {"type": "object", "properties": {"name": {"type": "string"}, "email": {"type": "string"}}},
        "entityId": UUID_SCHEMA,
        "eventData": {
            "type": "object",
            "properties": {
                "oldData": {"type": ["object", "null"]},
                "newData": {"type": ["object", "null"]},
            },
        },
    },
}


UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# RFC 3339's date-time (JSON Schema's format), which datetime.fromisoformat then reads.
DATE_TIME_TEXT = re.compile(YEARS + r"-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def envelope_problem(raw: Any) -> str | None:
    """What makes an envelope break ENVELOPE_SCHEMA, the intake's contract (None when it keeps it).

    The listener reads what MTFH sends leniently (`parse_envelope`); a client of this API is held to the
    shape it is shown.
    """
    if not isinstance(raw, dict):
        return "must be a JSON object"
    for name in ENVELOPE_SCHEMA["required"]:
        if name not in raw:
            return f"{name} is required"
    for name, rule in ENVELOPE_SCHEMA["properties"].items():
        if name not in raw:
            continue
        value = raw[name]
        if rule is UUID_SCHEMA:
            if not isinstance(value, str) or not UUID_TEXT.fullmatch(value):
                return f"{name} must be a UUID string"
        elif rule.get("type") == "string":
            if not isinstance(value, str) or len(value) < rule.get("minLength", 0):
                return f"{name} must be a {'non-empty ' if rule.get('minLength') else ''}string"
            if rule.get("format") == "date-time" and not DATE_TIME_TEXT.fullmatch(value):
                return f"{name} must be an RFC 3339 date-time in the years 0002 to 9998, such as 2026-04-06T09:30:00Z"
        elif not isinstance(value, dict):
            return f"{name} must be an object"
        else:
            for key, part in rule["properties"].items():
                if key in value and not _is_type(value[key], part["type"]):
                    return f"{name}.{key} must be {' or '.join(_as_list(part['type']))}"
    return None


def _as_list(kinds: str | list[str]) -> list[str]:
    return [kinds] if isinstance(kinds, str) else kinds


def _is_type(value: Any, kinds: str | list[str]) -> bool:
    wanted: dict[str, type] = {"string": str, "object": dict, "null": type(None)}
    return any(isinstance(value, wanted[kind]) for kind in _as_list(kinds))


def account_response(account: Account, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return json_response(to_wire(account), status, {"ETag": etag(account), **(headers or {})})


def account_list(accounts: list[Account]) -> Response:
    return json_response({"accountResponseList": [to_wire(account) for account in accounts]})


def any_case(*words: str) -> str:
    """A JSON Schema pattern matching any of the words in any case, or nothing (an empty value is the default);
    ECMA regexes have no i flag."""
    spelled = ("".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word) for word in words)
    return f"^({'|'.join(spelled)})?$"


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    # The two hottest reads: lean routes (reads.py), declared here in their place among the others.
    router.add_api_route(
        "/accounts",
        reads.find_accounts,
        methods=["GET"],
        response_model=AccountList,
        responses=problem_responses(400, 401, 403, 503),
        summary="The accounts of a target (a tenure)",
        dependencies=[Depends(reads.target_parameters)],
        route_class_override=reads.ReadRoute,
    )

    @router.get(
        "/accounts/arrears",
        response_model=AccountList,
        responses=problem_responses(400, 401, 403, 503),
        summary="Accounts in arrears, by their target type's polarity",
        dependencies=[Depends(reads.authorise_read)],
    )
    def arrears(
        request: Request,
        type: Annotated[AccountType | None, Query(description="Only accounts of this account type")] = None,
        accountType: Annotated[AccountType | None, Query(description="Alias of type")] = None,
        sortBy: Annotated[
            str | None,
            Query(
                description=f"One of {', '.join(ARREARS_SORT_NAMES)} (any case); default amountOwed",
                json_schema_extra={"pattern": any_case(*ARREARS_SORT_NAMES)},
            ),
        ] = None,
        sort: Annotated[
            str | None,
            Query(description="Alias of sortBy", json_schema_extra={"pattern": any_case(*ARREARS_SORT_NAMES)}),
        ] = None,
        direction: Annotated[
            str | None,
            Query(
                description="asc or desc (any case); default desc",
                json_schema_extra={"pattern": any_case("asc", "desc")},
            ),
        ] = None,
        resultsCount: Annotated[
            int | None,
            Query(
                description="How many accounts at most (ACCOUNTS_ARREARS_DEFAULT_COUNT when left out)",
                json_schema_extra={"minimum": 1},  # and the configured maximum: see create_app
            ),
        ] = None,
    ) -> Response:
        settings = services(request).settings
        order = (direction or "desc").lower()
        if order not in ("asc", "desc"):
            raise ApiProblem(
                400, "direction must be asc or desc", [{"name": "direction", "reason": "must be asc or desc"}]
            )
        for value in (sortBy, sort):  # the alias is checked too when sortBy wins; either is named sortBy
            if value and value.lower() not in SORT_NAMES_LOWER:
                reason = f"must be one of {', '.join(ARREARS_SORT_NAMES)}"
                raise ApiProblem(400, f"sortBy {reason}", [{"name": "sortBy", "reason": reason}])
        count = settings.arrears_default_count if resultsCount is None else resultsCount
        if not 1 <= count <= settings.arrears_max_count:
            reason = f"must be between 1 and {settings.arrears_max_count}"
            raise ApiProblem(400, f"resultsCount {reason}", [{"name": "resultsCount", "reason": reason}])
        found = services(request).accounts.arrears(
            accountType or type, sortBy or sort or "amountOwed", order == "desc", count
        )
        return account_list(found)

    # /accounts/arrears is a listing, not an account: PATCH there is a 405, not a 400 about the id.
    @router.api_route("/accounts/arrears", methods=["PATCH"], include_in_schema=False, name=REFUSES_METHODS)
    def arrears_is_read_only() -> Response:
        raise StarletteHTTPException(405)

    router.add_api_route(
        "/accounts/{id}",
        reads.get_account,
        methods=["GET"],
        response_model=AccountResponse,
        responses=problem_responses(400, 401, 403, 404, 503),
        summary="One account, with its ETag",
        dependencies=[Depends(reads.account_parameters)],
        route_class_override=reads.ReadRoute,
    )

    @router.post(
        "/accounts",
        status_code=201,
        response_model=AccountResponse,
        responses=problem_responses(400, 401, 403, 409, 413, 415, 503),
        openapi_extra=json_request_body(AccountCreate),
        summary="Create an account; a payment reference is allocated when none is given",
    )
    async def create_account(request: Request) -> Response:
        who = writer(request)
        command = (await model_from_json(request, AccountCreate, "account")).to_command()
        application = services(request)
        account = await in_thread(application.accounts.create, command, who, correlation(request))
        return account_response(account, 201, {"Location": f"/api/v1/accounts/{account.id}"})

    @router.patch(
        "/accounts/{id}",
        response_model=AccountResponse,
        responses=problem_responses(400, 401, 403, 404, 409, 412, 413, 415, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/merge-patch+json": {"schema": dict(MERGE_PATCH_SCHEMA)},  # its $defs are moved
                    "application/json-patch+json": {"schema": JSON_PATCH_SCHEMA},
                    "application/json": {
                        "schema": {
                            "description": "A merge patch (an object) or a JSON Patch (an array)",
                            "oneOf": [
                                {k: v for k, v in MERGE_PATCH_SCHEMA.items() if k != "$defs"},
                                JSON_PATCH_SCHEMA,
                            ],
                        }
                    },
                },
            }
        },
        summary="Change an account with a merge patch or a JSON Patch; honours If-Match",
    )
    async def patch_account(
        request: Request,
        id: AccountId,
        if_match: Annotated[
            str | None,
            Header(alias="If-Match", description="The ETag you read; 412 unless it is the current one"),
            WithJsonSchema({"type": "string"}),
        ] = None,
    ) -> Response:
        from accounts.entrypoints.http.patching import JSON_PATCH, MERGE_PATCH, PLAIN_JSON, apply_patch

        who = writer(request)
        account_id = parse_uuid(id, "id")
        kind = media_type(request)
        if kind not in (MERGE_PATCH, JSON_PATCH, PLAIN_JSON):
            raise ApiProblem(415, f"send {MERGE_PATCH}, {JSON_PATCH} or {PLAIN_JSON}; got {kind or 'no content type'}")
        body = await read_json(request)
        if kind != JSON_PATCH and isinstance(body, dict):
            unknown = unknown_fields(body, MERGE_PATCH_SCHEMA, MERGE_PATCH_DEFS)
            if unknown:
                rule = "is not a known field; check its spelling"
                raise ApiProblem(
                    400,
                    "; ".join(f"{name}: {rule}" for name in unknown),
                    [{"name": n, "reason": rule} for n in unknown],
                )

        def change(account: Account) -> dict[str, Any]:
            document = to_wire(account)
            return changes_from(document, apply_patch(document, kind, body))

        application = services(request)
        with about(account_id=account_id):  # the change's log lines name the account
            account, _ = await in_thread(
                application.accounts.change, account_id, change, who, correlation(request), if_match
            )
        return account_response(account)

    add_ledger_routes(router)
    add_payment_file_routes(router)
    add_charge_run_routes(router)
    add_worklist_routes(router)

    @router.get("/target-types", response_model=TargetTypeList, responses=problem_responses(401, 403, 503))
    def target_types(request: Request) -> Response:
        reads.authorise_read(request)
        found = services(request).accounts.target_types()
        return json_response(
            {
                "targetTypes": [
                    {"name": t.name, "polarity": t.polarity.value, "description": t.description} for t in found
                ]
            }
        )

    @router.post(
        "/events",
        status_code=202,
        response_model=EventsAccepted,
        responses=problem_responses(400, 401, 403, 413, 415, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                ENVELOPE_SCHEMA,
                                {
                                    "type": "array",
                                    "items": ENVELOPE_SCHEMA,
                                    "minItems": 1,
                                    "maxItems": MAX_EVENTS_PER_REQUEST,
                                },
                            ]
                        }
                    }
                },
            }
        },
        summary="Queue tenure event envelopes for the finance listener",
    )
    async def intake(request: Request) -> Response:
        writer(request)
        if media_type(request) != "application/json":
            raise ApiProblem(415, "send events as application/json")
        body = await read_json(request, exact=False)
        envelopes = body if isinstance(body, list) else [body]
        if not envelopes or len(envelopes) > MAX_EVENTS_PER_REQUEST:
            raise ApiProblem(400, f"send between 1 and {MAX_EVENTS_PER_REQUEST} events")
        problems, events = [], []
        for index, raw in enumerate(envelopes):
            problem = envelope_problem(raw)
            if problem is not None:
                problems.append({"name": f"[{index}]", "reason": problem})
                continue
            try:
                events.append(parse_envelope(raw) if isinstance(raw, dict) else parse_envelope(json.dumps(raw)))
            except MalformedEvent as error:
                problems.append({"name": f"[{index}]", "reason": str(error)})
        if problems:
            raise ApiProblem(400, "; ".join(f"{p['name']}: {p['reason']}" for p in problems), problems)
        publisher = request.app.state.publisher
        items = [(_envelope_bytes(raw), str(e.entity_id), str(e.id)) for raw, e in zip(envelopes, events, strict=True)]
        await in_thread(publisher.publish_many, TENURE_TOPIC, items)
        return json_response({"accepted": len(events), "ids": [str(e.id) for e in events]}, 202)

    no_token: dict[str, Any] = {"security": []}

    @router.get("/healthcheck/ping", response_model=Health, summary="For the existing monitors", openapi_extra=no_token)
    def ping() -> Response:
        return json_response({"status": "Healthy"})

    @router.get("/health/live", response_model=Health, summary="Liveness: the process answers", openapi_extra=no_token)
    def live() -> Response:
        return json_response({"status": "Healthy"})

    @router.get(
        "/health/ready",
        response_model=Health,
        responses=problem_responses(503),
        summary="Readiness: the database answers",
        openapi_extra=no_token,
    )
    def ready(request: Request) -> Response:
        import sqlalchemy as sa

        try:
            with services(request).engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except Exception:
            raise ApiProblem(503, "the database is not answering", headers={"Retry-After": "5"}) from None
        return json_response({"status": "Healthy", "checks": {"database": "ok"}})

    return router


SERVICE_SET = ("lastUpdatedAt", "lastUpdatedBy")


def changes_from(original: dict[str, Any], patched: dict[str, Any]) -> dict[str, Any]:
    """Domain changes from a patched wire document, every rule checked again."""
    for name in ("id", "createdAt", "createdBy"):
        if patched.get(name) != original.get(name):
            raise ImmutableField(name)
    for name in SERVICE_SET:
        if patched.get(name) != original.get(name):
            raise ValidationProblem(name, "is set by the service and cannot be patched")
    try:
        model = AccountPatched.model_validate(patched)
    except pydantic.ValidationError as error:
        raise invalid(error) from None
    fields = model.domain_fields()
    fields["payment_reference"] = model.paymentReference
    return fields


def _envelope_bytes(raw: Any) -> bytes:
    """An envelope as it is queued: orjson's bytes, or the json module's for what orjson refuses (lone surrogates)."""
    try:
        return orjson.dumps(raw)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(raw).encode()
