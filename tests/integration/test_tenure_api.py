"""The Tenure API client and the listener's use of it, against a small real HTTP server on loopback."""

from __future__ import annotations

import copy
import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from accounts.adapters.tenure_api import TenureApiClient
from accounts.bootstrap import Application, bootstrap
from accounts.domain.account import AccountType, to_wire
from accounts.domain.events import parse_envelope
from accounts.service.ports import TENURE_TOPIC, TransientError
from tests.conftest import free_port, make_settings
from tests.fixtures.tenures import decided_by_tenure, expected_account, story

TOKEN = "tenure-api-test-token"


@dataclass
class FakeTenureApi:
    """Serves GET /api/v1/tenures/{id}: scripted statuses first, then the tenure (or 404)."""

    tenures: dict[str, dict[str, Any]] = field(default_factory=dict)
    script: dict[str, list[int]] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""

    def answer(self, path: str, authorization: str | None) -> tuple[int, bytes]:
        self.requests.append((path, authorization))
        tenure_id = path.rsplit("/", 1)[-1]
        if not path.startswith("/api/v1/tenures/"):
            return 404, b'{"message": "no such route"}'
        if authorization != f"Bearer {TOKEN}":
            return 401, b'{"message": "unauthorised"}'
        statuses = self.script.get(tenure_id)
        if statuses:
            status = statuses.pop(0)
            return status, b"<html>upstream trouble</html>" if status != 200 else b"not json"
        if tenure_id not in self.tenures:
            return 404, b'{"message": "tenure not found"}'
        return 200, json.dumps(self.tenures[tenure_id]).encode()


@pytest.fixture
def tenure_api() -> Iterator[FakeTenureApi]:
    api = FakeTenureApi()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = api.answer(self.path, self.headers.get("Authorization"))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def app(tenure_api: FakeTenureApi, tmp_path: Path) -> Iterator[Application]:
    settings = make_settings(
        f"sqlite:///{tmp_path}/accounts.db",
        tmp_path,
        tenure_api_url=tenure_api.url + "/",
        tenure_api_token=TOKEN,
        max_attempts=5,
        retry_base_seconds=0.02,
        retry_max_seconds=0.05,
    )
    application = bootstrap(settings, run_migrations=True)
    try:
        yield application
    finally:
        application.close()


def account_of(app: Application, tenure_id: str) -> dict[str, Any]:
    accounts = app.accounts.by_target(UUID(tenure_id), AccountType.MASTER)
    assert len(accounts) == 1
    return json.loads(json.dumps(to_wire(accounts[0]), default=str))


# The client ---------------------------------------------------------------------------


def test_the_client_fetches_a_tenure_with_the_bearer_token(tenure_api: FakeTenureApi) -> None:
    tale = story(random.Random(1))
    tenure_api.tenures[tale.tenure_id] = tale.tenure
    client = TenureApiClient(tenure_api.url, TOKEN)

    assert client.fetch(UUID(tale.tenure_id)) == tale.tenure
    assert tenure_api.requests == [(f"/api/v1/tenures/{tale.tenure_id}", f"Bearer {TOKEN}")]


def test_an_unknown_tenure_is_none(tenure_api: FakeTenureApi) -> None:
    assert TenureApiClient(tenure_api.url, TOKEN).fetch(UUID(int=7)) is None


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_trouble_is_transient(tenure_api: FakeTenureApi, status: int) -> None:
    tenure_api.script[str(UUID(int=8))] = [status]
    with pytest.raises(TransientError, match=str(status)):
        TenureApiClient(tenure_api.url, TOKEN).fetch(UUID(int=8))


def test_a_refused_token_is_transient_and_says_so(tenure_api: FakeTenureApi) -> None:
    with pytest.raises(TransientError, match="refused the token"):
        TenureApiClient(tenure_api.url, "wrong").fetch(UUID(int=9))


def test_an_answer_that_is_not_json_is_transient(tenure_api: FakeTenureApi) -> None:
    tenure_api.script[str(UUID(int=10))] = [200]
    with pytest.raises(TransientError, match="other than JSON"):
        TenureApiClient(tenure_api.url, TOKEN).fetch(UUID(int=10))


def test_an_unreachable_api_is_transient() -> None:
    with pytest.raises(TransientError, match="unreachable"):
        TenureApiClient(f"http://127.0.0.1:{free_port()}", TOKEN, timeout=2).fetch(UUID(int=11))


# The listener ---------------------------------------------------------------------------


def test_an_update_for_a_tenure_never_seen_is_completed_from_the_tenure_api(
    app: Application, tenure_api: FakeTenureApi
) -> None:
    tale = story(random.Random(2)).moved_to("12 Mare Street, Hackney, London E8 3RH")
    tenure_api.tenures[tale.tenure_id] = copy.deepcopy(tale.tenure)
    created, moved = tale.events

    app.tenure_events.handle(parse_envelope(moved))

    account = account_of(app, tale.tenure_id)
    assert decided_by_tenure(account) == expected_account(tale.tenure)
    assert account["createdBy"] == "housing.officer@hackney.gov.uk"
    # The create, arriving late, is older than what was fetched: it changes nothing.
    app.tenure_events.handle(parse_envelope(created))
    assert account_of(app, tale.tenure_id) == account


def test_a_later_change_still_applies_on_top_of_a_fetched_tenure(app: Application, tenure_api: FakeTenureApi) -> None:
    rng = random.Random(3)
    tale = story(rng).moved_to("3 Well Street, London E9 6NS")
    tenure_api.tenures[tale.tenure_id] = copy.deepcopy(tale.tenure)  # the API as it was at the move
    tale.person_added(rng, responsible=True)
    created, moved, added = tale.events

    for event in (moved, added, created):
        app.tenure_events.handle(parse_envelope(event))

    assert decided_by_tenure(account_of(app, tale.tenure_id)) == expected_account(tale.tenure)
    assert len(tenure_api.requests) == 1, "fetched once: after that the tenure is known"


def test_an_update_for_a_tenure_the_api_does_not_know_waits_for_its_create(
    app: Application, tenure_api: FakeTenureApi
) -> None:
    tale = story(random.Random(4)).ended("2025-12-31")
    created, ended = tale.events

    outcome = app.tenure_events.handle(parse_envelope(ended))  # the API was asked first: it does not know it
    assert outcome.detail.startswith("parked")
    assert app.accounts.by_target(UUID(tale.tenure_id), None) == [], "never invented"

    app.tenure_events.handle(parse_envelope(created))  # applies the parked end with it
    assert decided_by_tenure(account_of(app, tale.tenure_id)) == expected_account(tale.tenure)


def test_a_tenure_api_failing_then_recovering_is_retried_with_backoff(
    app: Application, tenure_api: FakeTenureApi
) -> None:
    tale = story(random.Random(5)).retyped("LEA")
    tenure_api.tenures[tale.tenure_id] = copy.deepcopy(tale.tenure)
    tenure_api.script[tale.tenure_id] = [500, 503, 502]
    broker = app.broker()
    retyped = tale.events[1]
    broker.publish(TENURE_TOPIC, json.dumps(retyped).encode(), group_id=tale.tenure_id, message_id=retyped["id"])
    listener = app.listener(broker)

    deadline = time.monotonic() + 10
    while broker.depth() and time.monotonic() < deadline:
        listener.poll(0.05)

    assert broker.depth() == 0
    assert listener.retried >= 1 and listener.dead_lettered == 0
    assert decided_by_tenure(account_of(app, tale.tenure_id)) == expected_account(tale.tenure)
    assert len(tenure_api.requests) == 4


def test_a_tenure_api_that_keeps_failing_ends_in_the_dead_letter_store(
    app: Application, tenure_api: FakeTenureApi
) -> None:
    tale = story(random.Random(6)).retyped("SEC")
    tenure_api.script[tale.tenure_id] = [503] * 20
    broker = app.broker()
    retyped = tale.events[1]
    broker.publish(TENURE_TOPIC, json.dumps(retyped).encode(), group_id=tale.tenure_id, message_id=retyped["id"])
    listener = app.listener(broker)

    deadline = time.monotonic() + 10
    while broker.depth() and time.monotonic() < deadline:
        listener.poll(0.05)

    with app.uow(read_only=True) as uow:
        [letter] = uow.dead_letters.list()
    assert letter.event_id == retyped["id"]
    assert "gave up after 5 attempts" in letter.reason and "503" in letter.reason
