"""The service does what its OpenAPI document says, case by case: what Schemathesis found disagreeing.

tests/e2e/test_schemathesis.py runs Schemathesis itself against a real server; these are the disagreements
it found, each pinned as a client would meet it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from accounts.domain.rent_week import FIRST_DAY, LAST_DAY
from accounts.entrypoints.http.schemas import NO_NUL_PATTERN, NOT_BLANK_PATTERN, RENT_DAY_PATTERN
from tests.integration.test_api_support import Api, assert_problem, invalid_names, shared_api


@pytest.fixture(scope="module", params=["sqlite"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from shared_api(request, tmp_path_factory)


@pytest.fixture(scope="module")
def document(api: Api) -> dict[str, Any]:
    return api.client.get("/api/v1/openapi.json").json()  # type: ignore[no-any-return]


def test_a_merge_patch_naming_an_unknown_field_is_refused_even_when_it_removes_it(api: Api) -> None:
    account = api.create()

    for body, name in [
        ({"": None}, ""),
        ({"accountBalanse": None}, "accountBalanse"),
        ({"tenure": {"x": 1}}, "tenure.x"),
    ]:
        problem = assert_problem(api.patch(account["id"], body), 400, "not a known field")
        assert invalid_names(problem) == [name]
    # The read-only fields a whole document carries may come back unchanged.
    unchanged = {"id": account["id"], "createdBy": account["createdBy"], "agreementType": "Secure"}
    assert api.patch(account["id"], unchanged).status_code == 200


def test_a_statement_date_is_an_iso_date_not_a_number(api: Api) -> None:
    account = api.create()
    url = f"/api/v1/accounts/{account['id']}/transactions"

    assert_problem(api.get(url, params={"to": "0"}), 400, "to")
    assert api.get(url, params={"to": "2026-04-06"}).status_code == 200


def test_patch_on_the_arrears_listing_is_a_405_allowing_get(api: Api) -> None:
    response = api.request("PATCH", "/api/v1/accounts/arrears", content=b"{}")

    assert_problem(response, 405)
    assert response.headers["Allow"] == "GET"


def test_the_arrears_sort_alias_is_checked_when_sort_by_is_given_too(api: Api) -> None:
    response = api.get("/api/v1/accounts/arrears", params={"sortBy": "endDate", "sort": "false"})

    assert invalid_names(assert_problem(response, 400, "amountOwed")) == ["sortBy"]
    assert api.get("/api/v1/accounts/arrears", params={"sortBy": ""}).status_code == 200  # empty: the default


def envelope(**overrides: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "eventType": "TenureCreatedEvent",
        "dateTime": "2026-04-06T09:30:00Z",
        "entityId": str(uuid.uuid4()),
        "eventData": {"newData": {}},
        **overrides,
    }


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"eventData": None}, "eventData must be an object"),
        ({"user": []}, "user must be an object"),
        ({"user": {"name": 1}}, "user.name must be string"),
        ({"dateTime": "2026-04-06"}, "RFC 3339"),
        ({"dateTime": "0001-01-01T00:02:00.0+00:09"}, "0002 to 9998"),  # before any instant in UTC: was a 500
        ({"sourceSystem": 7}, "sourceSystem must be a string"),
        ({"correlationId": "not-a-uuid"}, "correlationId must be a UUID"),
        ({"eventType": ""}, "eventType must be a non-empty string"),
    ],
)
def test_the_events_intake_holds_envelopes_to_the_schema_it_shows(
    api: Api, overrides: dict[str, Any], words: str
) -> None:
    response = api.request("POST", "/api/v1/events", json=[envelope(**overrides)])

    assert invalid_names(assert_problem(response, 400, words)) == ["[0]"]


def test_the_events_intake_takes_a_lower_case_z(api: Api) -> None:
    response = api.request("POST", "/api/v1/events", json=envelope(dateTime="2026-04-06t09:30:00z"))

    assert response.status_code == 202, response.text


def test_the_rent_day_pattern_is_exactly_the_days_with_a_rent_week() -> None:
    def matches(day: Any) -> bool:
        return re.fullmatch(RENT_DAY_PATTERN, day.isoformat()) is not None

    assert matches(FIRST_DAY) and matches(LAST_DAY)
    assert not matches(FIRST_DAY - timedelta(days=1)) and not matches(LAST_DAY + timedelta(days=1))
    assert matches(FIRST_DAY + timedelta(days=300)) and matches(LAST_DAY - timedelta(days=300))


def test_the_text_patterns_agree_with_what_the_service_refuses() -> None:
    """NUL is refused everywhere; a blank reason is what Python's strip leaves empty (ECMA's \\s differs)."""
    for code in range(0x3100):
        text = chr(code)
        assert (re.fullmatch(NO_NUL_PATTERN, text) is not None) == (text != "\0"), hex(code)
        assert (re.fullmatch(NOT_BLANK_PATTERN, text) is not None) == (text != "\0" and bool(text.strip())), hex(code)


def test_a_declared_if_match_is_a_string_and_ids_in_paths_are_uuids(document: dict[str, Any]) -> None:
    for path, methods in document["paths"].items():
        for operation in methods.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "If-Match":
                    assert parameter["schema"]["type"] == "string", path
                if parameter["in"] == "path":
                    assert parameter["schema"].get("format") == "uuid", (path, parameter["name"])
