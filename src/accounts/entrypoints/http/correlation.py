"""Correlation ids: the client's x-correlation-id when it is a UUID, else a new one; and on every log record.

Light on purpose: the worker's relay-and-sinks process puts the filter on its logs without
importing the HTTP app (FastAPI and the routes: about half a second and 17 MB).
"""

from __future__ import annotations

import contextvars
import logging
import random
import uuid

HEADER = b"x-correlation-id"
correlation_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="-")
_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)  # the version and variant bits of a random UUID
_NOT_VERSION = ~((0xF000 << 64) | (0xC000 << 48))


class CorrelationFilter(logging.Filter):
    """Puts the request's correlation id on every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation_id_var.get()
        return True


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
