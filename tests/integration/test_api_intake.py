"""POST /api/v1/events takes a backfill's batch (its own body limit), and the listener applies all of it."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import orjson
from fastapi.testclient import TestClient

from accounts.bootstrap import bootstrap
from accounts.entrypoints.http.app import create_app
from accounts.entrypoints.http.auth import mint_token
from tests.conftest import make_settings
from tests.fixtures.tenures import story

BATCH = 5000


def test_a_batch_of_five_thousand_envelopes_is_accepted_and_applied(tmp_path: Path) -> None:
    app = bootstrap(make_settings(f"sqlite:///{tmp_path / 'intake.db'}", tmp_path), run_migrations=True)
    try:
        client = TestClient(create_app(app))
        token = mint_token(
            app.settings, name="Backfill", email="backfill@hackney.gov.uk", groups=["housing-finance-write"]
        )
        rng = random.Random(55)
        envelopes = [story(rng).events[0] for _ in range(BATCH)]
        body = orjson.dumps(envelopes)
        assert app.settings.max_body_bytes < len(body) < app.settings.max_events_body_bytes

        response = client.post(
            "/api/v1/events",
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )

        assert response.status_code == 202, response.text[:500]
        assert response.json()["accepted"] == BATCH
        broker = app.broker()
        try:
            listener = app.listener(broker)
            while listener.poll(0.1):
                pass
        finally:
            broker.close()
        assert listener.processed == BATCH and listener.dead_lettered == 0
        with app.uow(read_only=True) as uow:
            assert all(uow.accounts.by_target(envelope_target(e), None) for e in envelopes[:: BATCH // 50])
    finally:
        app.close()


def envelope_target(envelope: dict[str, object]) -> uuid.UUID:
    return uuid.UUID(str(envelope["entityId"]))


def test_a_batch_over_the_intakes_own_limit_is_refused_naming_it(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'intake.db'}", tmp_path, max_events_body_bytes=100_000)
    app = bootstrap(settings, run_migrations=True)
    try:
        client = TestClient(create_app(app))
        token = mint_token(
            app.settings, name="Backfill", email="backfill@hackney.gov.uk", groups=["housing-finance-write"]
        )
        rng = random.Random(56)
        body = orjson.dumps([story(rng).events[0] for _ in range(200)])
        response = client.post(
            "/api/v1/events",
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert "ACCOUNTS_MAX_EVENTS_BODY_BYTES" in response.json()["detail"] and "100,000" in response.json()["detail"]
    finally:
        app.close()
