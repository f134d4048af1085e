"""The ledger when the API process dies mid-posting: SIGKILLed at random moments, restarted, retried.

A real `accounts serve --no-worker` takes postings from client threads whose ids were
all chosen up front. It is SIGKILLed at random moments while they post (mid-request,
mid-commit, between requests, as it happens) and started again each time, as a
supervisor would. A posting whose answer the client never saw is sent again, with the
same id, once the API is back: it is answered 201 (it was lost with the process) or 200
(it was committed before the process died). At the end every id is in the statement
exactly once, the balance is their sum, and `accounts ledger verify` (the CLI) exits 0.
On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.fixtures.service import Process, Service, wait_until
from tests.integration.test_api_support import tenure_request, to_json
from tests.reliability.test_ledger_concurrency import OWED, statement

POSTINGS = 600
CLIENT_THREADS = 4
KILLS = 5
SEED = 1201


def serve(service: Service) -> Process:
    """`accounts serve --no-worker`, once its API answers."""
    process = service.start("serve", "--no-worker", name=f"serve-{len(service.processes)}")

    def answers() -> bool:
        assert process.alive(), f"the API exited with {process.popen.returncode}:\n{process.output()[-3000:]}"
        try:
            return httpx.get(f"{service.api_url}/healthcheck/ping", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(answers, 60, "the API to answer", pause=0.05)
    return process


def postings(rng: random.Random, count: int) -> list[dict[str, Any]]:
    kinds = ("Charge", "Charge", "Payment", "HousingBenefit")
    return [
        {
            "id": str(uuid.uuid4()),
            "transactionType": rng.choice(kinds),
            "amount": Decimal(rng.randrange(1, 100_000)).scaleb(-2),
            "transactionDate": f"2026-04-{rng.randrange(6, 30):02d}",
            "reference": f"CRASH-{n}",
        }
        for n in range(count)
    ]


class Poster:
    """Client threads posting their share of the postings once each; what was not answered is kept for later."""

    def __init__(self, service: Service, account_id: str, bodies: list[dict[str, Any]]) -> None:
        self.service, self.account_id = service, account_id
        self.up = threading.Event()
        self.up.set()
        self.lock = threading.Lock()
        self.answered: Counter[int] = Counter()  # by status
        self.unseen: list[dict[str, Any]] = []  # sent, but the process died before (or while) answering
        self.threads = [
            threading.Thread(target=self._post, args=(bodies[n::CLIENT_THREADS],), name=f"poster-{n}", daemon=True)
            for n in range(CLIENT_THREADS)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self.threads)

    def join(self, timeout: float) -> None:
        for thread in self.threads:
            thread.join(timeout)
        assert not self.running(), "the client threads did not finish"

    def count(self) -> int:
        with self.lock:
            return sum(self.answered.values())

    def _post(self, mine: list[dict[str, Any]]) -> None:
        with self.service.api() as client:
            for body in mine:
                assert self.up.wait(120), "the API never came back"
                try:
                    response = post(client, self.account_id, body)
                except httpx.TransportError:
                    with self.lock:
                        self.unseen.append(body)
                    continue
                with self.lock:
                    self.answered[response.status_code] += 1
                    if response.status_code >= 500:  # as a client would: an error answer is retried later
                        self.unseen.append(body)


def post(client: httpx.Client, account_id: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(
        f"/accounts/{account_id}/transactions", content=to_json(body), headers={"Content-Type": "application/json"}
    )


@pytest.mark.slow
def test_a_sigkilled_api_posts_each_id_once_and_the_ledger_adds_up(service_factory, database_url: str) -> None:
    rng = random.Random(SEED)
    service: Service = service_factory(database_url)
    server = serve(service)
    with service.api() as client:
        created = client.post("/accounts", json=tenure_request())
        assert created.status_code == 201, created.text
    account_id = created.json()["id"]
    bodies = postings(rng, POSTINGS)
    poster = Poster(service, account_id, bodies)

    poster.start()
    for kill in range(KILLS):
        target = poster.count() + rng.randrange(10, 60)
        wait_until(lambda t=target: poster.count() >= t or not poster.running(), 120, f"{target} answers")
        time.sleep(rng.uniform(0.0, 0.05))
        assert poster.running(), f"the postings were all sent before kill {kill + 1}: raise POSTINGS"
        poster.up.clear()
        server.kill()
        server = serve(service)
        poster.up.set()
    poster.join(120)

    # Every posting whose answer was not seen, sent again with its id: posted now, or found posted before.
    during = dict(poster.answered)
    assert set(during) <= {201}, f"while crashing, every answer seen was a 201 (ids are sent once): {during}"
    again: Counter[int] = Counter()
    with service.api() as client:
        for body in poster.unseen:
            response = post(client, account_id, body)
            again[response.status_code] += 1
            assert response.status_code in (200, 201), response.text
            if response.status_code == 200:
                answer = json.loads(response.text, parse_float=Decimal)
                assert answer["amount"] == body["amount"] and answer["id"] == body["id"]
        lines, closing = statement(client, account_id)
        balance = Decimal(str(client.get(f"/accounts/{account_id}").json()["accountBalance"]))
    print(
        f"\nFIGURES ledger crash ({database_url.split(':')[0]}): {POSTINGS} postings, {KILLS} kills, "
        f"{len(poster.unseen)} answers lost; re-sent: {again[201]} posted then, {again[200]} found posted before"
    )

    assert Counter(line["id"] for line in lines) == Counter(body["id"] for body in bodies), "each id posted once"
    expected = sum(OWED[body["transactionType"]] * body["amount"] for body in bodies)
    assert balance == expected and closing == expected
    verified = service.cli("ledger", "verify", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "every account's balance is the sum of its transactions" in verified.stdout
