"""PATCH bodies: JSON Merge Patch (RFC 7386) and JSON Patch (RFC 6902) on the wire document.

Existing clients send `[{"op": "replace", "path": "paymentReference", "value": ...,
"operationType": 2}]` as application/json: a path without its leading slash and an
extra key. Both are tolerated; top-level names are matched case-insensitively so
`AccountBalance` finds `accountBalance`. Everything else is strict.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from accounts.domain.errors import ValidationProblem

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
PLAIN_JSON = "application/json"
OPERATIONS = ("add", "remove", "replace", "move", "copy", "test")
MAX_OPERATIONS = 100


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values (RFC 6902 4.6): unlike Python's, false is not 0 and 1 is not true."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float | Decimal) and isinstance(right, int | float | Decimal):
        return left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    return type(left) is type(right) and left == right


def _pointer(path: Any, document: dict[str, Any], field: str) -> list[str]:
    if not isinstance(path, str):
        raise ValidationProblem(field, "must be a JSON pointer string", path)
    if path in ("", "/"):
        raise ValidationProblem(field, "must name a field of the account, not the whole document", path)
    tokens = [token.replace("~1", "/").replace("~0", "~") for token in path.lstrip("/").split("/")]
    by_lower = {key.lower(): key for key in document}
    tokens[0] = by_lower.get(tokens[0].lower(), tokens[0])
    return tokens


def _walk(document: Any, tokens: list[str], field: str, path: str) -> tuple[Any, str]:
    """The container holding the last token, and that token."""
    node = document
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise ValidationProblem(field, f"names {path!r}, which does not exist", path)
    if not isinstance(node, dict | list):
        raise ValidationProblem(field, f"names {path!r}, which is inside a value that is not an object or array", path)
    return node, tokens[-1]


def _get(container: Any, key: str, field: str, path: str) -> Any:
    if isinstance(container, dict) and key in container:
        return container[key]
    if isinstance(container, list) and key.isdigit() and int(key) < len(container):
        return container[int(key)]
    raise ValidationProblem(field, f"names {path!r}, which does not exist", path)


def _remove(container: Any, key: str, field: str, path: str) -> Any:
    value = _get(container, key, field, path)
    if isinstance(container, dict):
        del container[key]
    else:
        del container[int(key)]
    return value


def _add(container: Any, key: str, value: Any, field: str, path: str, replace: bool) -> None:
    if isinstance(container, dict):
        if replace and key not in container:
            raise ValidationProblem(field, f"replaces {path!r}, which does not exist", path)
        container[key] = value
        return
    if key == "-" and not replace:
        container.append(value)
        return
    if not key.isdigit() or int(key) > len(container) or (replace and int(key) >= len(container)):
        raise ValidationProblem(field, f"names {path!r}, which is not a valid array index", path)
    if replace:
        container[int(key)] = value
    else:
        container.insert(int(key), value)


def json_patch(document: dict[str, Any], operations: Any) -> dict[str, Any]:
    """RFC 6902, all or nothing: the first bad operation rejects the whole patch."""
    if not isinstance(operations, list):
        raise ValidationProblem("body", "a JSON Patch must be an array of operations")
    if len(operations) > MAX_OPERATIONS:
        raise ValidationProblem("body", f"may hold at most {MAX_OPERATIONS} operations")
    result = copy.deepcopy(document)
    for index, operation in enumerate(operations):
        field = f"[{index}]"
        if not isinstance(operation, dict):
            raise ValidationProblem(field, "must be an object with op and path")
        op = operation.get("op")
        if op not in OPERATIONS:
            raise ValidationProblem(f"{field}.op", f"must be one of {', '.join(OPERATIONS)}", op)
        path = operation.get("path")
        tokens = _pointer(path, result, f"{field}.path")
        container, key = _walk(result, tokens, f"{field}.path", str(path))
        if op in ("add", "replace", "test") and "value" not in operation:
            raise ValidationProblem(f"{field}.value", f"is required for {op}")
        if op == "remove":
            _remove(container, key, f"{field}.path", str(path))
        elif op in ("add", "replace"):
            _add(container, key, copy.deepcopy(operation["value"]), f"{field}.path", str(path), op == "replace")
        elif op == "test":
            if not json_equal(_get(container, key, f"{field}.path", str(path)), operation["value"]):
                raise ValidationProblem(f"{field}", f"test failed: {path!r} does not hold the given value")
        else:  # move, copy
            source_tokens = _pointer(operation.get("from"), result, f"{field}.from")
            source, source_key = _walk(result, source_tokens, f"{field}.from", str(operation.get("from")))
            value = (
                _remove(source, source_key, f"{field}.from", str(operation.get("from")))
                if op == "move"
                else copy.deepcopy(_get(source, source_key, f"{field}.from", str(operation.get("from"))))
            )
            container, key = _walk(result, tokens, f"{field}.path", str(path))
            _add(container, key, value, f"{field}.path", str(path), replace=False)
    return result


def apply_patch(document: dict[str, Any], media_type: str, body: Any) -> dict[str, Any]:
    """Apply a PATCH body of the given media type to the account's wire document."""
    if media_type == JSON_PATCH or (media_type == PLAIN_JSON and isinstance(body, list)):
        return json_patch(document, body)
    if not isinstance(body, dict):
        raise ValidationProblem("body", "a merge patch must be a JSON object of the fields to change")
    patched = merge_patch(document, body)
    assert isinstance(patched, dict)
    return patched
