"""Bad input gets a 4xx problem document naming the field and the rule, never a 500, and changes nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.test_api_support import Api, assert_problem, invalid_names, shared_api, tenure_request


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from shared_api(request, tmp_path_factory)


@pytest.fixture
def account(api: Api) -> dict:
    return api.create()


def refused_create(api: Api, body: Any, status: int, *words: str, **kwargs: Any) -> dict:
    before = api.snapshot()
    problem = assert_problem(api.post(body, **kwargs), status, *words)
    assert api.snapshot() == before
    return problem


WRONG_TYPES = [
    ("accountBalance", "12.50", "JSON number"),
    ("accountBalance", True, "JSON number"),
    ("accountBalance", [1], "JSON number"),
    ("consolidatedBalance", {"amount": 1}, "JSON number"),
    ("targetId", 12345, "UUID"),
    ("targetId", "12345", "UUID"),
    ("targetType", 7, "string"),
    ("accountType", "master", "Master"),
    ("accountType", "Bogus", "Recharge"),
    ("accountStatus", "Closed", "Suspended"),
    ("rentGroupType", "Parking", "LeaseHolders"),
    ("startDate", 0, "ISO-8601"),
    ("startDate", "yesterday", "datetime"),
    ("endDate", "2021-02-30", "date"),
    ("paymentReference", 1234567890, "string"),
    ("paymentReference", "12345", "9 or 10 digits"),
    ("paymentReference", "12345678901", "9 or 10 digits"),
    ("paymentReference", "12345abcde", "9 or 10 digits"),
    ("parentAccountId", "parent", "UUID"),
    ("consolidatedCharges", {"type": "Rent"}, "JSON array"),
    ("consolidatedCharges", [{"type": "Rent", "frequency": "Weekly", "amount": "1"}], "JSON number"),
    ("tenure", "Secure", "JSON object"),
    ("agreementType", "x" * 101, "at most 100"),
    ("unknownField", 1, "not a known field"),
]


@pytest.mark.parametrize(("field", "value", "rule"), WRONG_TYPES)
def test_a_field_of_the_wrong_type_or_value_is_named_in_the_problem(
    api: Api, field: str, value: object, rule: str
) -> None:
    problem = refused_create(api, tenure_request(**{field: value}), 400, field, rule)
    assert any(name.startswith(field) for name in invalid_names(problem)), problem
    assert all(param["reason"] for param in problem["invalidParams"])


@pytest.mark.parametrize("field", ["targetType", "targetId", "accountType"])
def test_a_required_field_left_out_is_named(api: Api, field: str) -> None:
    body = tenure_request()
    del body[field]
    problem = refused_create(api, body, 400, field, "required")
    assert invalid_names(problem) == [field]


@pytest.mark.parametrize(
    ("amount", "rule"),
    [("1.005", "2 decimal places"), ("1000000000000", "12 digits"), ("1e400", "number"), ("-0.001", "decimal places")],
)
def test_money_that_does_not_fit_numeric_14_2_is_refused_not_rounded(api: Api, amount: str, rule: str) -> None:
    raw = tenure_request()
    text = api_json(raw).replace('"accountStatus"', f'"accountBalance": {amount}, "accountStatus"')
    refused_create(api, text, 400, "accountBalance", rule)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_not_a_number_is_not_money(api: Api, constant: str) -> None:
    text = api_json(tenure_request()).replace('"accountStatus"', f'"accountBalance": {constant}, "accountStatus"')
    refused_create(api, text, 400, constant, "not a number")


@pytest.mark.parametrize(
    "field",
    ["agreementType", "endReasonCode", "targetType", "tenure.fullAddress", "tenure.primaryTenants.0.fullName"],
)
@pytest.mark.parametrize("bad", ["nul\x00byte", "lone \ud800 surrogate"])
def test_text_no_database_can_store_is_refused(api: Api, field: str, bad: str) -> None:
    body = tenure_request()
    if field.startswith("tenure."):
        if "primaryTenants" in field:
            body["tenure"]["primaryTenants"][0]["fullName"] = bad
        else:
            body["tenure"]["fullAddress"] = bad
    else:
        body[field] = bad
    content = api_json(body)
    problem = refused_create(api, content, 400, field.split(".")[-1])
    assert invalid_names(problem) == [field]


@pytest.mark.parametrize(
    "moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "10000-01-01", "2021-13-01T00:00:00Z"]
)
def test_a_date_outside_the_calendar_is_refused(api: Api, moment: str) -> None:
    problem = refused_create(api, tenure_request(startDate=moment), 400, "startDate")
    assert invalid_names(problem) == ["startDate"]


def test_an_end_before_the_start_is_refused(api: Api) -> None:
    refused_create(
        api, tenure_request(startDate="2022-04-01", endDate="2021-04-01"), 400, "endDate", "before startDate"
    )


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", ["empty"]),
        (b"{", ["not valid JSON"]),
        (b"{'single': 'quotes'}", ["not valid JSON"]),
        (b"\xff\xfe{}", ["not valid JSON"]),
        (b"[]", ["JSON object"]),
        (b'"an account"', ["JSON object"]),
        (b"null", ["JSON object"]),
        (b"[" * 100_000 + b"]" * 100_000, ["nested too deeply"]),
        (b'{"a":' * 20_000 + b"1" + b"}" * 20_000, ["nested too deeply"]),
    ],
)
def test_a_body_that_is_not_an_account_is_refused(api: Api, content: bytes, words: list[str]) -> None:
    refused_create(api, content, 400, *words)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_an_account_in_another_media_type_is_refused(api: Api, content_type: str) -> None:
    refused_create(api, api_json(tenure_request()), 415, "application/json", headers={"Content-Type": content_type})


def test_a_huge_body_is_refused_before_it_is_read(api: Api, account: dict) -> None:
    limit = api.application.settings.max_body_bytes
    huge = api_json(tenure_request(agreementType="x" * (limit + 1)))
    correlation = str(uuid.uuid4())
    problem = refused_create(api, huge, 413, str(limit), headers={"x-correlation-id": correlation})
    assert problem["instance"] == "/api/v1/accounts"
    assert api.post(huge, headers={"x-correlation-id": correlation}).headers["x-correlation-id"] == correlation
    before = api.snapshot()
    assert_problem(api.patch(account["id"], huge), 413)
    assert api.snapshot() == before


def test_a_huge_body_sent_without_a_length_is_refused_as_it_arrives(api: Api, account: dict) -> None:
    limit = api.application.settings.max_body_bytes

    def chunks() -> Iterator[bytes]:
        yield b'{"agreementType": "'
        for _ in range(limit // 1000 + 2):
            yield b"x" * 1000
        yield b'"}'

    before = api.snapshot()
    response = api.request(
        "PATCH",
        f"/api/v1/accounts/{account['id']}",
        content=chunks(),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert_problem(response, 413, str(limit))
    assert api.snapshot() == before


def test_query_strings_full_of_sql_or_rubbish_are_refused_not_run(api: Api, account: dict) -> None:
    before = api.snapshot()
    for params in (
        {"targetId": "'; DELETE FROM accounts; --"},
        {"targetId": account["targetId"], "accountType": "Master' OR '1'='1"},
        {"targetId": "\x00"},
    ):
        assert_problem(api.get("/api/v1/accounts", params=params), 400)
    assert api.snapshot() == before
    assert api.account(account["id"]).status_code == 200


@pytest.mark.parametrize("account_id", ["%00", str(uuid.uuid4()) + "x", "%F0%9F%92%A9", "a" * 2000])
def test_hostile_account_ids_are_bad_requests(api: Api, account_id: str) -> None:
    assert_problem(api.get(f"/api/v1/accounts/{account_id}"), 400, "id")
    assert_problem(api.patch(account_id, {"accountBalance": 1}), 400, "id")


def test_a_problem_never_echoes_a_huge_value_back_in_its_detail(api: Api) -> None:
    problem = assert_problem(api.get(f"/api/v1/accounts/{'z' * 5000}"), 400, "id")
    assert len(problem["detail"]) < 200


def test_a_path_that_leads_nowhere_is_a_not_found_problem(api: Api) -> None:
    assert_problem(api.get("/api/v1/accounts/..%2F..%2Fetc%2Fpasswd"), 404)
    assert_problem(api.get("/api/v1/nowhere"), 404)
    assert_problem(api.request("DELETE", "/api/v1/accounts"), 405)


def api_json(body: dict) -> str:
    """JSON with every non-ASCII character escaped, as a strict client writes it (lone surrogates too)."""
    return json.dumps(body)


@pytest.mark.parametrize("depth", [40, 700])
@pytest.mark.parametrize("kind", ["merge", "json", "create"])
def test_a_body_nested_deeper_than_any_account_is_refused_before_it_is_walked(
    api: Api, account: dict, depth: int, kind: str
) -> None:
    deep = '{"a": ' * depth + "1" + "}" * depth
    before = api.snapshot()
    if kind == "merge":
        response = api.patch(account["id"], '{"tenure": ' + deep + "}")
    elif kind == "json":
        response = api.patch(
            account["id"], f'[{{"op": "add", "path": "/tenure", "value": {deep}}}]', "application/json"
        )
    else:
        response = api.post(api_json(tenure_request())[:-1] + ', "extra": ' + deep + "}")
    assert_problem(response, 400, "nested too deeply", "32 levels")
    assert api.snapshot() == before


def test_a_number_with_thousands_of_digits_is_refused_plainly(api: Api, account: dict) -> None:
    response = api.patch(account["id"], '{"accountBalance": ' + "9" * 5000 + "}")
    problem = assert_problem(response, 400, "too many digits")
    assert "sys." not in problem["detail"]
