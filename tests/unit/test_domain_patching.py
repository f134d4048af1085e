"""PATCH bodies: JSON Merge Patch (RFC 7386) and JSON Patch (RFC 6902), including the existing client's shape."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from accounts.domain.errors import ValidationProblem
from accounts.entrypoints.http.patching import (
    JSON_PATCH,
    MERGE_PATCH,
    PLAIN_JSON,
    apply_patch,
    json_patch,
    merge_patch,
)

ACCOUNT: dict[str, Any] = {
    "id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "paymentReference": "1000000005",
    "accountBalance": 0,
    "agreementType": "Master Account",
    "endReasonCode": None,
    "consolidatedCharges": [{"type": "Rent", "frequency": "Weekly", "amount": 120}],
    "tenure": {"fullAddress": "1 Hillman Street", "primaryTenants": [{"fullName": "Ms Jane Smith"}]},
}


def account() -> dict[str, Any]:
    return copy.deepcopy(ACCOUNT)


# RFC 7386 ------------------------------------------------------------------------------------------

# The examples of RFC 7386, appendix A: (target, patch, result).
RFC_7386 = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC_7386)
def test_merge_patch_follows_the_rfc_examples(target: Any, patch: Any, result: Any) -> None:
    original = copy.deepcopy(target)
    assert merge_patch(target, patch) == result
    assert target == original  # the document patched is never changed in place


def test_a_merge_patch_changes_nested_fields_and_keeps_their_neighbours() -> None:
    patched = apply_patch(account(), MERGE_PATCH, {"tenure": {"fullAddress": "9 Mare Street"}, "agreementType": None})
    assert patched["tenure"] == {"fullAddress": "9 Mare Street", "primaryTenants": [{"fullName": "Ms Jane Smith"}]}
    assert "agreementType" not in patched


@pytest.mark.parametrize("body", [[], ["a"], "Ended", 7, None])
def test_a_merge_patch_must_be_an_object(body: Any) -> None:
    with pytest.raises(ValidationProblem, match="merge patch must be a JSON object"):
        apply_patch(account(), MERGE_PATCH, body)


# RFC 6902 ------------------------------------------------------------------------------------------


def test_the_existing_clients_patch_works_without_the_leading_slash_and_with_its_extra_key() -> None:
    body = [{"op": "replace", "path": "paymentReference", "value": "1234567890", "operationType": 2}]
    patched = apply_patch(account(), PLAIN_JSON, body)
    assert patched == {**ACCOUNT, "paymentReference": "1234567890"}


def test_application_json_holding_an_object_is_a_merge_patch_and_an_array_a_json_patch() -> None:
    assert apply_patch(account(), PLAIN_JSON, {"accountBalance": 5})["accountBalance"] == 5
    assert (
        apply_patch(account(), PLAIN_JSON, [{"op": "replace", "path": "/accountBalance", "value": 6}])["accountBalance"]
        == 6
    )


def test_top_level_names_match_whatever_their_case_but_nested_ones_exactly() -> None:
    assert json_patch(account(), [{"op": "replace", "path": "/ACCOUNTBALANCE", "value": 1}])["accountBalance"] == 1
    with pytest.raises(ValidationProblem, match="does not exist"):
        json_patch(account(), [{"op": "replace", "path": "/tenure/FULLADDRESS", "value": "x"}])


def test_every_operation_does_what_rfc_6902_says() -> None:
    patched = json_patch(
        account(),
        [
            {"op": "add", "path": "/consolidatedCharges/-", "value": {"type": "Service", "amount": 5}},
            {"op": "add", "path": "/consolidatedCharges/0", "value": {"type": "First"}},
            {"op": "remove", "path": "/consolidatedCharges/1"},
            {"op": "replace", "path": "/accountBalance", "value": -10},
            {"op": "copy", "from": "/tenure/fullAddress", "path": "/endReasonCode"},
            {"op": "move", "from": "/agreementType", "path": "/tenure/agreement"},
            {"op": "test", "path": "/accountBalance", "value": -10},
            {"op": "add", "path": "/tenure/primaryTenants/0/fullName", "value": "Jane Smith"},
        ],
    )
    assert patched["consolidatedCharges"] == [{"type": "First"}, {"type": "Service", "amount": 5}]
    assert patched["accountBalance"] == -10
    assert patched["endReasonCode"] == "1 Hillman Street"
    assert "agreementType" not in patched and patched["tenure"]["agreement"] == "Master Account"
    assert patched["tenure"]["primaryTenants"][0]["fullName"] == "Jane Smith"


def test_a_patch_is_all_or_nothing_and_never_touches_the_document_it_was_given() -> None:
    document = account()
    with pytest.raises(ValidationProblem) as refused:
        json_patch(
            document,
            [
                {"op": "replace", "path": "/accountBalance", "value": 99},
                {"op": "test", "path": "/accountBalance", "value": 100},
            ],
        )
    assert refused.value.field == "[1]"
    assert document == ACCOUNT


def test_the_pointer_escapes_of_rfc_6901_are_understood() -> None:
    document = {"a/b": 1, "m~n": 2}
    assert json_patch(document, [{"op": "replace", "path": "/a~1b", "value": 3}])["a/b"] == 3
    assert json_patch(document, [{"op": "replace", "path": "/m~0n", "value": 4}])["m~n"] == 4


@pytest.mark.parametrize(
    ("operation", "field", "words"),
    [
        ({"op": "jump", "path": "/accountBalance"}, "[0].op", "must be one of add, remove, replace, move, copy, test"),
        ({"path": "/accountBalance"}, "[0].op", "must be one of"),
        ({"op": "replace", "path": "/nowhere", "value": 1}, "[0].path", "does not exist"),
        ({"op": "remove", "path": "/nowhere"}, "[0].path", "does not exist"),
        ({"op": "replace", "path": "/accountBalance"}, "[0].value", "is required for replace"),
        ({"op": "add", "path": "/tenure/x"}, "[0].value", "is required for add"),
        ({"op": "replace", "path": "", "value": {}}, "[0].path", "not the whole document"),
        ({"op": "replace", "path": "/", "value": {}}, "[0].path", "not the whole document"),
        ({"op": "replace", "path": None, "value": 1}, "[0].path", "JSON pointer"),
        ({"op": "add", "path": "/consolidatedCharges/9", "value": 1}, "[0].path", "not a valid array index"),
        ({"op": "replace", "path": "/consolidatedCharges/-", "value": 1}, "[0].path", "not a valid array index"),
        ({"op": "add", "path": "/paymentReference/x", "value": 1}, "[0].path", "not an object or array"),
        ({"op": "add", "path": "/nowhere/deeper", "value": 1}, "[0].path", "does not exist"),
        ({"op": "move", "from": "/nowhere", "path": "/x"}, "[0].from", "does not exist"),
        ({"op": "copy", "path": "/x"}, "[0].from", "JSON pointer"),
        ("replace", "[0]", "must be an object with op and path"),
    ],
)
def test_a_bad_operation_is_refused_naming_where_it_is_and_what_is_wrong(
    operation: Any, field: str, words: str
) -> None:
    with pytest.raises(ValidationProblem) as refused:
        json_patch(account(), [operation])
    assert refused.value.field == field
    assert words in str(refused.value)


def test_the_second_of_two_operations_is_named_when_it_is_the_bad_one() -> None:
    with pytest.raises(ValidationProblem) as refused:
        json_patch(account(), [{"op": "test", "path": "/accountBalance", "value": 0}, {"op": "nope", "path": "/x"}])
    assert refused.value.field == "[1].op"


@pytest.mark.parametrize("body", [{"op": "replace"}, "[]", None, 5])
def test_a_json_patch_must_be_an_array(body: Any) -> None:
    with pytest.raises(ValidationProblem, match="array of operations"):
        apply_patch(account(), JSON_PATCH, body)


def test_a_patch_of_more_than_a_hundred_operations_is_refused() -> None:
    test = {"op": "test", "path": "/accountBalance", "value": 0}
    assert json_patch(account(), [test] * 100) == ACCOUNT
    with pytest.raises(ValidationProblem, match="at most 100"):
        json_patch(account(), [test] * 101)


def test_an_empty_patch_of_either_kind_changes_nothing() -> None:
    assert apply_patch(account(), JSON_PATCH, []) == ACCOUNT
    assert apply_patch(account(), MERGE_PATCH, {}) == ACCOUNT


@pytest.mark.parametrize(
    ("value", "expected", "passes"),
    [
        (0, False, False),
        (1, True, False),
        (0, 0.0, True),
        (0, "0", False),
        ([1, True], [1, 1], False),
        ({"a": 0}, {"a": False}, False),
        ({"a": [1, 2]}, {"a": [1, 2]}, True),
        (None, None, True),
    ],
)
def test_a_test_operation_compares_json_values_with_their_types(value: Any, expected: Any, passes: bool) -> None:
    """RFC 6902 4.6: false is not 0 and "0" is not 0, although Python would say they are equal."""
    operations = [{"op": "test", "path": "/x", "value": expected}]
    if passes:
        assert json_patch({"x": value}, operations) == {"x": value}
    else:
        with pytest.raises(ValidationProblem, match="test failed"):
            json_patch({"x": value}, operations)
