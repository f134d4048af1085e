"""GET /metrics: every figure moves when the thing it counts happens (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import random
import uuid

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from accounts.bootstrap import Application
from accounts.entrypoints.http.app import create_app
from accounts.entrypoints.http.auth import mint_token
from accounts.service.ports import TENURE_TOPIC
from tests.fixtures.tenures import story
from tests.integration.test_api_support import tenure_request

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def client(application: Application) -> TestClient:
    return TestClient(create_app(application), raise_server_exceptions=False)


def test_requests_are_counted_and_timed_by_route_and_status(application: Application, client: TestClient) -> None:
    token = mint_token(application.settings, name="W", email="w@example.org", groups=["housing-finance-write"])
    headers = {"Authorization": f"Bearer {token}"}
    account = client.post("/api/v1/accounts", json=tenure_request(), headers=headers).json()
    for _ in range(3):
        client.get(f"/api/v1/accounts/{account['id']}", headers=headers)
    client.get(f"/api/v1/accounts/{uuid.uuid4()}", headers=headers)
    client.get(f"/api/v1/accounts/{account['id']}")  # no token

    samples = scrape(client)
    route = "/api/v1/accounts/{id}"
    assert value(samples, "accounts_http_requests_total", method="GET", route=route, status="200") == 3
    assert value(samples, "accounts_http_requests_total", method="GET", route=route, status="404") == 1
    assert value(samples, "accounts_http_requests_total", method="GET", route=route, status="401") == 1
    assert value(samples, "accounts_http_requests_total", method="POST", route="/api/v1/accounts", status="201") == 1
    assert value(samples, "accounts_http_request_duration_seconds_count", method="GET", route=route) == 5
    assert not any(account["id"] in dict(labels).get("route", "") for _, labels in samples)  # templates, never ids


def test_backlogs_postings_and_events_move_when_they_happen(application: Application, client: TestClient) -> None:
    token = mint_token(application.settings, name="W", email="w@example.org", groups=["housing-finance-write"])
    headers = {"Authorization": f"Bearer {token}"}
    before = scrape(client)
    assert value(before, "accounts_database_up") == 1

    account = client.post("/api/v1/accounts", json=tenure_request(), headers=headers).json()
    charge = {"id": str(uuid.uuid4()), "transactionType": "Charge", "amount": 12.5, "transactionDate": "2026-04-06"}
    assert (
        client.post(f"/api/v1/accounts/{account['id']}/transactions", json=charge, headers=headers).status_code == 201
    )
    after_writes = scrape(client)
    assert value(after_writes, "accounts_ledger_postings_total") == value(before, "accounts_ledger_postings_total") + 1
    # Created, updated and posted: three events waiting for the relay; the account's row owed to the sink.
    assert value(after_writes, "accounts_outbox_waiting") == value(before, "accounts_outbox_waiting") + 3
    assert value(after_writes, "accounts_outbox_oldest_age_seconds") >= 0
    assert value(after_writes, "accounts_interim_rows_pending", sink="spreadsheet") >= 1

    broker = application.broker()
    try:
        tale = story(random.Random(5))
        items = [(json.dumps(e).encode(), tale.tenure_id, e["id"]) for e in tale.events]
        broker.publish_many(TENURE_TOPIC, [*items, (b"not json", "poison", "poison-1")])
        queued = scrape(client)
        assert value(queued, "accounts_queue_waiting") == len(items) + 1
        listener = application.listener(broker)
        while listener.poll(0.1):
            pass
    finally:
        broker.close()
    drained = scrape(client)
    assert value(drained, "accounts_events_total", outcome="received") >= len(items) + 1
    assert value(drained, "accounts_events_total", outcome="applied") == len(items)
    assert value(drained, "accounts_events_total", outcome="dead_lettered") == 1
    assert value(drained, "accounts_queue_waiting") == 0

    publisher = application.broker()
    try:
        relay = application.outbox_relay(publisher)
        while relay.relay_once():
            pass
    finally:
        publisher.close()
    application.interim.flush_all()
    relayed = scrape(client)
    assert value(relayed, "accounts_outbox_waiting") == 0 and value(relayed, "accounts_outbox_oldest_age_seconds") == 0
    assert value(relayed, "accounts_interim_rows_pending", sink="spreadsheet") == 0
    assert 0 <= value(relayed, "accounts_interim_seconds_since_last_delivery", sink="spreadsheet") < 60
