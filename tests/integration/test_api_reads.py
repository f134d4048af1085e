"""Reads serve the account as stored with its last change, and the lean read routes answer as FastAPI would.

`GET /accounts/{id}` and `GET /accounts?targetId=` are lean routes (`entrypoints/http/reads.py`):
no dependency solving, their own parsing of the id and the query. They sit behind every
middleware like any route. A client must not be able to tell them from ordinary FastAPI
routes: the parity test below answers every request twice, once by the lean routes and once
by reference routes declared the ordinary FastAPI way (parameters validated by FastAPI, the
token checked by a dependency, Starlette's `Response`), and compares status, headers (names,
order, values) and body, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Annotated

import httpx
import jwt
import orjson
import pytest
import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.testclient import TestClient
from starlette.responses import Response

from accounts.adapters.database import tables as t
from accounts.bootstrap import Application
from accounts.domain.account import AccountType
from accounts.entrypoints.http import reads
from accounts.entrypoints.http.app import create_app
from accounts.entrypoints.http.auth import mint_token
from accounts.entrypoints.http.problems import ApiProblem
from accounts.service.accounts import AccountNotFound
from tests.integration.test_api_support import READER, Api, shared_api, tenure_request


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from shared_api(request, tmp_path_factory)


def reference_app(api: Api) -> FastAPI:
    """The same application with the two reads declared the ordinary FastAPI way, as they were before the lean
    routes: FastAPI validates the parameters, a dependency checks the token, Starlette's Response frames it."""
    app = create_app(api.application)
    router = APIRouter(prefix="/api/v1")

    @router.get("/accounts", dependencies=[Depends(reads.authorise_read)])
    async def find_accounts(
        request: Request,
        targetId: Annotated[str, Query()],
        accountType: Annotated[AccountType | None, Query()] = None,
        type: Annotated[AccountType | None, Query()] = None,
    ) -> Response:
        if not targetId:
            raise ApiProblem(400, "targetId is required", [{"name": "targetId", "reason": "is required"}])
        target = reads.parse_uuid(targetId, "targetId")
        chosen = accountType or type
        wires = await api.application.reads.by_target(target, chosen.value if chosen else None)
        body = b'{"accountResponseList":[' + b",".join(wires) + b"]}"
        return Response(body, media_type="application/json")

    @router.get("/accounts/{id}")
    async def get_account(request: Request, id: str) -> Response:
        reads.authorise_read(request)
        account_id = reads.parse_uuid(id, "id")
        stored = await api.application.reads.account(account_id)
        if stored is None:
            raise AccountNotFound(account_id)
        return Response(stored.wire, media_type="application/json", headers={"ETag": stored.etag})

    lean = [route for route in app.router.routes if isinstance(route, reads.ReadRoute)]
    assert len(lean) == 2
    replacements = {(route.path, frozenset(route.methods)): route for route in router.routes}  # type: ignore[attr-defined]
    app.router.routes[:] = [
        replacements[(route.path, frozenset(route.methods))] if route in lean else route  # type: ignore[attr-defined]
        for route in app.router.routes
    ]
    return app


@pytest.fixture(scope="module")
def reference(api: Api) -> TestClient:
    return TestClient(reference_app(api), raise_server_exceptions=False)


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
    lookup = "/api/v1/accounts?targetId="
    return [
        (one, reader),
        (one, writer),
        (f"/api/v1/accounts/{str(first['id']).upper()}", reader),
        (f"/api/v1/accounts/{str(first['id']).replace('-', '')}", reader),
        (f"/api/v1/accounts/{{{first['id']}}}", reader),
        (f"/api/v1/accounts/{uuid.uuid4()}", reader),
        ("/api/v1/accounts/not-a-uuid", reader),
        ("/api/v1/accounts/%20", reader),
        ("/api/v1/accounts/" + "9" * 100, reader),
        ("/api/v1/accounts/not-a-uuid", {}),
        (one, {}),
        (one, {"Authorization": ""}),
        (one, {"Authorization": "Bearer"}),
        (one, {"Authorization": "Bearer not.a.token"}),
        (one, {"Authorization": f"Basic {api.reader_token}"}),
        (one, {"Authorization": f"bearer {api.reader_token}"}),
        (one, stranger),
        (one + "/", reader),
        (one + "?unknown=1&id=2", reader),
        (lookup + target, reader),
        (lookup + target.upper(), reader),
        (lookup + f"%7B{target}%7D", reader),
        (lookup + f"{target}&accountType=Sundry", reader),
        (lookup + f"{target}&accountType=Recharge", reader),
        (lookup + f"{target}&type=Master", reader),
        (lookup + f"{target}&accountType=Master&type=Sundry", reader),
        (lookup + f"{target}&type=Sundry&accountType=Master", reader),
        (lookup + f"{target}&accountType=Sundry&accountType=Master", reader),
        (lookup + f"{target}&accountType=master", reader),
        (lookup + f"{target}&accountType=", reader),
        (lookup + f"{target}&type=", reader),
        (lookup + f"{target}&accountType=Nope&type=Bad", reader),
        (lookup + f"{target}&accountType=Master&type=Bad", reader),
        (lookup + f"{target}&targetId={uuid.uuid4()}", reader),
        (lookup + f"{target}&targetId=42", reader),
        (lookup + f"42&targetId={target}", reader),
        (lookup + f"{target}&colour=blue&&", reader),
        (lookup + f"%20{target}", reader),
        (lookup + f"{target}%20", reader),
        (lookup + str(uuid.uuid4()), reader),
        (lookup, reader),
        (lookup + "&accountType=Nope", reader),
        (lookup + "42", reader),
        (lookup + "42&accountType=Nope", reader),
        ("/api/v1/accounts?targetId", reader),
        ("/api/v1/accounts?targetid=" + target, reader),
        ("/api/v1/accounts?accountType=master", reader),
        ("/api/v1/accounts", reader),
        ("/api/v1/accounts?targetId=42", {}),
        (lookup + target, stranger),
        (lookup + target, {}),
        (lookup + target, {"Authorization": "Bearer not.a.token"}),
        ("/api/v1/accounts/arrears?resultsCount=5", reader),
    ]


NOON = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

# Sent with every request above: no correlation id, good ones, and the ones that diverged.
CORRELATION_HEADERS: list[list[tuple[str, str]]] = [
    [],
    [("x-correlation-id", "6c0e2a1e-8f5b-4d3a-9c1e-2b7f4a5d6e8f")],
    [("x-correlation-id", "not-a-uuid")],
    [("x-correlation-id", ""), ("x-correlation-id", "0b2f9a4c-3d1e-4f5a-8b6c-7d8e9f0a1b2c")],
]


def _send(client: TestClient, path: str, headers: dict[str, str], extra: list[tuple[str, str]]) -> httpx.Response:
    return client.get(path, headers=[*headers.items(), *extra], follow_redirects=False)


def _same_answer(lean: httpx.Response, full: httpx.Response) -> None:
    """Status, body and headers alike (names in order, values), the correlation id aside (checked by the caller)."""
    assert lean.status_code == full.status_code
    assert [name for name, _ in lean.headers.raw] == [name for name, _ in full.headers.raw], "the same headers in order"
    assert [h for h in lean.headers.raw if h[0] != b"x-correlation-id"] == [
        h for h in full.headers.raw if h[0] != b"x-correlation-id"
    ]
    assert lean.content == full.content


def test_the_lean_routes_answer_every_read_as_the_ordinary_fastapi_routes_would(
    api: Api, reference: TestClient
) -> None:
    for path, headers in _requests(api):
        for extra in CORRELATION_HEADERS:
            lean = _send(api.client, path, headers, extra)
            full = _send(reference, path, headers, extra)
            try:
                _same_answer(lean, full)
                supplied = [value for name, value in extra if _is_uuid(value)]
                made = lean.headers["x-correlation-id"]
                assert str(uuid.UUID(made)) == made
                if supplied:
                    assert made == full.headers["x-correlation-id"] == supplied[0]
                else:
                    assert made != full.headers["x-correlation-id"], "a new id for every request"
            except AssertionError as error:
                raise AssertionError(
                    f"GET {path} {sorted(headers)} {extra}: {lean.status_code} {lean.text[:300]}"
                ) from error


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def test_the_problems_of_bad_reads_say_what_fastapi_said(api: Api) -> None:
    """The words of the parameters' problems, as a client reads them (and as FastAPI's validation wrote them)."""
    types = "must be one of Master, Recharge or Sundry"
    target = str(uuid.uuid4())
    expected = {
        "/api/v1/accounts": ("targetId: is required", [("targetId", "is required")]),
        "/api/v1/accounts?targetId=": ("targetId is required", [("targetId", "is required")]),
        "/api/v1/accounts?targetId=42": ("targetId must be a UUID, got '42'", [("targetId", "must be a UUID")]),
        "/api/v1/accounts?accountType=master": (
            f"targetId: is required; accountType: {types}",
            [("targetId", "is required"), ("accountType", types)],
        ),
        f"/api/v1/accounts?targetId={target}&accountType=Nope&type=": (
            f"accountType: {types}; type: {types}",
            [("accountType", types), ("type", types)],
        ),
        "/api/v1/accounts/nope": ("id must be a UUID, got 'nope'", [("id", "must be a UUID")]),
    }
    for path, (detail, params) in expected.items():
        response = api.get(path)
        assert response.status_code == 400, path
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["detail"] == detail, path
        assert [(p["name"], p["reason"]) for p in problem["invalidParams"]] == params, path
        assert problem["instance"] == path.split("?")[0]
    missing = str(uuid.uuid4())
    response = api.get(f"/api/v1/accounts/{missing}")
    assert response.status_code == 404
    assert response.json()["detail"] == f"no account has id {missing}"
    assert api.client.head(f"/api/v1/accounts/{missing}").status_code == 405


@pytest.mark.parametrize(
    "sent",
    [
        [("x-correlation-id", ""), ("x-correlation-id", "{id}")],
        [("x-correlation-id", "   "), ("x-correlation-id", "{id}")],
        [("x-correlation-id", "not-a-uuid"), ("x-correlation-id", "{id}")],
        [("x-correlation-id", "not-a-uuid, {id}")],
        [("x-correlation-id", ", {id}")],
        [("x-correlation-id", "{id}"), ("x-correlation-id", "{other}")],
        [("x-correlation-id", "{id}, {other}")],
        [("x-correlation-id", "{ID}")],
        [("X-Correlation-ID", "urn:uuid:{id}")],
        [("x-request-id", "{other}"), ("x-correlation-id", "{id}")],
    ],
)
def test_the_correlation_id_is_the_first_uuid_supplied_on_every_route(api: Api, sent: list[tuple[str, str]]) -> None:
    """Repeated headers and comma-separated lists alike; blank and malformed values passed over; the id
    echoed in its canonical form. The same rule on the lean reads and on every other route."""
    supplied, other = str(uuid.uuid4()), str(uuid.uuid4())
    account = api.create()
    headers = [(name, value.format(id=supplied, ID=supplied.upper(), other=other)) for name, value in sent]
    token = [("authorization", f"Bearer {api.writer_token}")]
    answers = [
        api.client.get(f"/api/v1/accounts/{account['id']}", headers=token + headers),
        api.client.get(f"/api/v1/accounts?targetId={account['targetId']}", headers=token + headers),
        api.client.get("/api/v1/accounts/not-a-uuid", headers=token + headers),
        api.client.get(f"/api/v1/accounts/{uuid.uuid4()}", headers=headers),
        api.client.get("/api/v1/target-types", headers=token + headers),
        api.client.get("/api/v1/nowhere", headers=headers),
        api.client.post(
            "/api/v1/accounts", headers=[*token, ("content-type", "application/json"), *headers], content=b"{not json"
        ),
    ]
    assert [answer.headers["x-correlation-id"] for answer in answers] == [supplied] * len(answers)
    assert [answer.status_code for answer in answers] == [200, 200, 400, 401, 200, 404, 400]


def test_a_token_stops_reading_once_it_has_expired(api: Api) -> None:
    account = api.create()
    token = mint_token(
        api.application.settings, **READER, groups=["housing-finance-read"], lifetime=timedelta(seconds=2)
    )
    path = f"/api/v1/accounts/{account['id']}"
    assert api.client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    time.sleep(max(0.0, expires - time.time()) + 0.1)
    response = api.client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["detail"] == "the bearer token has expired"


def test_reads_from_many_short_lived_threads_leave_the_writers_their_connections(api: Api) -> None:
    """Each thread's read connections (its own, or its event loop's pool) go with it: the writers' are never drained."""
    account = api.create()
    found: list[bool] = []

    def read() -> None:
        found.append(asyncio.run(api.application.reads.account(uuid.UUID(account["id"]))) is not None)

    for _ in range(4):
        threads = [threading.Thread(target=read) for _ in range(25)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert found == [True] * 100
    assert api.post(tenure_request()).status_code == 201


def test_the_reads_answer_through_their_asynchronous_path_on_both_databases(application: Application) -> None:
    """Served as `accounts serve` serves them: the pool opened at startup on the server's loop (PostgreSQL),
    many reads at once (more than the pool's connections), a target's accounts oldest first."""
    settings = application.settings
    writer = {"Authorization": f"Bearer {mint_token(settings, **READER, groups=['housing-finance-write'])}"}
    with TestClient(create_app(application)) as client:  # with: the lifespan runs, as under uvicorn
        target = str(uuid.uuid4())
        made = [client.post("/api/v1/accounts", json=tenure_request(target), headers=writer).json()]
        for _ in range(3):
            sundry = tenure_request(target, accountType="Sundry", agreementType="Sundry")
            made.append(client.post("/api/v1/accounts", json=sundry, headers=writer).json())
        ids = [account["id"] for account in made]

        def listed(query: str = "") -> list[str]:
            response = client.get(f"/api/v1/accounts?targetId={target}{query}", headers=writer)
            assert response.status_code == 200, response.text
            return [account["id"] for account in response.json()["accountResponseList"]]

        assert listed() == ids, "oldest first"
        assert listed("&accountType=Sundry") == ids[1:]
        assert listed("&type=Master") == ids[:1]
        with application.engine.begin() as connection:  # created at the same moment: then by id
            connection.execute(
                sa.update(t.accounts).where(t.accounts.c.target_id == uuid.UUID(target)).values(created_at=NOON)
            )
        assert listed() == sorted(ids)

        # Many reads at once (more than the pool's connections; on PostgreSQL those asked for in one turn of
        # the loop share a statement): each gets its own account, the missing one a 404.
        wanted = [*ids * 15, str(uuid.uuid4())]
        with ThreadPoolExecutor(max_workers=len(wanted)) as threads:
            answers = list(threads.map(lambda key: client.get(f"/api/v1/accounts/{key}", headers=writer), wanted))
        assert [answer.status_code for answer in answers] == [200] * (len(wanted) - 1) + [404]
        assert [answer.json()["id"] for answer in answers[:-1]] == wanted[:-1]
        assert [answer.headers["etag"] for answer in answers[:-1]] == [f'"{key}-1"' for key in wanted[:-1]]
        pool = getattr(application.reads, "pool", None)
        if application.engine.dialect.name == "postgresql":
            assert pool is not None, "the reads used the pool opened at startup"
            assert pool.get_stats()["requests_num"] > 0 and pool.get_stats()["pool_size"] <= settings.read_pool_size
    assert getattr(application.reads, "pool", None) is None, "closed with the app"

    async def off_the_servers_loop() -> list[bool]:
        found = await asyncio.gather(*(application.reads.account(uuid.UUID(account_id)) for account_id in ids))
        return [stored is not None for stored in found]

    assert asyncio.run(off_the_servers_loop()) == [True] * len(ids)

    async def served_together() -> list[list[str]]:
        """Reads of every kind at once, on a loop where the reads were opened (as the server's)."""
        reads_ = application.reads
        await reads_.open()
        try:
            target_id, nobody = uuid.UUID(target), uuid.uuid4()
            kinds = [None, "Sundry", "Master", "Recharge"] * 3
            lists = await asyncio.gather(
                *(reads_.by_target(key, kind) for key in (target_id, nobody) for kind in kinds)
            )
            accounts = await asyncio.gather(*(reads_.account(uuid.UUID(key)) for key in ids * 3))
            assert [stored.account_id for stored in accounts if stored] == [uuid.UUID(key) for key in ids * 3]
            return [[orjson.loads(wire)["id"] for wire in found] for found in lists]
        finally:
            await reads_.aclose()

    expected = {None: sorted(ids), "Sundry": sorted(ids[1:]), "Master": ids[:1], "Recharge": []}
    kinds = [None, "Sundry", "Master", "Recharge"] * 3
    assert asyncio.run(served_together()) == [expected[kind] for kind in kinds] + [[] for _ in kinds]
