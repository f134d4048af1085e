"""Changing an account over HTTP: merge patch, JSON Patch as the existing client sends it, If-Match."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from tests.integration.test_api_support import Api, assert_problem, fresh_payment_reference, invalid_names, shared_api


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from shared_api(request, tmp_path_factory)


@pytest.fixture
def account(api: Api) -> dict:
    return api.create()


def test_the_existing_client_corrects_a_payment_reference_with_its_json_patch(api: Api, account: dict) -> None:
    body = [{"op": "replace", "path": "paymentReference", "value": "1234567890", "operationType": 2}]

    response = api.patch(account["id"], body, content_type="application/json")

    assert response.status_code == 200, response.text
    assert response.json()["paymentReference"] == "1234567890"
    assert api.account(account["id"]).json()["paymentReference"] == "1234567890"


def test_the_existing_client_sets_a_balance_with_its_json_patch(api: Api, account: dict) -> None:
    body = '[{"op": "replace", "path": "accountBalance", "value": -1523.07, "operationType": 2}]'

    response = api.patch(account["id"], body, content_type="application/json")

    assert response.status_code == 200, response.text
    assert '"accountBalance":-1523.07' in api.account(account["id"]).text


def test_a_change_records_who_made_it_and_when_and_keeps_who_created_it(api: Api, account: dict) -> None:
    other_writer = api.application.settings
    from accounts.entrypoints.http.auth import mint_token

    token = mint_token(
        other_writer, name="Rent Officer", email="rent.officer@hackney.gov.uk", groups=["housing-finance-write"]
    )

    changed = api.patch(account["id"], {"agreementType": "Leasehold"}, token=token).json()

    assert changed["lastUpdatedBy"] == "rent.officer@hackney.gov.uk"
    assert changed["lastUpdatedAt"] > account["lastUpdatedAt"]
    assert changed["createdBy"] == account["createdBy"]
    assert changed["createdAt"] == account["createdAt"]


@pytest.mark.parametrize("content_type", ["application/merge-patch+json", "application/json"])
def test_a_merge_patch_changes_the_fields_it_names_and_nothing_else(api: Api, account: dict, content_type: str) -> None:
    response = api.patch(
        account["id"],
        {"accountBalance": Decimal("-250.10"), "tenure": {"fullAddress": "9 Mare Street, London E8 3RH"}},
        content_type=content_type,
    )

    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["accountBalance"] == -250.10
    assert changed["tenure"]["fullAddress"] == "9 Mare Street, London E8 3RH"
    assert changed["tenure"]["primaryTenants"] == account["tenure"]["primaryTenants"]
    untouched = {k: v for k, v in account.items() if k not in ("accountBalance", "tenure", "lastUpdatedAt")}
    assert {k: changed[k] for k in untouched} == untouched


def test_a_merge_patch_null_clears_a_field(api: Api, account: dict) -> None:
    changed = api.patch(account["id"], {"agreementType": None, "tenure": None}).json()
    assert changed["agreementType"] is None
    assert changed["tenure"] is None


def test_json_patch_operations_with_and_without_the_leading_slash(api: Api, account: dict) -> None:
    charge = {"type": "Rent", "frequency": "Weekly", "amount": 120.5}
    body = [
        {"op": "add", "path": "/consolidatedCharges/-", "value": charge},
        {"op": "copy", "from": "/consolidatedCharges/0", "path": "/consolidatedCharges/-"},
        {"op": "replace", "path": "consolidatedCharges/1/type", "value": "Service charge"},
        {"op": "test", "path": "/accountStatus", "value": "Active"},
        {"op": "remove", "path": "/endReasonCode"},
        {"op": "add", "path": "/endReasonCode", "value": "N/A"},
        {"op": "move", "from": "/agreementType", "path": "/endReasonCode"},
    ]

    response = api.patch(account["id"], body, content_type="application/json-patch+json")

    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["consolidatedCharges"] == [
        {"type": "Rent", "frequency": "Weekly", "amount": 120.5},
        {"type": "Service charge", "frequency": "Weekly", "amount": 120.5},
    ]
    assert '"amount":120.50' in response.text
    assert changed["endReasonCode"] == "Master Account"
    assert changed["agreementType"] is None


def test_top_level_names_are_matched_whatever_their_case(api: Api, account: dict) -> None:
    body = [{"op": "replace", "path": "/AccountBalance", "value": 10}]
    assert api.patch(account["id"], body, content_type="application/json").json()["accountBalance"] == 10


def test_a_failed_test_operation_rejects_the_whole_patch(api: Api, account: dict) -> None:
    before = api.snapshot()
    body = [
        {"op": "replace", "path": "/accountBalance", "value": 99},
        {"op": "test", "path": "/accountStatus", "value": "Ended"},
    ]
    problem = assert_problem(api.patch(account["id"], body, content_type="application/json"), 400, "test failed")
    assert invalid_names(problem) == ["[1]"]
    assert api.snapshot() == before


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ([{"op": "jump", "path": "/accountBalance"}], "[0].op", ["add, remove, replace"]),
        ([{"op": "replace", "path": "/nonsense", "value": 1}], "[0].path", ["does not exist"]),
        ([{"op": "replace", "path": "/accountBalance"}], "[0].value", ["required"]),
        ([{"op": "replace", "path": "", "value": {}}], "[0].path", ["whole document"]),
        ([{"op": "remove", "path": "/consolidatedCharges/7"}], "[0].path", ["does not exist"]),
        ([{"op": "add", "path": "/consolidatedCharges/x", "value": 1}], "[0].path", ["array index"]),
        ([{"op": "move", "from": "/nowhere", "path": "/agreementType"}], "[0].from", ["does not exist"]),
        (["replace"], "[0]", ["object with op and path"]),
        ([{"op": "replace", "path": 7, "value": 1}], "[0].path", ["JSON pointer"]),
    ],
)
def test_a_bad_json_patch_operation_is_named_and_changes_nothing(
    api: Api, account: dict, body: list, field: str, words: list[str]
) -> None:
    before = api.snapshot()
    problem = assert_problem(api.patch(account["id"], body, content_type="application/json-patch+json"), 400, *words)
    assert invalid_names(problem) == [field]
    assert api.snapshot() == before


def test_a_json_patch_must_be_an_array_and_a_merge_patch_an_object(api: Api, account: dict) -> None:
    assert_problem(
        api.patch(account["id"], {"op": "replace"}, content_type="application/json-patch+json"), 400, "array"
    )
    assert_problem(api.patch(account["id"], '"Ended"', content_type="application/json"), 400, "object")
    assert_problem(api.patch(account["id"], [1], content_type="application/merge-patch+json"), 400, "object")


def test_too_many_operations_are_refused(api: Api, account: dict) -> None:
    body = [{"op": "test", "path": "/accountStatus", "value": "Active"}] * 101
    assert_problem(api.patch(account["id"], body, content_type="application/json"), 400, "at most 100")


# If-Match ------------------------------------------------------------------------


def test_a_change_with_the_current_etag_succeeds_and_gives_a_new_etag(api: Api, account: dict) -> None:
    current = api.account(account["id"]).headers["ETag"]

    response = api.patch(account["id"], {"accountBalance": 5}, if_match=current)

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] != current
    assert api.account(account["id"]).headers["ETag"] == response.headers["ETag"]


@pytest.mark.parametrize("tag", ["*", "W/{etag}", '"nope", {etag}'])
def test_if_match_accepts_any_tag_a_weak_tag_and_a_list(api: Api, account: dict, tag: str) -> None:
    current = api.account(account["id"]).headers["ETag"]
    assert api.patch(account["id"], {"accountBalance": 5}, if_match=tag.format(etag=current)).status_code == 200


def test_a_change_made_from_a_stale_read_is_refused_and_the_later_change_survives(api: Api, account: dict) -> None:
    read_by_alice = api.account(account["id"]).headers["ETag"]
    assert api.patch(account["id"], {"accountBalance": -100}, if_match=read_by_alice).status_code == 200
    before = api.snapshot()

    bob = api.patch(account["id"], {"accountBalance": -5}, if_match=read_by_alice)

    assert_problem(bob, 412, "not the current version")
    assert api.snapshot() == before
    assert api.account(account["id"]).json()["accountBalance"] == -100


def test_a_stale_if_match_is_refused_even_for_a_patch_that_would_change_nothing(api: Api, account: dict) -> None:
    stale = api.account(account["id"]).headers["ETag"]
    api.patch(account["id"], {"accountBalance": 1})
    assert_problem(api.patch(account["id"], {}, if_match=stale), 412)


# What cannot change ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("id", "3fa85f64-5717-4562-b3fc-2c963f66afa6"), ("createdAt", "2020-01-01T00:00:00Z"), ("createdBy", "me")],
)
@pytest.mark.parametrize("kind", ["merge", "json"])
def test_the_id_and_who_created_the_account_when_cannot_be_changed(
    api: Api, account: dict, field: str, value: str, kind: str
) -> None:
    before = api.snapshot()
    if kind == "merge":
        response = api.patch(account["id"], {field: value})
    else:
        response = api.patch(account["id"], [{"op": "replace", "path": field, "value": value}], "application/json")
    problem = assert_problem(response, 400, field, "cannot be changed")
    assert invalid_names(problem) == [field]
    assert api.snapshot() == before


def test_removing_the_creation_fields_is_refused_too(api: Api, account: dict) -> None:
    response = api.patch(account["id"], [{"op": "remove", "path": "/createdBy"}], "application/json")
    assert_problem(response, 400, "createdBy", "cannot be changed")


@pytest.mark.parametrize("field", ["lastUpdatedBy", "lastUpdatedAt"])
def test_the_service_alone_sets_who_last_changed_the_account(api: Api, account: dict, field: str) -> None:
    assert_problem(api.patch(account["id"], {field: "2030-01-01T00:00:00Z"}), 400, field, "set by the service")


@pytest.mark.parametrize(
    ("patch", "field", "words"),
    [
        ({"startDate": "2022-01-01", "endDate": "2021-01-01"}, "endDate", ["before startDate"]),
        ({"paymentReference": "12"}, "paymentReference", ["9 or 10 digits"]),
        ({"paymentReference": None}, "paymentReference", ["required"]),
        ({"accountType": "Rent"}, "accountType", ["Master", "Sundry"]),
        ({"accountStatus": "Closed"}, "accountStatus", ["Active", "Ended"]),
        ({"rentGroupType": "Parking"}, "rentGroupType", ["GarParkHRA"]),
        ({"accountBalance": 1.005}, "accountBalance", ["2 decimal places"]),
        ({"accountBalance": "12.50"}, "accountBalance", ["number"]),
        ({"accountBalance": 1e13}, "accountBalance", ["digits"]),
        ({"targetId": "tenure-1"}, "targetId", ["UUID"]),
        ({"targetType": "Garage"}, "targetType", ["Tenure"]),
        ({"parentAccountId": "3fa85f64-5717-4562-b3fc-2c963f66afa6"}, "parentAccountId", ["Master"]),
        ({"favouriteColour": "blue"}, "favouriteColour", ["not a known field"]),
        ({"tenure": {"tenureId": "x"}}, "tenure.tenureId", ["UUID"]),
        ({"consolidatedCharges": [{"type": "Rent"}]}, "consolidatedCharges.0.frequency", ["required"]),
    ],
)
def test_the_patched_account_is_checked_again_and_a_broken_rule_changes_nothing(
    api: Api, account: dict, patch: dict, field: str, words: list[str]
) -> None:
    before = api.snapshot()
    problem = assert_problem(api.patch(account["id"], patch), 400, field, *words)
    assert field in invalid_names(problem)
    assert api.snapshot() == before


def test_a_payment_reference_used_by_another_account_cannot_be_taken(api: Api, account: dict) -> None:
    other = api.create(paymentReference=fresh_payment_reference())
    before = api.snapshot()
    response = api.patch(
        account["id"],
        [{"op": "replace", "path": "paymentReference", "value": other["paymentReference"]}],
        "application/json",
    )
    assert_problem(response, 409, "paymentReference", "already used")
    assert api.snapshot() == before


def test_reopening_an_ended_master_account_is_refused_while_the_tenure_has_another(api: Api, account: dict) -> None:
    api.patch(account["id"], {"accountStatus": "Ended"})
    replacement = api.create(target_id=account["targetId"])
    before = api.snapshot()
    problem = assert_problem(
        api.patch(account["id"], {"accountStatus": "Active"}), 409, "active Master", replacement["id"]
    )
    assert invalid_names(problem) == ["targetId"]
    assert api.snapshot() == before


def test_an_unknown_account_cannot_be_changed(api: Api) -> None:
    missing = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    assert_problem(api.patch(missing, {"accountBalance": 1}), 404, missing)
    assert_problem(api.patch("not-an-id", {"accountBalance": 1}), 400, "id", "UUID")


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", ""])
def test_a_patch_in_an_unknown_media_type_is_refused(api: Api, account: dict, content_type: str) -> None:
    assert_problem(
        api.patch(account["id"], "{}", content_type=content_type), 415, "merge-patch+json", "json-patch+json"
    )


# Nothing to change -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ({}, "application/merge-patch+json"),
        ([], "application/json"),
        ({"accountStatus": "Active"}, "application/json"),
        ([{"op": "replace", "path": "paymentReference", "value": "SAME", "operationType": 2}], "application/json"),
    ],
)
def test_a_patch_that_changes_nothing_makes_no_new_version_and_no_event(
    api: Api, account: dict, body: object, content_type: str
) -> None:
    if isinstance(body, list) and body:
        body[0]["value"] = account["paymentReference"]  # type: ignore[index]
    etag = api.account(account["id"]).headers["ETag"]
    before = api.snapshot()

    response = api.patch(account["id"], body, content_type=content_type, if_match=etag)

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == etag
    assert response.json() == api.account(account["id"]).json()
    assert response.json()["lastUpdatedAt"] == account["lastUpdatedAt"]
    assert api.snapshot() == before


def test_sending_back_the_whole_account_as_read_changes_nothing(api: Api, account: dict) -> None:
    read = api.account(account["id"])
    before = api.snapshot()
    response = api.patch(account["id"], read.json(), content_type="application/json", if_match=read.headers["ETag"])
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == read.headers["ETag"]
    assert api.snapshot() == before
