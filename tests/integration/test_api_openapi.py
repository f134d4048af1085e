"""The OpenAPI document tells the truth: every status a route answers is declared, every $ref resolves."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import schemathesis.checks
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from accounts.adapters.database.engine import create_engine
from accounts.bootstrap import build_reads
from accounts.entrypoints.http.app import create_app
from tests.integration.test_api_support import Api, shared_api, tenure_request

ACCOUNT = "/api/v1/accounts/{id}"
NOWHERE = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"  # nothing listens on port 1


@pytest.fixture(scope="module", params=["sqlite"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from shared_api(request, tmp_path_factory)


@pytest.fixture(scope="module")
def document(api: Api) -> dict[str, Any]:
    response = api.client.get("/api/v1/openapi.json")  # no token: the document is public
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method.upper(), operation


def declared(document: dict[str, Any], method: str, path: str) -> set[int]:
    return {int(status) for status in document["paths"][path][method.lower()]["responses"]}


def test_the_document_is_openapi_3_and_names_the_service(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Housing finance Accounts API"
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_every_reference_in_the_document_resolves(document: dict[str, Any]) -> None:
    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for item in node:
                yield from refs(item)

    found = list(refs(document))
    assert found
    for ref in found:
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
            node = node[part]
    assert "$defs" not in str(document)


def test_the_documented_routes_are_the_accounts_api(document: dict[str, Any]) -> None:
    assert {(method, path) for path, method, _ in operations(document)} >= {
        ("GET", "/api/v1/accounts"),
        ("POST", "/api/v1/accounts"),
        ("GET", "/api/v1/accounts/arrears"),
        ("GET", ACCOUNT),
        ("PATCH", ACCOUNT),
        ("GET", "/api/v1/target-types"),
        ("GET", "/api/v1/healthcheck/ping"),
        ("GET", "/api/v1/health/live"),
        ("GET", "/api/v1/health/ready"),
    }


def test_every_route_declares_the_errors_its_kind_of_route_can_give(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        statuses = {int(status) for status in operation["responses"]}
        where = f"{method} {path}"
        assert 422 not in statuses, where  # bad input is a 400 problem here
        assert any(200 <= status < 300 for status in statuses), where
        protected = operation.get("security", document["security"]) != []
        if protected:
            assert {401, 403, 503} <= statuses, where
        if operation.get("parameters") or "requestBody" in operation:
            assert 400 in statuses, where
        if "requestBody" in operation:
            assert {413, 415} <= statuses, where
        if "{id}" in path:
            assert {400, 404} <= statuses, where
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert list(response["content"]) == ["application/problem+json"], where


def test_the_health_checks_need_no_token_and_say_so(document: dict[str, Any]) -> None:
    for path in ("/api/v1/healthcheck/ping", "/api/v1/health/live", "/api/v1/health/ready"):
        assert document["paths"][path]["get"]["security"] == []
    assert document["paths"]["/api/v1/accounts"]["get"].get("security", document["security"]) == [{"bearer": []}]


def test_money_is_documented_as_a_number_and_ids_as_uuids(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    account = schemas["AccountResponse"]["properties"]
    assert account["accountBalance"]["type"] == "number"
    assert account["consolidatedBalance"]["type"] == "number"
    assert schemas["ChargeOut"]["properties"]["amount"]["type"] == "number"
    create = document["paths"]["/api/v1/accounts"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert create["properties"]["accountBalance"]["type"] == "number"
    assert "Tenure" in create["properties"]["targetType"]["enum"]
    parameters = {p["name"]: p for p in document["paths"][ACCOUNT]["get"]["parameters"]}
    assert parameters["id"]["schema"]["format"] == "uuid"
    lookup = {p["name"]: p for p in document["paths"]["/api/v1/accounts"]["get"]["parameters"]}
    assert lookup["targetId"]["required"] is True


def test_the_arrears_parameters_document_their_limits(api: Api, document: dict[str, Any]) -> None:
    parameters = {p["name"]: p for p in document["paths"]["/api/v1/accounts/arrears"]["get"]["parameters"]}
    assert parameters["resultsCount"]["schema"]["minimum"] == 1
    assert parameters["resultsCount"]["schema"]["maximum"] == api.application.settings.arrears_max_count
    assert "amountOwed" in parameters["sortBy"]["description"]


# Every status actually answered is declared ---------------------------------------------------


def provoke(api: Api) -> list[tuple[str, str, httpx.Response]]:
    """(method, documented path, response) for every answer each route can give that a client can cause."""
    account = api.create()
    other = api.create()
    one = f"/api/v1/accounts/{account['id']}"
    stale = api.account(account["id"]).headers["ETag"]
    api.patch(account["id"], {"agreementType": "Moved on"})
    huge = b"x" * (api.application.settings.max_body_bytes + 1)
    stranger, bad = api.stranger_token, "not-a-token"
    missing = f"/api/v1/accounts/{uuid.uuid4()}"
    answers = []

    def note(method: str, path: str, response: httpx.Response) -> None:
        answers.append((method, path, response))

    for token in (bad, stranger):
        note("GET", "/api/v1/accounts", api.get(f"/api/v1/accounts?targetId={account['targetId']}", token=token))
        note("GET", "/api/v1/accounts/arrears", api.get("/api/v1/accounts/arrears", token=token))
        note("GET", ACCOUNT, api.get(one, token=token))
        note("GET", "/api/v1/target-types", api.get("/api/v1/target-types", token=token))
        note("POST", "/api/v1/accounts", api.post(tenure_request(), token=token))
        note("PATCH", ACCOUNT, api.patch(account["id"], {"agreementType": "x"}, token=token))
        note("POST", "/api/v1/events", api.request("POST", "/api/v1/events", token=token, json={}))
    note("GET", "/api/v1/accounts", api.get(f"/api/v1/accounts?targetId={account['targetId']}"))
    note("GET", "/api/v1/accounts", api.get("/api/v1/accounts"))
    note("GET", "/api/v1/accounts", api.get("/api/v1/accounts?targetId=x&accountType=Nope"))
    note("GET", "/api/v1/accounts/arrears", api.get("/api/v1/accounts/arrears"))
    for query in ("sortBy=id", "direction=up", "resultsCount=0", "resultsCount=x", "type=Nope"):
        note("GET", "/api/v1/accounts/arrears", api.get(f"/api/v1/accounts/arrears?{query}"))
    note("GET", ACCOUNT, api.get(one))
    note("GET", ACCOUNT, api.get("/api/v1/accounts/nope"))
    note("GET", ACCOUNT, api.get(missing))
    note("GET", "/api/v1/target-types", api.get("/api/v1/target-types"))
    note("POST", "/api/v1/accounts", api.post(tenure_request()))
    note("POST", "/api/v1/accounts", api.post(tenure_request(accountType="Nope")))
    note("POST", "/api/v1/accounts", api.post(tenure_request(target_id=account["targetId"])))
    note("POST", "/api/v1/accounts", api.post(huge))
    note("POST", "/api/v1/accounts", api.post(b"{}", headers={"Content-Type": "text/plain"}))
    note("PATCH", ACCOUNT, api.patch(account["id"], {"agreementType": "y"}))
    note("PATCH", ACCOUNT, api.patch(account["id"], {"createdBy": "me"}))
    note("PATCH", ACCOUNT, api.patch("nope", {}))
    note("PATCH", ACCOUNT, api.patch(missing.rsplit("/", 1)[1], {}))
    note("PATCH", ACCOUNT, api.patch(account["id"], {"paymentReference": other["paymentReference"]}))
    note("PATCH", ACCOUNT, api.patch(account["id"], {}, if_match=stale))
    note("PATCH", ACCOUNT, api.patch(account["id"], huge))
    note("PATCH", ACCOUNT, api.patch(account["id"], "{}", content_type="text/plain"))
    note("POST", "/api/v1/events", api.request("POST", "/api/v1/events", json={}))
    note("POST", "/api/v1/events", api.request("POST", "/api/v1/events", json=tenure_event()))
    events_huge = b"x" * (api.application.settings.max_events_body_bytes + 1)  # the intake's own limit
    note("POST", "/api/v1/events", api.request("POST", "/api/v1/events", content=events_huge))
    note("POST", "/api/v1/events", api.request("POST", "/api/v1/events", content=b"{}"))
    for path in ("/api/v1/healthcheck/ping", "/api/v1/health/live", "/api/v1/health/ready"):
        note("GET", path, api.client.get(path))
    return answers


def tenure_event() -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "eventType": "TenureCreatedEvent",
        "sourceDomain": "Tenure",
        "sourceSystem": "TenureAPI",
        "version": "v1",
        "correlationId": str(uuid.uuid4()),
        "dateTime": "2026-01-05T09:00:00Z",
        "user": {"name": "Housing Officer", "email": "housing.officer@hackney.gov.uk"},
        "entityId": str(uuid.uuid4()),
        "eventData": {"newData": {"id": str(uuid.uuid4())}},
    }


def unavailable(api: Api) -> list[tuple[str, str, httpx.Response]]:
    """The same routes with the database gone."""
    application = api.application
    working = application.engine
    original_factory = application.accounts.uow_factory
    publisher = api.client.app.state.publisher  # type: ignore[attr-defined]
    publisher.close()  # its next broker is made on the dead engine
    application.engine = create_engine(NOWHERE)
    application.accounts.uow_factory = application.uow  # the service's units of work use the dead engine too
    working_reads, application.reads = application.reads, build_reads(application.engine)
    try:
        one = f"/api/v1/accounts/{uuid.uuid4()}"
        return [
            ("GET", "/api/v1/accounts", api.get(f"/api/v1/accounts?targetId={uuid.uuid4()}")),
            ("GET", "/api/v1/accounts/arrears", api.get("/api/v1/accounts/arrears")),
            ("GET", ACCOUNT, api.get(one)),
            ("GET", "/api/v1/target-types", api.get("/api/v1/target-types")),
            ("POST", "/api/v1/accounts", api.post(tenure_request())),
            ("PATCH", ACCOUNT, api.patch(one.rsplit("/", 1)[1], {"agreementType": "x"})),
            ("GET", "/api/v1/health/ready", api.client.get("/api/v1/health/ready")),
            ("POST", "/api/v1/events", api.request("POST", "/api/v1/events", json=tenure_event())),
        ]
    finally:
        application.engine.dispose()
        application.engine = working
        application.accounts.uow_factory = original_factory
        application.reads = working_reads
        publisher.close()


def test_every_status_a_route_answers_is_declared_for_that_route(api: Api, document: dict[str, Any]) -> None:
    answers = provoke(api)
    seen: dict[tuple[str, str], set[int]] = {}
    for method, path, response in answers:
        seen.setdefault((method, path), set()).add(response.status_code)
        assert response.status_code in declared(document, method, path), (
            f"{method} {path} answered {response.status_code}, which its OpenAPI entry does not declare: "
            f"{response.text[:300]}"
        )
        assert response.status_code < 500, response.text
    # the table above really reached each kind of answer
    assert seen[("PATCH", ACCOUNT)] == {200, 400, 401, 403, 404, 409, 412, 413, 415}
    assert seen[("POST", "/api/v1/accounts")] == {201, 400, 401, 403, 409, 413, 415}
    assert seen[("GET", ACCOUNT)] == {200, 400, 401, 403, 404}
    assert seen[("POST", "/api/v1/events")] == {202, 400, 401, 403, 413, 415}


def test_with_the_database_gone_routes_answer_a_declared_503(api: Api, document: dict[str, Any]) -> None:
    for method, path, response in unavailable(api):
        assert response.status_code == 503, f"{method} {path}: {response.status_code} {response.text[:300]}"
        assert 503 in declared(document, method, path)
        assert response.headers["Retry-After"]
    assert api.get("/api/v1/target-types").status_code == 200  # and back again


# Generated requests, checked against the document -----------------------------------------------


def test_generated_requests_get_answers_the_document_describes(api: Api) -> None:
    """Schemathesis, in process, a few examples per operation: no 5xx, and every answer is as documented.

    Business rules a schema cannot say (an existing parent, one Master per tenure) mean some
    schema-valid requests are refused with a 400/409, so positive_data_acceptance is left out; and
    unknown query parameters are ignored, as HTTP clients expect, so negative_data_rejection is too.
    """
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", create_app(api.application))
    headers = {"Authorization": f"Bearer {api.writer_token}"}
    excluded: list[Callable[..., Any]] = [
        schemathesis.checks.positive_data_acceptance,
        schemathesis.checks.negative_data_rejection,
    ]
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=5, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(headers=headers, excluded_checks=excluded)

            try:
                check()
            except Unsatisfiable:
                continue  # an operation without parameters has no negative examples
            checked += 1
    assert checked >= 14


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/v1/accounts"),
        ("OPTIONS", "/api/v1/accounts/{id}"),
        ("PUT", "/api/v1/accounts/{id}/transactions"),
    ],
)
def test_a_method_not_allowed_names_every_method_the_path_answers(
    api: Api, document: dict[str, Any], method: str, path: str
) -> None:
    response = api.request(method, path.replace("{id}", "3fa85f64-5717-4562-b3fc-2c963f66afa6"))

    assert response.status_code == 405
    documented = sorted(verb.upper() for verb in document["paths"][path])
    assert sorted(part.strip() for part in response.headers["Allow"].split(",")) == documented
