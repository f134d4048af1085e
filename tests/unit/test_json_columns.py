"""What the JSON columns store: orjson's text where it can, json.dumps's where it cannot."""

from __future__ import annotations

import json

import pytest

from accounts.adapters.database.engine import json_text
from accounts.domain.events import strict_json


@pytest.mark.parametrize(
    "value",
    [
        {"fullAddress": "12 Mare Street, Hackney", "householdMembers": [{"id": "x", "isResponsible": True}]},
        {"name": "Zoë Ōkafor-Brontë", "empty": None, "nested": {"a": [1, 2.5, -0.0, 1e16]}},
        {"big": 2**70},  # past 64 bits: orjson refuses, json.dumps writes it
        {"lone": "\ud800"},  # a lone surrogate: orjson refuses, json.dumps escapes it
        {1: "a key that is not text"},
    ],
)
def test_a_json_column_reads_back_what_was_stored(value: object) -> None:
    assert json.loads(json_text(value)) == json.loads(json.dumps(value))


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": -Infinity}', '{"a": 1e999}', "[Infinity]"])
def test_what_is_not_json_is_refused_before_it_can_reach_a_column(text: str) -> None:
    with pytest.raises(ValueError):
        strict_json(text)


def test_strict_json_reads_ordinary_json() -> None:
    assert strict_json(b'{"a": [1, 2.5, -3e10, true, null, "x"]}') == {"a": [1, 2.5, -3e10, True, None, "x"]}


@pytest.mark.parametrize(
    "text",
    [
        '{"id": 18446744073709551616}',  # 2**64: past orjson's integers, read exactly all the same
        '{"id": -9223372036854775809}',
        '{"name": "lone \\ud800 surrogate"}',  # orjson refuses it; the json module reads it, as before
        '{"a": [1, 2.5, -0.0, 1e-7, "Zo\\u00eb", {"b": null}]}',
    ],
)
def test_strict_json_reads_what_the_json_module_reads(text: str) -> None:
    assert strict_json(text.encode("utf-8", "surrogatepass")) == json.loads(text)
    assert strict_json(text) == json.loads(text)
