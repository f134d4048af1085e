"""The logs of a real `accounts serve` (the API, the listener and the relay-and-sinks process), in both formats.

Put through tenure events carrying tenants' names and dates of birth (applied, dead-lettered as
malformed, given up on after the Tenure API failed, a body that is not JSON at all) and API
requests whose bearer tokens fail in every way, at DEBUG:

* no line holds a token it was sent, the JWT secret, the Tenure API token or the password in its
  URL, or any tenant's name or date of birth;
* with ACCOUNTS_LOG_FORMAT=json every line of every process (uvicorn's too) is a JSON object with
  time, level, logger, message and correlation_id; a request's lines carry its correlation id, and
  the listener's lines about an event carry its event id (and its correlation id).
"""

from __future__ import annotations

import copy
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from accounts.bootstrap import open_broker
from accounts.entrypoints.http.auth import mint_token
from accounts.service.ports import TENURE_TOPIC
from tests.conftest import free_port, make_settings
from tests.fixtures.tenures import story
from tests.integration.test_api_support import tenure_request
from tests.reliability.harness import wait_until
from tests.security.conftest import claims, raw_token

CLI = [sys.executable, "-m", "accounts.entrypoints.cli"]
SECRET = "logs-e2e-secret-" + uuid.uuid4().hex
TENURE_API_TOKEN = "tenure-api-token-" + uuid.uuid4().hex
TENURE_API_PASSWORD = "tenure-url-password-" + uuid.uuid4().hex
CORRELATION_ID = str(uuid.uuid4())


@dataclass
class Run:
    """What was sent to one `accounts serve`, and everything it wrote."""

    output: str = ""
    tokens: list[str] = field(default_factory=list)
    personal: set[str] = field(default_factory=set)
    applied: list[dict[str, Any]] = field(default_factory=list)
    dead_lettered: list[dict[str, Any]] = field(default_factory=list)


def personal_values(event: dict[str, Any]) -> set[str]:
    """The names and dates of birth an event carries, and each part of every name."""
    found: set[str] = set()
    for member in (event["eventData"].get("newData") or {}).get("householdMembers") or []:
        found.add(member["dateOfBirth"])
        found.add(member["dateOfBirth"][:10])
        found.add(member["fullName"])
        found.update(part for part in member["fullName"].split() if len(part) > 3)  # not "Mr", "Li"
    return found


def serve(log_format: str, tmp_path: Path) -> Run:
    port, dead_port = free_port(), free_port()
    database = f"sqlite:///{tmp_path / 'accounts.db'}"
    environment = {name: value for name, value in os.environ.items() if not name.startswith("ACCOUNTS_")}
    environment.update(
        ACCOUNTS_ENVIRONMENT="production",
        ACCOUNTS_DATABASE_URL=database,
        ACCOUNTS_PORT=str(port),
        ACCOUNTS_JWT_SECRET=SECRET,
        ACCOUNTS_SPREADSHEET_PATH=str(tmp_path / "interim.xlsx"),
        ACCOUNTS_TENURE_API_URL=f"http://accounts:{TENURE_API_PASSWORD}@127.0.0.1:{dead_port}",
        ACCOUNTS_TENURE_API_TOKEN=TENURE_API_TOKEN,
        ACCOUNTS_LOG_LEVEL="DEBUG",
        ACCOUNTS_LOG_FORMAT=log_format,
        ACCOUNTS_MAX_ATTEMPTS="2",
        ACCOUNTS_RETRY_BASE_SECONDS="0.05",
        ACCOUNTS_RETRY_MAX_SECONDS="0.2",
        ACCOUNTS_WORKER_POLL_SECONDS="0.05",
    )
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([*CLI, "serve"], env=environment, stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api/v1"
    run = Run()
    settings = make_settings(database, tmp_path, jwt_secret=SECRET)
    good = mint_token(settings, name="Finance Officer", email="f@hackney.gov.uk", groups=["housing-finance-write"])
    reader = mint_token(settings, name="Someone", email="s@hackney.gov.uk", groups=["another-group"])
    bad = [
        jwt.encode(claims(), "not-the-secret-but-long-enough-for-hs256-0123456789", algorithm="HS256"),
        jwt.encode(claims(exp=int(time.time()) - 60), SECRET, algorithm="HS256"),
        raw_token({"alg": "none"}, claims()),
        SECRET,  # the secret itself sent as a token
        good + "tampered",
        reader,  # valid, but in no group that may read
    ]
    run.tokens = [good, *bad]
    try:

        def ready() -> bool:
            assert process.poll() is None, log_path.read_text()
            try:
                return httpx.get(f"{api}/health/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, 60, "the API to answer")
        wait_until(lambda: "sinks running in process" in log_path.read_text(), 60, "the relay-and-sinks process")
        for token in bad:
            response = httpx.get(f"{api}/target-types", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code in (401, 403)
        assert httpx.get(f"{api}/target-types", headers={"Authorization": f"Token {good}"}).status_code == 401
        assert httpx.get(f"{api}/target-types", headers={"Authorization": good}).status_code == 401
        headers = {"Authorization": f"Bearer {good}", "x-correlation-id": CORRELATION_ID}
        assert httpx.get(f"{api}/target-types", headers=headers).status_code == 200
        # A request carrying a tenant's name that the API refuses.
        refused = tenure_request(paymentReference="not a reference")
        refused["tenure"]["primaryTenants"][0]["fullName"] = "Ms Philippa Marchbanks"
        run.personal.add("Philippa Marchbanks")
        assert httpx.post(f"{api}/accounts", json=refused, headers=headers).status_code == 400

        rng = random.Random(20_260_105)
        created = story(rng).person_added(rng).events  # created, then a person added: names and dates of birth
        malformed = copy.deepcopy(story(rng).events[0])  # a responsible member without a UUID: dead-lettered
        malformed["eventData"]["newData"]["householdMembers"][0]["id"] = "not-a-uuid"
        unseen = story(rng).updated(tenureType={"code": "SEC", "description": "Secure"}).events[1]
        unseen["eventData"]["newData"]["householdMembers"] = story(rng).tenure["householdMembers"]
        events = [*created, malformed, unseen]  # the update: the Tenure API fails until it is given up on
        for event in events:
            run.personal |= personal_values(event)
        assert len(run.personal) >= 10
        run.applied, run.dead_lettered = created, [malformed, unseen]
        response = httpx.post(f"{api}/events", json=events, headers=headers)
        assert response.status_code == 202, response.text
        # A body that is not JSON, straight onto the queue (the API's intake refuses such a thing).
        torn = b'{"householdMembers": [{"fullName": "Mr Bartholomew Quennell", "dateOfBirth": "1958-02-'
        run.personal |= {"Bartholomew Quennell", "1958-02-"}
        with open_broker(settings) as broker:
            broker.publish(TENURE_TOPIC, torn, group_id="torn", message_id="torn-message")

        wait_until(lambda: log_path.read_text().count("dead-lettered message") >= 3, 60, "three dead letters")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    run.output = log_path.read_text(encoding="utf-8", errors="replace")
    return run


@pytest.fixture(scope="module", params=["text", "json"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    yield serve(request.param, tmp_path_factory.mktemp(f"logs-{request.param}"))


def test_no_token_secret_or_personal_field_is_ever_logged(run: Run) -> None:
    assert run.output.count("dead-lettered message") == 3, run.output[-3000:]
    assert "Tenure API unreachable" in run.output, "the failing Tenure API was logged"
    for label, secret in [
        ("the JWT secret", SECRET),
        ("the Tenure API token", TENURE_API_TOKEN),
        ("the password in the Tenure API's URL", TENURE_API_PASSWORD),
        *((f"bearer token {n}", token) for n, token in enumerate(run.tokens)),
    ]:
        assert secret not in run.output, f"{label} is in the logs"
    leaked = sorted(value for value in run.personal if value in run.output)
    assert not leaked, f"personal values in the logs: {leaked}"


def entries(run: Run) -> list[dict[str, Any]]:
    return [json.loads(line) for line in run.output.splitlines() if line.strip()]


@pytest.mark.parametrize("run", ["json"], indirect=True)
def test_json_lines_are_objects_with_their_fields_from_every_process(run: Run) -> None:
    lines = entries(run)
    for line in lines:
        assert isinstance(line, dict)
        assert {"time", "level", "logger", "message", "correlation_id"} <= line.keys(), line
    loggers = {line["logger"] for line in lines}
    assert {"uvicorn.error", "uvicorn.access", "accounts.service.listener", "accounts.entrypoints.worker"} <= loggers
    # The relay-and-sinks process logs in the same format.
    assert any("interim sinks running in process" in line["message"] for line in lines)


@pytest.mark.parametrize("run", ["json"], indirect=True)
def test_json_lines_name_the_request_and_the_event(run: Run) -> None:
    lines = entries(run)
    requested = [line for line in lines if line["correlation_id"] == CORRELATION_ID]
    assert any(
        line["logger"] == "uvicorn.access" and "GET /api/v1/target-types" in line["message"] for line in requested
    )
    assert any(line["logger"] == "uvicorn.access" and "POST /api/v1/events" in line["message"] for line in requested)
    for event in [*run.applied, *run.dead_lettered]:
        about = [
            line for line in lines if line["logger"].startswith("accounts.service") and event["id"] in line["message"]
        ]
        assert about, f"no line about event {event['id']}"
        for line in about:
            assert line.get("event_id") == event["id"], line
            assert line["correlation_id"] == event["correlationId"], line
    applied = [line for line in lines if line.get("event_id") == run.applied[0]["id"] and "applied" in line["message"]]
    assert applied and applied[0].get("account_id"), "the applied event's line names its account"
