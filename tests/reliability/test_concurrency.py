"""Fault item 4: many clients changing one account, or creating one target's account, at once.

The API is served for real (uvicorn, its thread pool, one database) and 50 client
threads are released together by a barrier. With If-Match, each version of the
account can be changed exactly once: every other attempt on that version is a 412
that changes nothing, and a client that re-reads and tries again loses no update.
Fifty creations for one target leave one Master account (the others are 409s). On
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from accounts.adapters.database import tables as t
from accounts.bootstrap import Application, bootstrap
from accounts.entrypoints.http.auth import mint_token
from tests.conftest import make_settings
from tests.integration.test_api_support import PROBLEM_JSON, tenure_request
from tests.reliability.live import live_api

CLIENTS = 50


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[Application, httpx.Client]]:
    app = bootstrap(make_settings(database_url, tmp_path), run_migrations=True)
    token = mint_token(app.settings, name="Rent Officer", email="rent@hackney.gov.uk", groups=["housing-finance-write"])
    limits = httpx.Limits(max_connections=CLIENTS + 10, max_keepalive_connections=CLIENTS + 10)
    try:
        with (
            live_api(app, limit_concurrency=500) as base_url,
            httpx.Client(
                base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60, limits=limits
            ) as client,
        ):
            yield app, client
    finally:
        app.close()


def together(count: int, work: object) -> list[object]:
    """Run work(index) in `count` threads released at the same moment."""
    barrier = threading.Barrier(count)

    def run(index: int) -> object:
        barrier.wait()
        return work(index)  # type: ignore[operator]

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def account_events(app: Application, account_id: str) -> list[dict]:
    with app.engine.connect() as connection:
        rows = connection.execute(
            sa.select(t.outbox.c.event_type, t.outbox.c.payload).order_by(t.outbox.c.position)
        ).all()
    events = [json.loads(row.payload, parse_float=Decimal) for row in rows]
    return [event for event in events if event["entityId"] == account_id]


def test_fifty_patches_with_one_etag_give_one_success_and_fifty_less_one_412s(served) -> None:
    app, client = served
    created = client.post("/accounts", json=tenure_request())
    assert created.status_code == 201, created.text
    account_id, etag = created.json()["id"], created.headers["ETag"]

    def patch(index: int) -> httpx.Response:
        return client.patch(
            f"/accounts/{account_id}",
            content=json.dumps({"accountBalance": -(index + 1)}),
            headers={"Content-Type": "application/merge-patch+json", "If-Match": etag},
        )

    responses: list[httpx.Response] = together(CLIENTS, patch)  # type: ignore[assignment]

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {200: 1, 412: CLIENTS - 1}, statuses
    for response in responses:
        if response.status_code == 412:
            assert response.headers["content-type"].startswith(PROBLEM_JSON)
    [winner] = [response.json() for response in responses if response.status_code == 200]
    now = client.get(f"/accounts/{account_id}")
    assert now.json() == winner, "the account is the winner's change, and only it"
    assert now.headers["ETag"] == f'"{account_id}-2"'
    # The one balance change let through, explained by its Adjustment in the ledger (and only it).
    assert [e["eventType"] for e in account_events(app, account_id)] == [
        "AccountCreatedEvent",
        "AccountUpdatedEvent",
        "AccountTransactionPostedEvent",
    ]
    assert list(app.ledger.verify()) == []


def test_fifty_clients_adding_to_one_balance_with_if_match_lose_no_update(served) -> None:
    app, client = served
    created = client.post("/accounts", json=tenure_request())
    account_id = created.json()["id"]
    attempts: list[tuple[str, int]] = []  # (If-Match sent, status)
    lock = threading.Lock()

    def add_one(_index: int) -> int:
        """Read, add 1.00 to the balance, write with If-Match; on 412 read again and retry."""
        tries = 0
        while True:
            tries += 1
            assert tries < 500, "a client never got its update in"
            read = client.get(f"/accounts/{account_id}")
            balance = Decimal(str(read.json()["accountBalance"]))
            response = client.patch(
                f"/accounts/{account_id}",
                content=f'{{"accountBalance": {balance + 1}}}',  # exact money, never a float
                headers={"Content-Type": "application/merge-patch+json", "If-Match": read.headers["ETag"]},
            )
            with lock:
                attempts.append((read.headers["ETag"], response.status_code))
            if response.status_code == 200:
                return tries
            assert response.status_code == 412, response.text

    together(CLIENTS, add_one)

    final = client.get(f"/accounts/{account_id}")
    assert Decimal(str(final.json()["accountBalance"])) == Decimal(CLIENTS), "no update was lost"
    assert final.headers["ETag"] == f'"{account_id}-{CLIENTS + 1}"'
    successes = Counter(etag for etag, status in attempts if status == 200)
    assert len(successes) == CLIENTS and set(successes.values()) == {1}, "exactly one success per version"
    assert {status for _, status in attempts} <= {200, 412}, "every loser is a 412"
    updates = [e for e in account_events(app, account_id) if e["eventType"] == "AccountUpdatedEvent"]
    balances = [
        (e["eventData"]["oldData"]["accountBalance"], e["eventData"]["newData"]["accountBalance"]) for e in updates
    ]
    assert balances == [(Decimal(n), Decimal(n + 1)) for n in range(CLIENTS)], "one event per version, in order"


def test_fifty_creations_for_one_target_leave_one_master_account(served) -> None:
    app, client = served
    target = str(uuid.uuid4())

    def create(_index: int) -> httpx.Response:
        return client.post("/accounts", json=tenure_request(target))

    responses: list[httpx.Response] = together(CLIENTS, create)  # type: ignore[assignment]

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {201: 1, 409: CLIENTS - 1}, statuses
    for response in responses:
        if response.status_code == 409:
            assert response.headers["content-type"].startswith(PROBLEM_JSON)
    listed = client.get("/accounts", params={"targetId": target}).json()["accountResponseList"]
    assert len(listed) == 1 and listed[0]["accountType"] == "Master"
    with app.engine.connect() as connection:
        masters = connection.execute(
            sa.select(sa.func.count()).select_from(t.accounts).where(t.accounts.c.target_id == uuid.UUID(target))
        ).scalar_one()
    assert masters == 1
    created = [e for e in account_events(app, listed[0]["id"]) if e["eventType"] == "AccountCreatedEvent"]
    assert len(created) == 1
