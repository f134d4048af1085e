"""The ledger under contention: 50 clients posting to one account at the same moment.

The API is served for real (uvicorn, its thread pool, one database) and 50 client
threads are released together by a barrier, every one posting to the same account:
charges and payments with ids of their own; pairs sending the same posting at once
(a client's retry racing its first attempt); clients sending a posting again once it
was answered; and pairs sending one id with different content. Afterwards the balance
is the sum of what was answered 201, each of those is in the statement once with the
balance it was answered with, the same id is one posting whoever won, nothing is a
5xx, and the ledger's own check agrees. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from accounts.adapters.database import tables as t
from accounts.bootstrap import Application, bootstrap
from accounts.entrypoints.http.auth import mint_token
from tests.conftest import make_settings
from tests.integration.test_api_support import PROBLEM_JSON, tenure_request, to_json
from tests.reliability.live import live_api

CLIENTS = 50
DAY = "2026-04-06"  # one transaction date: the statement is then in posting order
OWED = {"Charge": Decimal(-1), "Payment": Decimal(1), "HousingBenefit": Decimal(1)}  # a Tenure's balance


@dataclass
class Sent:
    body: dict[str, Any]
    status: int
    answer: dict[str, Any]


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


def posting(index: int, kind: str | None = None, amount: Decimal | None = None) -> dict[str, Any]:
    kind = kind or ("Charge", "Payment", "HousingBenefit")[index % 3]
    return {
        "id": str(uuid.uuid4()),
        "transactionType": kind,
        "amount": amount if amount is not None else Decimal(1000 + index * 37).scaleb(-2),
        "transactionDate": DAY,
        "reference": f"CLIENT-{index}",
    }


def plan(clients: int) -> list[list[dict[str, Any]]]:
    """What each client sends, in order. Clients 0-9: pairs sending the same posting at once (same id, same
    content); 10-19: pairs sending one id with different amounts; 20 on: three postings of their own each,
    the last sent twice (a retry after its answer)."""
    plans: list[list[dict[str, Any]]] = [[] for _ in range(clients)]
    for first in range(0, 10, 2):
        body = posting(first)
        plans[first] = plans[first + 1] = [body]
    for first in range(10, 20, 2):
        body = posting(first)
        plans[first] = [body]
        plans[first + 1] = [{**body, "amount": body["amount"] + Decimal("0.01")}]
    for index in range(20, clients):
        mine = [posting(index * 10 + n) for n in range(3)]
        plans[index] = [*mine, mine[-1]]
    return plans


def together(count: int, work: Any) -> list[Any]:
    """Run work(index) in `count` threads released at the same moment."""
    barrier = threading.Barrier(count)

    def run(index: int) -> Any:
        barrier.wait()
        return work(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def statement(client: httpx.Client, account_id: str) -> tuple[list[dict[str, Any]], Decimal]:
    """Every line of the account's statement (following the cursor) and its closing balance."""
    lines: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/accounts/{account_id}/transactions", params=params)
        assert page.status_code == 200, page.text
        body = json.loads(page.text, parse_float=Decimal)
        lines += body["transactions"]
        cursor = body["nextCursor"]
        if cursor is None:
            return lines, body["closingBalance"]


def posted_events(app: Application, account_id: str) -> Counter[str]:
    """How many AccountTransactionPostedEvents the outbox holds for each transaction id of the account."""
    with app.engine.connect() as connection:
        rows = connection.execute(
            sa.select(t.outbox.c.payload).where(t.outbox.c.event_type == "AccountTransactionPostedEvent")
        ).all()
    events = [json.loads(row.payload) for row in rows]
    return Counter(e["eventData"]["newData"]["id"] for e in events if e["entityId"] == account_id)


def test_fifty_clients_posting_to_one_account_lose_and_double_nothing(served) -> None:
    app, client = served
    created = client.post("/accounts", json=tenure_request())
    assert created.status_code == 201, created.text
    account_id = created.json()["id"]
    plans = plan(CLIENTS)

    def send(index: int) -> list[Sent]:
        sent = []
        for body in plans[index]:
            response = client.post(
                f"/accounts/{account_id}/transactions",
                content=to_json(body),
                headers={"Content-Type": "application/json"},
            )
            sent.append(Sent(body, response.status_code, json.loads(response.text, parse_float=Decimal)))
        return sent

    everything: list[Sent] = [one for sent in together(CLIENTS, send) for one in sent]

    statuses = Counter(sent.status for sent in everything)
    assert set(statuses) <= {200, 201, 409}, f"every answer a 200, 201 or 409: {statuses}"
    by_id: dict[str, list[Sent]] = defaultdict(list)
    for sent in everything:
        by_id[sent.body["id"]].append(sent)
    created_ones = {}
    for transaction_id, attempts in by_id.items():
        [first] = [sent for sent in attempts if sent.status == 201]  # each id posted once, whoever won
        created_ones[transaction_id] = first
        assert first.answer["amount"] == first.body["amount"], "the 201 is the content that was posted"
        for other in attempts:
            if other is first:
                continue
            if other.body == first.body:
                assert other.status == 200 and other.answer == first.answer, "a retry is answered with the original"
            else:
                assert other.status == 409, "the same id with other content is refused"
                assert other.answer["invalidParams"][0]["name"] == "id"
    assert statuses[201] == len(by_id) == 5 + 5 + 3 * (CLIENTS - 20)
    assert statuses[409] == 5 and statuses[200] == 5 + (CLIENTS - 20)

    # The balance is the sum of what was answered 201, and nothing else.
    expected = sum(OWED[s.body["transactionType"]] * s.body["amount"] for s in created_ones.values())
    account = client.get(f"/accounts/{account_id}")
    assert Decimal(str(account.json()["accountBalance"])) == expected
    assert account.headers["ETag"] == f'"{account_id}-{len(created_ones) + 1}"', "one version per posting"

    # Every posting once in the statement, with the balance its 201 answered: none overtook another.
    lines, closing = statement(client, account_id)
    assert Counter(line["id"] for line in lines) == Counter(list(created_ones)), (
        "each 201 in the statement exactly once"
    )
    assert closing == expected
    for line in lines:
        assert line["balanceAfter"] == created_ones[line["id"]].answer["balanceAfter"]
    assert sorted(s.answer["balanceAfter"] for s in created_ones.values()) == sorted(
        line["balanceAfter"] for line in lines
    )

    # One AccountTransactionPostedEvent per posting; the ledger's check agrees.
    assert posted_events(app, account_id) == Counter(list(created_ones))
    assert list(app.ledger.verify()) == []


def test_conflicting_answers_are_problems(served) -> None:
    """The 409s of a same-id race are problem documents naming the id, as any other 409."""
    _app, client = served
    account_id = client.post("/accounts", json=tenure_request()).json()["id"]
    body = posting(1)
    variants = [{**body, "amount": body["amount"] + Decimal(n).scaleb(-2)} for n in range(CLIENTS)]

    def send(index: int) -> httpx.Response:
        return client.post(
            f"/accounts/{account_id}/transactions",
            content=to_json(variants[index]),
            headers={"Content-Type": "application/json"},
        )

    responses: list[httpx.Response] = together(CLIENTS, send)

    assert Counter(r.status_code for r in responses) == {201: 1, 409: CLIENTS - 1}
    for response in responses:
        if response.status_code == 409:
            assert response.headers["content-type"].startswith(PROBLEM_JSON)
    [winner] = [r.json() for r in responses if r.status_code == 201]
    lines, closing = statement(client, account_id)
    assert [line["id"] for line in lines] == [body["id"]] and Decimal(str(winner["amount"])) == closing


def test_one_id_posted_to_fifty_accounts_at_once_is_posted_once(served) -> None:
    """Ids are the ledger's, not an account's: no account lock orders these, the unique id does (no 5xx)."""
    app, client = served
    accounts = [client.post("/accounts", json=tenure_request()).json()["id"] for _ in range(CLIENTS)]
    body = posting(0)

    def send(index: int) -> httpx.Response:
        return client.post(
            f"/accounts/{accounts[index]}/transactions",
            content=to_json(body),
            headers={"Content-Type": "application/json"},
        )

    responses: list[httpx.Response] = together(CLIENTS, send)

    assert Counter(r.status_code for r in responses) == {201: 1, 409: CLIENTS - 1}
    [(winner, _)] = [(a, r) for a, r in zip(accounts, responses, strict=True) if r.status_code == 201]
    for account_id in accounts:
        lines, closing = statement(client, account_id)
        assert [line["id"] for line in lines] == ([body["id"]] if account_id == winner else [])
        assert closing == (-body["amount"] if account_id == winner else 0)
    assert list(app.ledger.verify()) == []
