"""What the API tests share: a client with the tokens a housing officer would hold.

No tests here. Every request goes through the real FastAPI app onto a real SQLite or
PostgreSQL database. A module whose tests only add accounts of their own (fresh
target ids, fresh payment references) shares one migrated database per engine
through `shared_api`; a test that looks at every account (arrears, counts) uses
the `application` fixture and so a database of its own.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from accounts.adapters.database import tables as t
from accounts.bootstrap import Application, bootstrap
from accounts.entrypoints.http.app import create_app
from accounts.entrypoints.http.auth import mint_token
from tests.conftest import PG_HOST, PG_PORT, PG_USER, _create_database, _drop_database, make_settings, require_server

PROBLEM_JSON = "application/problem+json"
WRITER = {"name": "Finance Officer", "email": "finance.officer@hackney.gov.uk"}
READER = {"name": "Housing Officer", "email": "housing.officer@hackney.gov.uk"}


def fresh_payment_reference() -> str:
    """A supplied (legacy-style) PRN no other test uses: allocated ones start with 1, these with 2-9."""
    return str(random.randint(2_000_000_000, 9_999_999_999))


def shared_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """For a module-scoped fixture parametrised over "sqlite" and "postgresql": one database for the module."""
    tmp_path = tmp_path_factory.mktemp("api")
    server_url, name = "", ""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'accounts.db'}"
    else:
        require_server("PostgreSQL", PG_HOST, PG_PORT)
        server_url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"
        name, url = _create_database(server_url)
    application = bootstrap(make_settings(url, tmp_path), run_migrations=True)
    try:
        yield Api(application)
    finally:
        application.close()
        if name:
            _drop_database(server_url, name)


def to_json(body: Any) -> bytes:
    """JSON with Decimals written as exact numbers, as a careful client would send money."""

    def exact(value: Any) -> Any:
        if isinstance(value, Decimal):
            return orjson.Fragment(str(value))
        raise TypeError(type(value).__name__)

    return orjson.dumps(body, default=exact)


def tenure_request(target_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    """The body the finance listener sends to create a tenure's rent account (reference, section 4)."""
    tenure_id = target_id or str(uuid.uuid4())
    body: dict[str, Any] = {
        "createdBy": "listener@hackney.gov.uk",
        "paymentReference": "",
        "targetType": "Tenure",
        "accountType": "Master",
        "rentGroupType": "Tenant",
        "agreementType": "Master Account",
        "accountStatus": "Active",
        "targetId": tenure_id,
        "tenure": {
            "tenureId": tenure_id,
            "tenureType": {"code": "SEC", "description": "Secure"},
            "fullAddress": "Flat 3, 12 Hillman Street, London E8 1DY",
            "primaryTenants": [{"id": str(uuid.uuid4()), "fullName": "Ms Jane Smith"}],
        },
    }
    body.update(overrides)
    return body


class Api:
    """The Accounts API as its clients see it, plus a look at what the database holds."""

    def __init__(self, application: Application) -> None:
        self.application = application
        self.client = TestClient(create_app(application), raise_server_exceptions=False)
        settings = application.settings
        self.writer_token = mint_token(settings, **WRITER, groups=["housing-finance-write"])
        self.reader_token = mint_token(settings, **READER, groups=["housing-finance-read"])
        self.stranger_token = mint_token(settings, name="Stranger", email="s@example.com", groups=["parking"])

    # Requests -------------------------------------------------------------------

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.writer_token}"}

    def request(self, method: str, url: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth(token), **kwargs.pop("headers", {})}
        return self.client.request(method, url, headers=headers, **kwargs)

    def get(self, url: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, token or self.reader_token, **kwargs)

    def post(self, body: Any, token: str | None = None, **kwargs: Any) -> httpx.Response:
        """POST an account: a dict is written as JSON, bytes or text are sent as they are."""
        headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
        content = body if isinstance(body, bytes | str) else to_json(body)
        return self.request("POST", "/api/v1/accounts", token, content=content, headers=headers, **kwargs)

    def create(self, **overrides: Any) -> dict[str, Any]:
        """A new tenure account, as the listener creates it; fails the test if refused."""
        response = self.post(tenure_request(**overrides))
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def account(self, account_id: str) -> httpx.Response:
        return self.get(f"/api/v1/accounts/{account_id}")

    def patch(
        self,
        account_id: str,
        body: Any,
        content_type: str = "application/merge-patch+json",
        if_match: str | None = None,
        token: str | None = None,
    ) -> httpx.Response:
        headers = {"Content-Type": content_type}
        if if_match is not None:
            headers["If-Match"] = if_match
        content = body if isinstance(body, bytes | str) else to_json(body)
        return self.request("PATCH", f"/api/v1/accounts/{account_id}", token, content=content, headers=headers)

    # The database ----------------------------------------------------------------

    def count(self, table: sa.Table) -> int:
        with self.application.engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    def snapshot(self) -> tuple[list[tuple[Any, ...]], int, int]:
        """Every account row, the outbox size and the interim rows: to show nothing changed."""
        with self.application.engine.connect() as connection:
            accounts = [tuple(row) for row in connection.execute(sa.select(t.accounts).order_by(t.accounts.c.id))]
        return accounts, self.count(t.outbox), self.count(t.interim_rows)

    def events(self) -> list[dict[str, Any]]:
        """The outbox, oldest first, as the relay would publish it."""
        with self.application.engine.connect() as connection:
            rows = connection.execute(sa.select(t.outbox.c.payload).order_by(t.outbox.c.position))
            return [json.loads(row.payload, parse_float=Decimal) for row in rows]


def assert_problem(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    """A problem document with the status, whose detail mentions every word given."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    problem = response.json()
    assert problem["status"] == status
    assert problem["title"]
    for word in words:
        assert word.lower() in problem["detail"].lower(), f"{word!r} not in {problem['detail']!r}"
    return problem  # type: ignore[no-any-return]


def invalid_names(problem: dict[str, Any]) -> list[str]:
    return [param["name"] for param in problem.get("invalidParams") or []]
