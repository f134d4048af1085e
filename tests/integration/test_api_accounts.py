"""Creating, finding and reading accounts over HTTP, as the existing clients do (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from accounts.adapters.database.engine import create_engine
from accounts.bootstrap import Application
from accounts.domain.payment_reference import has_valid_check_digit
from tests.integration.test_api_support import (
    READER,
    WRITER,
    Api,
    assert_problem,
    fresh_payment_reference,
    invalid_names,
    shared_api,
    tenure_request,
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from shared_api(request, tmp_path_factory)


def test_the_listeners_create_request_gives_a_tenure_account_with_a_checked_payment_reference(api: Api) -> None:
    body = tenure_request()
    response = api.post(body)  # exactly what the listener sends: paymentReference "" and a createdBy

    assert response.status_code == 201, response.text
    account = response.json()
    assert response.headers["Location"] == f"/api/v1/accounts/{account['id']}"
    assert response.headers["ETag"] == f'"{account["id"]}-1"'
    prn = account["paymentReference"]
    assert len(prn) == 10 and prn.isdigit() and has_valid_check_digit(prn)
    assert account["targetId"] == body["targetId"]
    assert account["targetType"] == "Tenure"
    assert account["accountType"] == "Master"
    assert account["rentGroupType"] == "Tenant"
    assert account["agreementType"] == "Master Account"
    assert account["accountStatus"] == "Active"
    assert account["tenure"] == body["tenure"]
    assert account["accountBalance"] == 0
    assert account["consolidatedCharges"] == []
    assert account["parentAccountId"] is None
    assert account["createdAt"] == account["lastUpdatedAt"]
    assert account["createdAt"].endswith("Z")


def test_who_created_an_account_comes_from_the_token_not_the_body(api: Api) -> None:
    account = api.create(createdBy="someone.else@example.com", lastUpdatedBy="nobody")
    assert account["createdBy"] == WRITER["email"]
    assert account["lastUpdatedBy"] == WRITER["email"]


def test_the_account_read_back_is_the_account_created_with_the_same_etag(api: Api) -> None:
    created = api.post(tenure_request())
    read = api.account(created.json()["id"])
    assert read.status_code == 200
    assert read.json() == created.json()
    assert read.headers["ETag"] == created.headers["ETag"]
    assert read.headers["content-type"] == "application/json"


def test_clients_find_a_tenures_account_by_target_id_in_the_account_response_list(api: Api) -> None:
    account = api.create()
    api.create()  # another tenure's account is not listed

    response = api.get(f"/api/v1/accounts?targetId={account['targetId']}")

    assert response.status_code == 200
    assert response.json()["accountResponseList"][0]["id"] == account["id"]
    assert len(response.json()["accountResponseList"]) == 1


def test_a_tenures_accounts_filter_by_account_type_under_either_parameter_name(api: Api) -> None:
    master = api.create()
    sundry = api.create(target_id=master["targetId"], accountType="Sundry", rentGroupType="MajorWorks")

    for name in ("accountType", "type"):
        found = api.get("/api/v1/accounts", params={"targetId": master["targetId"], name: "Sundry"}).json()
        assert [a["id"] for a in found["accountResponseList"]] == [sundry["id"]]
    everything = api.get("/api/v1/accounts", params={"targetId": master["targetId"]}).json()
    assert {a["id"] for a in everything["accountResponseList"]} == {master["id"], sundry["id"]}


def test_a_tenure_without_accounts_lists_none(api: Api) -> None:
    response = api.get(f"/api/v1/accounts?targetId={uuid.uuid4()}")
    assert response.status_code == 200
    assert response.json() == {"accountResponseList": []}


@pytest.mark.parametrize("query", ["", "?targetId=", "?accountType=Master"])
def test_looking_up_accounts_without_a_target_id_is_refused(api: Api, query: str) -> None:
    problem = assert_problem(api.get(f"/api/v1/accounts{query}"), 400, "targetId", "required")
    assert invalid_names(problem) == ["targetId"]


@pytest.mark.parametrize("target", ["12345", "' OR 1=1 --", "00000000-0000-0000-0000-00000000000g"])
def test_a_malformed_target_id_is_refused(api: Api, target: str) -> None:
    problem = assert_problem(api.get("/api/v1/accounts", params={"targetId": target}), 400, "targetId", "UUID")
    assert invalid_names(problem) == ["targetId"]


def test_an_unknown_account_type_in_the_lookup_is_refused_naming_the_allowed_ones(api: Api) -> None:
    response = api.get("/api/v1/accounts", params={"targetId": str(uuid.uuid4()), "accountType": "Rent"})
    assert_problem(response, 400, "accountType", "Master", "Recharge", "Sundry")


def test_a_supplied_payment_reference_is_kept(api: Api) -> None:
    reference = fresh_payment_reference()
    assert api.create(paymentReference=reference)["paymentReference"] == reference
    nine_digits = fresh_payment_reference()[:9]
    assert api.create(paymentReference=nine_digits)["paymentReference"] == nine_digits


def test_a_payment_reference_already_in_use_is_a_conflict_and_nothing_is_stored(api: Api) -> None:
    reference = api.create(paymentReference=fresh_payment_reference())["paymentReference"]
    before = api.snapshot()

    response = api.post(tenure_request(paymentReference=reference))

    problem = assert_problem(response, 409, "paymentReference", reference, "already used")
    assert invalid_names(problem) == ["paymentReference"]
    assert api.snapshot() == before


def test_allocated_payment_references_are_all_different_and_all_checked(api: Api) -> None:
    references = [api.create()["paymentReference"] for _ in range(12)]
    assert len(set(references)) == 12
    assert all(len(prn) == 10 and has_valid_check_digit(prn) for prn in references)


def test_a_tenure_created_twice_gives_one_active_master_account(api: Api) -> None:
    first = api.create()
    before = api.snapshot()

    response = api.post(tenure_request(target_id=first["targetId"]))

    assert_problem(response, 409, "targetId", "already has an active Master account", first["id"])
    assert api.snapshot() == before
    listed = api.get(f"/api/v1/accounts?targetId={first['targetId']}").json()["accountResponseList"]
    assert [a["id"] for a in listed] == [first["id"]]


def test_once_its_master_account_has_ended_a_tenure_can_have_a_new_one(api: Api) -> None:
    first = api.create()
    ended = api.patch(first["id"], {"accountStatus": "Ended", "endReasonCode": "END"})
    assert ended.status_code == 200, ended.text

    second = api.post(tenure_request(target_id=first["targetId"]))

    assert second.status_code == 201, second.text
    assert second.json()["paymentReference"] != first["paymentReference"]


def test_money_is_exact_and_written_as_a_number_with_two_decimals(api: Api) -> None:
    created = api.post(
        tenure_request(
            accountType="Sundry",
            accountBalance=Decimal("-1234567890.1"),
            consolidatedBalance=Decimal("0.30"),
            consolidatedCharges=[{"type": "Rent", "frequency": "Weekly", "amount": Decimal("317.5")}],
        )
    )

    assert created.status_code == 201, created.text
    for response in (created, api.account(created.json()["id"])):
        assert '"accountBalance":-1234567890.10' in response.text
        assert '"consolidatedBalance":0.30' in response.text
        assert '"amount":317.50' in response.text
        assert json.loads(response.text, parse_float=Decimal)["accountBalance"] == Decimal("-1234567890.10")


def test_a_zero_balance_never_reads_as_minus_zero(api: Api) -> None:
    created = api.post(tenure_request(accountType="Sundry", accountBalance=Decimal("-0.0")))
    assert created.status_code == 201, created.text
    assert '"accountBalance":0.00' in created.text
    assert '"accountBalance":0.00' in api.account(created.json()["id"]).text


def test_an_unknown_account_is_not_found(api: Api) -> None:
    missing = uuid.uuid4()
    problem = assert_problem(api.account(str(missing)), 404, str(missing))
    assert problem["instance"] == f"/api/v1/accounts/{missing}"


@pytest.mark.parametrize("account_id", ["not-a-uuid", "1", "%27%20OR%201%3D1--", "0" * 40])
def test_a_malformed_account_id_is_a_bad_request(api: Api, account_id: str) -> None:
    problem = assert_problem(api.get(f"/api/v1/accounts/{account_id}"), 400, "id", "must be a UUID")
    assert invalid_names(problem) == ["id"]


def test_target_types_are_listed_with_their_polarity(api: Api) -> None:
    response = api.get("/api/v1/target-types")
    assert response.status_code == 200
    polarity = {item["name"]: item["polarity"] for item in response.json()["targetTypes"]}
    assert polarity["Tenure"] == "NegativeIsArrears"
    assert polarity["HousingBenefit"] == "PositiveIsArrears"
    assert all(item["description"] for item in response.json()["targetTypes"])


def test_an_unknown_target_type_is_refused_naming_the_known_ones(api: Api) -> None:
    before = api.snapshot()
    problem = assert_problem(api.post(tenure_request(targetType="Garage")), 400, "targetType", "Tenure", "Licensing")
    assert invalid_names(problem) == ["targetType"]
    assert api.snapshot() == before


def test_a_parent_account_must_exist(api: Api) -> None:
    master = api.create()
    recharge = api.create(target_id=master["targetId"], accountType="Recharge", parentAccountId=master["id"])
    assert recharge["parentAccountId"] == master["id"]

    before = api.snapshot()
    orphan = api.post(tenure_request(accountType="Recharge", parentAccountId=str(uuid.uuid4())))
    assert_problem(orphan, 400, "parentAccountId", "existing account")
    assert api.snapshot() == before


def test_the_health_checks_answer_without_a_token(api: Api) -> None:
    for path in ("/api/v1/healthcheck/ping", "/api/v1/health/live", "/api/v1/health/ready"):
        response = api.client.get(path)
        assert response.status_code == 200, path
        assert response.json()["status"] == "Healthy"
    assert api.client.get("/api/v1/health/ready").json()["checks"] == {"database": "ok"}


def test_readiness_says_unavailable_when_the_database_is_gone(application: Application) -> None:
    api = Api(application)
    working = application.engine
    application.engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")  # nothing listens
    try:
        response = api.client.get("/api/v1/health/ready")
    finally:
        application.engine.dispose()
        application.engine = working
    problem = assert_problem(response, 503, "database")
    assert response.headers["Retry-After"] == "5"
    assert problem["instance"] == "/api/v1/health/ready"
    assert api.client.get("/api/v1/health/live").status_code == 200


def test_a_correlation_id_is_echoed_and_one_is_made_when_missing_or_malformed(api: Api) -> None:
    supplied = str(uuid.uuid4())
    assert api.get("/api/v1/target-types", headers={"x-correlation-id": supplied}).headers["x-correlation-id"] == (
        supplied
    )
    for headers in ({}, {"x-correlation-id": "not-a-uuid"}):
        made = api.get("/api/v1/target-types", headers=headers).headers["x-correlation-id"]
        assert str(uuid.UUID(made)) == made and made != supplied
    assert api.client.get("/api/v1/nowhere").headers["x-correlation-id"]


def test_the_reader_sees_what_the_writer_stored(api: Api) -> None:
    account = api.create()
    response = api.get(f"/api/v1/accounts/{account['id']}", token=api.reader_token)
    assert response.status_code == 200
    assert response.json()["createdBy"] == WRITER["email"] != READER["email"]
