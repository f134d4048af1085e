"""The opaque cursors every paged listing gives (`nextCursor`) and takes back (`cursor`).

A cursor is the listing's own place (its parts as text, the last one free to hold any text),
written as URL-safe base64; whatever a client sends that no page gave is a 400 naming `cursor`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from accounts.entrypoints.http.problems import ApiProblem

SEPARATOR = "|"


class BadCursor(ValueError):
    """Raised by a listing's own reading of the parts (a date that is not one, ...)."""


def opaque(parts: Sequence[str]) -> str:
    raw = SEPARATOR.join(parts).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parts_of(text: str, count: int) -> list[str]:
    """The `count` parts of a cursor a page gave (the last may hold the separator); a 400 otherwise."""
    try:
        parts = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode().split(SEPARATOR, count - 1)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad_cursor() from None
    if len(parts) != count:
        raise bad_cursor()
    return parts


def bad_cursor(rule: str = "must be a nextCursor from a page") -> ApiProblem:
    return ApiProblem(400, f"cursor {rule}", [{"name": "cursor", "reason": rule}])
