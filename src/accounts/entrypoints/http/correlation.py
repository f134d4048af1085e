"""Correlation ids: the client's x-correlation-id when it is a UUID, else a new one."""

from __future__ import annotations

import uuid

HEADER = b"x-correlation-id"


def correlation_id(supplied: bytes | None) -> uuid.UUID:
    if supplied:
        try:
            return uuid.UUID(supplied.decode("latin-1").strip())
        except ValueError:
            pass
    return uuid.uuid4()
