"""The two hottest reads, answered before FastAPI's middleware and routing.

`GET /api/v1/accounts/{id}` and `GET /api/v1/accounts?targetId=` are most of the
API's traffic. Through FastAPI's layers (its middleware, router, dependency solving,
a worker-thread hop) a read cost several times its query. Here a read that is plainly
fine (a valid token in a read group, verified once and then cached; a well-formed id; an
account found) is answered directly, with the same bytes and headers the routes send.
Anything else (no token, a bad
id, an unknown account, an unusual query, a database error) is not answered here: the
request goes on through FastAPI unchanged, which gives every error exactly as before.
So the fast path has no error handling of its own to drift from the routes'.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl
from uuid import UUID

from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from accounts.bootstrap import Application
from accounts.domain.account import AccountType
from accounts.entrypoints.http.auth import TokenVerifier
from accounts.entrypoints.http.correlation import HEADER as CORRELATION_HEADER
from accounts.entrypoints.http.correlation import correlation_text
from accounts.entrypoints.http.problems import ApiProblem

log = logging.getLogger(__name__)
R = TypeVar("R")

ACCOUNTS_PATH = "/api/v1/accounts"
ACCOUNT_PREFIX = ACCOUNTS_PATH + "/"
ACCOUNT_TYPES = frozenset(account_type.value for account_type in AccountType)
TARGET_PARAMETERS = frozenset({"targetId", "accountType", "type"})


# A plainly good read's answer: the body and the headers of a 200, as `stored_account_response` and
# `stored_list_response` would send them (same names, same order: tests/integration/test_api_reads.py).
Answer = tuple[bytes, list[tuple[bytes, bytes]]]
JSON_TYPE = (b"content-type", b"application/json")
# Authorization headers seen to grant reading, kept with their token's expiry (a dictionary lookup per
# read instead of the verifier's locked cache); forgotten all at once past this many.
GRANTED_MAX = 4096


class FastReads:
    def __init__(self, application: Application, verifier: TokenVerifier) -> None:
        self.application = application  # its `reads` looked up on each request, as the routes do
        self.verifier = verifier
        self.read_groups = list(application.settings.read_groups)
        self._granted: dict[bytes, float] = {}

    async def answer(self, scope: Scope) -> Answer | None:
        """The answer to a plainly good account read, or None to let the full stack answer."""
        if scope["method"] != "GET":
            return None
        path: str = scope["path"]
        if path.startswith(ACCOUNT_PREFIX):
            account_id = _uuid(path[len(ACCOUNT_PREFIX) :])
            if account_id is None:
                return None
            supplied = self._reader_correlation(scope)
            if supplied is None:
                return None
            stored = await self._read(self.application.reads.account, account_id)
            if stored is None:
                return None
            headers = [(b"etag", stored.etag.encode("latin-1")), *_sized(stored.wire, supplied)]
            return stored.wire, headers
        if path == ACCOUNTS_PATH:
            query = _target_query(scope["query_string"])
            if query is None:
                return None
            supplied = self._reader_correlation(scope)
            if supplied is None:
                return None
            wires = await self._read(self.application.reads.by_target, *query)
            if wires is None:
                return None
            body = b'{"accountResponseList":[' + b",".join(wires) + b"]}"
            return body, _sized(body, supplied)
        return None

    def _reader_correlation(self, scope: Scope) -> bytes | None:
        """The x-correlation-id supplied (b"" when none) if the token may read accounts, else None.

        One pass over the headers for both: this runs for every read.
        """
        authorization: bytes | None = None
        supplied = b""
        for name, value in scope["headers"]:
            if name == b"authorization" and authorization is None:
                authorization = value
            elif name == CORRELATION_HEADER and not supplied:
                supplied = value
        if authorization is None:
            return None
        expires_at = self._granted.get(authorization)
        if (expires_at is None or expires_at <= time.time()) and not self._grant(authorization):
            return None
        return supplied

    def _grant(self, authorization: bytes) -> bool:
        """Whether the header's token may read accounts now (the verifier decides); remembered till it expires."""
        self._granted.pop(authorization, None)
        try:
            principal = self.verifier.principal(authorization.decode("latin-1"), self.read_groups, "read accounts")
        except ApiProblem:
            return False
        if len(self._granted) >= GRANTED_MAX:
            self._granted.clear()
        self._granted[authorization] = principal.expires_at
        return True

    async def _read(self, read: Callable[..., R], *args: Any) -> R | None:
        try:
            if self.application.reads.inline:
                return read(*args)
            return await run_in_threadpool(read, *args)
        except Exception as error:  # the full stack meets it again and answers it (503 and so on)
            log.debug("fast read failed (%r); the full stack answers instead", error)
            return None


def _sized(body: bytes, supplied: bytes) -> list[tuple[bytes, bytes]]:
    """The headers every answer ends with: its length and type, then (as the middleware adds it) its correlation id."""
    return [
        (b"content-length", str(len(body)).encode("latin-1")),
        JSON_TYPE,
        (b"x-correlation-id", correlation_text(supplied).encode("latin-1")),
    ]


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


TARGET_ONLY = b"targetId="


def _target_query(query_string: bytes) -> tuple[UUID, str | None] | None:
    """(target id, account type) from a plain `targetId=...[&accountType=...]` query, else None."""
    if query_string.startswith(TARGET_ONLY) and len(query_string) == len(TARGET_ONLY) + 36:
        # The commonest query by far, `targetId=<uuid>` alone: no decoding to do, so no parse_qsl.
        target = _uuid(query_string[len(TARGET_ONLY) :].decode("latin-1"))
        return None if target is None else (target, None)
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    params = dict(pairs)
    if len(params) != len(pairs) or not params.keys() <= TARGET_PARAMETERS:
        return None
    target_id = _uuid(params.get("targetId", ""))
    chosen = [params[name] for name in ("accountType", "type") if name in params]
    if target_id is None or any(value not in ACCOUNT_TYPES for value in chosen):
        return None
    return target_id, chosen[0] if chosen else None
