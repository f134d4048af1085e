"""Schemathesis hooks for the external check (tests/e2e/test_schemathesis.py): the refusals no schema can state.

The OpenAPI document declares every rule that JSON Schema can express (enums, patterns, money bounds and
pence, formats, additionalProperties, a Master's empty parent, an Adjustment's direction). A few rules
depend on what the service holds, or compare one value with another in a way JSON Schema cannot, so a
schema-valid request may still be refused for them; Schemathesis reports each such refusal as ST202
("schema-valid request rejected"). `filter_failure` drops exactly those ST202 failures, recognised by the
operation, the status and the field and rule the problem document names; every other failure, and every
other check on the same response, still counts.

If-Match is left out of the generated requests (a drawn ETag is never the current one: see below), and a
412 to a request whose body breaks the schema is not an ST201 (RFC 9110 evaluates the precondition first).
Each dropped failure is written to ACCOUNTS_SCHEMATHESIS_DROPPED_LOG when it is set.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

# Where each dropped failure is written, one a line (the e2e test counts them), when set.
DROPPED_LOG = os.environ.get("ACCOUNTS_SCHEMATHESIS_DROPPED_LOG")

# (method, path template) -> the problem's (field, rule) pairs that are not the schema's to state.
STATE_OR_CROSS_FIELD_RULES: dict[tuple[str, str], set[tuple[str, str]]] = {
    # A cursor is opaque: only a nextCursor a page gave is one, and no schema can list them.
    ("GET", "/api/v1/accounts/{id}/transactions"): {
        ("cursor", "must be a nextCursor from a page"),
        ("to", "must not be before from"),  # compares two parameters
    },
    ("GET", "/api/v1/suspense"): {("cursor", "must be a nextCursor from a page")},
    ("GET", "/api/v1/arrears-worklist"): {("cursor", "must be a nextCursor from a page")},
    # The parent must be an account the service holds.
    ("POST", "/api/v1/accounts"): {
        ("parentAccountId", "must be the id of an existing account"),
        ("endDate", "must not be before startDate"),  # compares two fields
    },
    # A merge patch is merged into the account as it is: whether the result keeps the rules across fields
    # depends on the fields the patch leaves alone (a partial tenure on an account without one, a parent
    # on what is or becomes a Master, an end before a start kept from before).
    ("PATCH", "/api/v1/accounts/{id}"): {
        ("parentAccountId", "must be the id of an existing account"),
        ("parentAccountId", "must be empty on a Master account"),
        ("parentAccountId", "must not be the account itself"),
        ("endDate", "must not be before startDate"),
        ("tenure.tenureId", "is required"),
        ("tenure.tenureType.code", "is required"),
        # A new balance is posted as an Adjustment of the difference, which must itself be an amount: from a
        # balance near the limit, a balance near the other limit is too far.
        ("accountBalance", "must be less than 1,000,000,000,000 in size"),
    },
    # A posting must leave the balance within NUMERIC(14,2): it depends on the balance the account has.
    ("POST", "/api/v1/accounts/{id}/transactions"): {
        ("amount", "would take the account balance beyond 1,000,000,000,000 in size")
    },
    ("POST", "/api/v1/accounts/{id}/transactions/{transactionId}/reversal"): {
        ("amount", "would take the account balance beyond 1,000,000,000,000 in size")
    },
    # A calendar rule: the week starts on a Monday.
    ("POST", "/api/v1/charge-runs"): {("weekStarting", "must be a Monday")},
}

# A JSON Patch is applied to the account as it is: whether a path exists, whether a `test` holds and whether
# the result is a valid account all depend on the document, which a schema for the operations cannot know.
JSON_PATCH_TYPES = {"application/json-patch+json"}

# If-Match is a precondition on the account's current version (RFC 9110 13.1.1): any ETag is well formed,
# and only the one the account has now passes.
PRECONDITION_ROUTES = {
    ("PATCH", "/api/v1/accounts/{id}"),
    ("POST", "/api/v1/accounts/{id}/transactions"),
    ("POST", "/api/v1/accounts/{id}/transactions/{transactionId}/reversal"),
}


def _without_if_match(operation: Any, headers: dict[str, Any] | None) -> dict[str, Any] | None:
    if not headers or (operation.method.upper(), operation.path) not in PRECONDITION_ROUTES:
        return headers
    return {key: value for key, value in headers.items() if key.lower() != "if-match"}


# No drawn If-Match: a drawn ETag is never the account's current one, so nearly every change would stop at the
# precondition (412) and its body would never be checked. The precondition has its own tests
# (tests/integration/test_api*.py, tests/e2e/test_api_server.py). map_headers acts on what the examples,
# fuzzing and stateful phases draw, map_case on the coverage phase's cases.
@schemathesis.hook
def map_headers(context: Any, headers: dict[str, Any] | None) -> dict[str, Any] | None:
    return _without_if_match(context.operation, headers)


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    if case.headers and (case.operation.method.upper(), case.operation.path) in PRECONDITION_ROUTES:
        for key in [key for key in case.headers if key.lower() == "if-match"]:
            del case.headers[key]  # in place: the case keeps what else it knows about its headers
    return case


def _problem(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _header(case: Any, name: str) -> str | None:
    for key, value in (case.headers or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def expected_refusal(method: str, path: str, case: Any, response: Any) -> bool:
    """True when the response is one of the refusals above, for that operation."""
    route = (method.upper(), path)
    status = response.status_code
    if status == 412:
        return route in PRECONDITION_ROUTES and _header(case, "If-Match") is not None
    if status != 400:
        return False
    media_type = (case.media_type or "").split(";")[0].strip().lower()
    if route == ("PATCH", "/api/v1/accounts/{id}") and (
        media_type in JSON_PATCH_TYPES or (media_type == "application/json" and isinstance(case.body, list))
    ):
        return True
    named = {(str(p.get("name")), str(p.get("reason"))) for p in _problem(response).get("invalidParams") or []}
    return bool(named) and named <= STATE_OR_CROSS_FIELD_RULES.get(route, set())


def precondition_first(method: str, path: str, case: Any, response: Any) -> bool:
    """True for a 412 to a request whose content breaks the schema: RFC 9110 13.2.1 evaluates If-Match before
    the content is processed, so a stale ETag is answered 412 whatever the body holds (ST201 expects a 400)."""
    route = (method.upper(), path)
    return response.status_code == 412 and route in PRECONDITION_ROUTES and _header(case, "If-Match") is not None


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure but an ST202 that is one of the refusals above, or an ST201 answered by the precondition."""
    code = getattr(failure, "code", None)
    operation = case.operation
    dropped = (code == "ST202" and expected_refusal(operation.method, operation.path, case, response)) or (
        code == "ST201" and precondition_first(operation.method, operation.path, case, response)
    )
    if dropped and DROPPED_LOG:
        with open(DROPPED_LOG, "a", encoding="utf-8") as log:
            log.write(f"{code} {operation.method.upper()} {operation.path} {response.status_code} {_why(response)}\n")
    return not dropped


def _why(response: Any) -> str:
    params = _problem(response).get("invalidParams") or []
    return (
        "; ".join(f"{p.get('name')}: {p.get('reason')}" for p in params)[:200]
        or str(_problem(response).get("detail"))[:100]
    )
