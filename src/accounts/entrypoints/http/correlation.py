"""Correlation ids: which x-correlation-id a request carries, a new one when none.

The one rule, for every route: the x-correlation-id values in the order they came, across
repeated headers and comma-separated lists (HTTP treats the two alike, so a proxy that
joins repeated headers changes nothing), and the first of them that is a UUID is the
request's id; blank and malformed values are passed over. With none, the request gets a
new id. The id is echoed in its canonical form (lower case, hyphenated).

The context variable that puts it on every log record lives with the logging set-up
(`accounts.runtime`); it is named here too for the HTTP layer.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable

from accounts.runtime import correlation_id_var as correlation_id_var  # the HTTP layer sets it per request

HEADER = b"x-correlation-id"


def correlation_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The request's correlation id, as text, from its (lower-case) ASGI headers: see the module's rule."""
    for name, value in headers:
        if name == HEADER:
            for candidate in value.split(b",") if b"," in value else (value,):
                supplied = _uuid(candidate)
                if supplied is not None:
                    return supplied
    return new_correlation_id()


def new_correlation_id() -> str:
    """A random (version 4) UUID's text, without uuid4's system call or a UUID object.

    Correlation ids only need to be unique, not unguessable, so the random module's
    generator (reseeded in every process) will do: a third of the cost of `str(uuid4())`.
    """
    digits = "%032x" % (random.getrandbits(128) & _NOT_VERSION | _VERSION_4)
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)  # the version and variant bits of a random UUID
_NOT_VERSION = ~((0xF000 << 64) | (0xC000 << 48))


def _uuid(value: bytes) -> str | None:
    text = value.strip()
    if not text:
        return None
    try:
        return str(uuid.UUID(text.decode("latin-1")))
    except ValueError:
        return None
