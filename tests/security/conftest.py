"""What the security tests share: the app in process, tokens good and forged, and a snapshot of the books."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from accounts.adapters.database import tables as t
from accounts.bootstrap import Application, bootstrap
from accounts.entrypoints.http.app import create_app
from tests.conftest import make_settings

PROBLEM_JSON = "application/problem+json"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "sub": "finance.officer@hackney.gov.uk",
        "name": "Finance Officer",
        "email": "finance.officer@hackney.gov.uk",
        "groups": ["housing-finance-write"],
        "iat": now,
        "exp": now + 600,
    }
    values.update(overrides)
    return values


def raw_token(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{b64(signature)}"


def snapshot(app: Application) -> dict[str, Any]:
    """Everything a request could change: accounts, outbox, queued events, processed events, dead letters."""
    with app.engine.connect() as connection:
        accounts = [tuple(row) for row in connection.execute(sa.select(t.accounts).order_by(t.accounts.c.id))]
        counts = {
            table.name: connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in (t.outbox, t.embedded_messages, t.processed_events, t.dead_letters, t.interim_rows)
        }
    return {"accounts": accounts, **counts}


def tenure_event(tenure_id: str | None = None) -> dict[str, Any]:
    tenure = tenure_id or str(uuid.uuid4())
    return {
        "id": str(uuid.uuid4()),
        "eventType": "TenureCreatedEvent",
        "sourceDomain": "Tenure",
        "sourceSystem": "TenureAPI",
        "version": "v1",
        "correlationId": str(uuid.uuid4()),
        "dateTime": "2026-01-05T09:00:00Z",
        "user": {"name": "Housing Officer", "email": "housing.officer@hackney.gov.uk"},
        "entityId": tenure,
        "eventData": {"oldData": None, "newData": {"id": tenure}},
    }


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., tuple[Application, TestClient]]]:
    """The API in process on a fresh SQLite database, with settings overridden as asked."""
    made: list[Application] = []

    def make(database_url: str | None = None, **overrides: object) -> tuple[Application, TestClient]:
        url = database_url or f"sqlite:///{tmp_path / f'accounts-{len(made)}.db'}"
        app = bootstrap(make_settings(url, tmp_path, **overrides), run_migrations=True)
        made.append(app)
        return app, TestClient(create_app(app), raise_server_exceptions=False)

    yield make
    for app in made:
        app.close()
