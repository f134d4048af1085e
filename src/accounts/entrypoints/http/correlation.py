"""Correlation ids: the client's x-correlation-id when it is a UUID, else a new one.

The context variable that puts it on every log record lives with the logging set-up
(`accounts.runtime`); it is named here too for the HTTP layer.
"""

from __future__ import annotations

import random
import uuid

from accounts.runtime import correlation_id_var as correlation_id_var  # the HTTP layer sets it per request

HEADER = b"x-correlation-id"
_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)  # the version and variant bits of a random UUID
_NOT_VERSION = ~((0xF000 << 64) | (0xC000 << 48))


def _supplied(supplied: bytes | None) -> uuid.UUID | None:
    if supplied:
        try:
            return uuid.UUID(supplied.decode("latin-1").strip())
        except ValueError:
            pass
    return None


def correlation_id(supplied: bytes | None) -> uuid.UUID:
    return _supplied(supplied) or uuid.uuid4()


def correlation_text(supplied: bytes | None) -> str:
    """`correlation_id` as text, for the fast reads: a new one without uuid4's system call.

    Correlation ids only need to be unique, not unguessable, so the random module's
    generator (reseeded in every process) will do: a third of the cost of `str(uuid4())`.
    """
    given = _supplied(supplied)
    if given is not None:
        return str(given)
    digits = "%032x" % (random.getrandbits(128) & _NOT_VERSION | _VERSION_4)
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
