"""Reads serve the account as stored with its last change, and the fast path answers as the full stack does.

`GET /accounts/{id}` and `GET /accounts?targetId=` are answered before FastAPI's routing
when the request is plainly good (`FastReads`); everything else goes through the full
stack. A client must not be able to tell which answered it (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient

from accounts.entrypoints.http.app import create_app
from accounts.entrypoints.http.auth import mint_token
from tests.integration.test_api_support import READER, Api, shared_api, tenure_request


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from shared_api(request, tmp_path_factory)


@pytest.fixture(scope="module")
def full_stack(api: Api) -> TestClient:
    """The same application with the fast path switched off: every request through FastAPI."""
    app = create_app(api.application)
    app.fast_reads = None
    return TestClient(app, raise_server_exceptions=False)


def test_a_read_answers_exactly_what_the_last_change_answered(api: Api) -> None:
    created = api.post(tenure_request())
    assert created.status_code == 201, created.text
    account_id = created.json()["id"]

    read = api.account(account_id)
    assert read.status_code == 200
    assert read.content == created.content
    assert read.headers["ETag"] == created.headers["ETag"] == f'"{account_id}-1"'
    assert read.headers["content-type"] == "application/json"

    patched = api.patch(account_id, {"accountBalance": -1234.5, "agreementType": "Renewed"})
    assert patched.status_code == 200, patched.text
    read = api.account(account_id)
    assert read.content == patched.content
    assert read.json()["accountBalance"] == -1234.5
    assert read.headers["ETag"] == patched.headers["ETag"] == f'"{account_id}-2"'

    listed = api.get(f"/api/v1/accounts?targetId={created.json()['targetId']}")
    assert listed.status_code == 200
    assert listed.content == b'{"accountResponseList":[' + patched.content + b"]}"


def _requests(api: Api) -> list[tuple[str, dict[str, str]]]:
    """Good reads and every way a read can go wrong, with the headers each is sent with."""
    first = api.create()
    target = first["targetId"]
    api.create(targetId=target, accountType="Sundry", agreementType="Sundry", paymentReference="")
    reader = {"Authorization": f"Bearer {api.reader_token}"}
    writer = {"Authorization": f"Bearer {api.writer_token}"}
    stranger = {"Authorization": f"Bearer {api.stranger_token}"}
    one = f"/api/v1/accounts/{first['id']}"
    return [
        (one, reader),
        (one, writer),
        (one, {**reader, "x-correlation-id": str(uuid.uuid4())}),
        (one, {**reader, "x-correlation-id": "not-a-uuid"}),
        (f"/api/v1/accounts/{str(first['id']).upper()}", reader),
        (f"/api/v1/accounts/{uuid.uuid4()}", reader),
        ("/api/v1/accounts/not-a-uuid", reader),
        (one, {}),
        (one, {"Authorization": "Bearer not.a.token"}),
        (one, {"Authorization": f"Basic {api.reader_token}"}),
        (one, stranger),
        (one + "/", reader),
        (f"/api/v1/accounts?targetId={target}", reader),
        (f"/api/v1/accounts?targetId={target}&accountType=Sundry", reader),
        (f"/api/v1/accounts?targetId={target}&type=Master", reader),
        (f"/api/v1/accounts?targetId={target}&accountType=Master&type=Sundry", reader),
        (f"/api/v1/accounts?targetId={target}&accountType=master", reader),
        (f"/api/v1/accounts?targetId={target}&accountType=", reader),
        (f"/api/v1/accounts?targetId={target}&targetId={uuid.uuid4()}", reader),
        (f"/api/v1/accounts?targetId={target}&colour=blue", reader),
        (f"/api/v1/accounts?targetId={uuid.uuid4()}", reader),
        ("/api/v1/accounts?targetId=", reader),
        ("/api/v1/accounts?targetId=42", reader),
        ("/api/v1/accounts", reader),
        (f"/api/v1/accounts?targetId={target}", stranger),
        (f"/api/v1/accounts?targetId={target}", {}),
        ("/api/v1/accounts/arrears?resultsCount=5", reader),
    ]


def _same_answer(fast: httpx.Response, full: httpx.Response, sent: dict[str, str]) -> None:
    assert fast.status_code == full.status_code
    assert list(fast.headers) == list(full.headers), "the same headers, in the same order"
    assert fast.headers.get("content-type") == full.headers.get("content-type")
    assert fast.headers.get("etag") == full.headers.get("etag")
    assert fast.headers.get("www-authenticate") == full.headers.get("www-authenticate")
    assert fast.json() == full.json() if fast.status_code >= 400 else fast.content == full.content
    assert uuid.UUID(fast.headers["x-correlation-id"])
    if "x-correlation-id" in sent and sent["x-correlation-id"] != "not-a-uuid":
        assert fast.headers["x-correlation-id"] == full.headers["x-correlation-id"] == sent["x-correlation-id"]


def test_the_fast_path_and_the_full_stack_answer_every_read_alike(api: Api, full_stack: TestClient) -> None:
    for path, headers in _requests(api):
        fast = api.client.get(path, headers=headers, follow_redirects=False)
        full = full_stack.get(path, headers=headers, follow_redirects=False)
        try:
            _same_answer(fast, full, headers)
        except AssertionError as error:
            raise AssertionError(f"GET {path} {sorted(headers)}: {fast.status_code} {fast.text[:200]}") from error


def test_the_fast_path_answers_plain_reads_and_leaves_everything_else_to_the_full_stack(api: Api) -> None:
    fast_reads = api.client.app.fast_reads  # type: ignore[attr-defined]
    account = api.create()
    good = [f"Bearer {api.reader_token}".encode(), f"Bearer {api.writer_token}".encode()]

    def answered(path: str, query: str = "", authorization: bytes | None = good[0], method: str = "GET") -> bool:
        headers = [] if authorization is None else [(b"authorization", authorization)]
        scope = {"type": "http", "method": method, "path": path, "query_string": query.encode(), "headers": headers}
        return asyncio.run(fast_reads.answer(scope)) is not None

    one = f"/api/v1/accounts/{account['id']}"
    assert answered(one)
    assert answered(one, authorization=good[1])
    assert answered("/api/v1/accounts", f"targetId={account['targetId']}")
    assert answered("/api/v1/accounts", f"targetId={account['targetId']}&accountType=Master")
    assert answered("/api/v1/accounts", f"targetId={uuid.uuid4()}")  # an empty list is a plain answer

    assert not answered(f"/api/v1/accounts/{uuid.uuid4()}")  # 404: the full stack's problem document
    assert not answered("/api/v1/accounts/nope")
    assert not answered(one, authorization=None)
    assert not answered(one, authorization=f"Bearer {api.stranger_token}".encode())
    assert not answered(one, method="HEAD")
    assert not answered(one, method="PATCH")
    assert not answered("/api/v1/accounts", f"targetId={account['targetId']}&accountType=master")
    assert not answered("/api/v1/accounts", f"targetId={account['targetId']}&sort=1")
    assert not answered("/api/v1/accounts", "")
    assert not answered("/api/v1/accounts/arrears")


def test_the_fast_path_stops_answering_a_token_once_it_has_expired(api: Api) -> None:
    fast_reads = api.client.app.fast_reads  # type: ignore[attr-defined]
    account = api.create()
    token = mint_token(
        api.application.settings, **READER, groups=["housing-finance-read"], lifetime=timedelta(seconds=2)
    )
    scope = {
        "type": "http",
        "method": "GET",
        "path": f"/api/v1/accounts/{account['id']}",
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {token}".encode())],
    }
    assert asyncio.run(fast_reads.answer(scope)) is not None  # and its grant remembered
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    time.sleep(max(0.0, expires - time.time()) + 0.1)

    assert asyncio.run(fast_reads.answer(scope)) is None, "the full stack answers it"
    assert api.client.get(scope["path"], headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_reads_from_many_short_lived_threads_leave_the_writers_their_connections(api: Api) -> None:
    """Each thread's read connection goes with its thread: the pool the writers use is never drained."""
    account = api.create()
    found: list[bool] = []

    def read() -> None:
        found.append(api.application.reads.account(uuid.UUID(account["id"])) is not None)

    for _ in range(4):
        threads = [threading.Thread(target=read) for _ in range(25)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert found == [True] * 100
    assert api.post(tenure_request()).status_code == 201
