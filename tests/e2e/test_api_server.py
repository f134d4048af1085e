"""The real service, started as `accounts serve`, driven over real HTTP: create, read, change, arrears."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from accounts.domain.payment_reference import has_valid_check_digit
from accounts.entrypoints.http.auth import mint_token
from tests.conftest import free_port, make_settings
from tests.integration.test_api_support import tenure_request

SECRET = "e2e-secret-of-at-least-thirty-two-characters"
ACCOUNTS = Path(sys.executable).parent / "accounts"


@dataclass
class Server:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    database = f"sqlite:///{tmp_path / 'accounts.db'}"
    environment = {name: value for name, value in os.environ.items() if not name.startswith("ACCOUNTS_")}
    environment.update(
        ACCOUNTS_ENVIRONMENT="test",
        ACCOUNTS_DATABASE_URL=database,
        ACCOUNTS_HOST="127.0.0.1",
        ACCOUNTS_PORT=str(port),
        ACCOUNTS_JWT_SECRET=SECRET,
        ACCOUNTS_SPREADSHEET_PATH=str(tmp_path / "interim.xlsx"),
        ACCOUNTS_LOG_LEVEL="WARNING",
    )
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(ACCOUNTS), "serve", "--no-worker"], env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(database, tmp_path, jwt_secret=SECRET)
    token = mint_token(
        settings, name="Finance Officer", email="finance.officer@hackney.gov.uk", groups=["housing-finance-write"]
    )
    with running(process, url, log, 30):
        yield Server(url, token, process, log)


@contextlib.contextmanager
def running(process: subprocess.Popen[bytes], url: str, log: Path, timeout: float) -> Iterator[None]:
    """Once `accounts serve` answers ready (failing with its log if it exits or never does); stopped with
    SIGTERM afterwards, as an operator stops it."""
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, f"the server exited: {log.read_text()[-2000:]}"
            try:
                if httpx.get(f"{url}/api/v1/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the server never became ready: {log.read_text()[-2000:]}"
            time.sleep(0.1)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def test_an_account_is_created_read_changed_and_found_in_arrears_over_real_http(server: Server) -> None:
    tenure_id = str(uuid.uuid4())
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        created = client.post("/api/v1/accounts", json=tenure_request(tenure_id))
        assert created.status_code == 201, created.text
        account = created.json()
        assert has_valid_check_digit(account["paymentReference"])
        assert created.headers["x-correlation-id"]

        found = client.get("/api/v1/accounts", params={"targetId": tenure_id})
        assert found.json()["accountResponseList"][0]["id"] == account["id"]
        read = client.get(created.headers["Location"])
        assert read.status_code == 200 and read.json() == account
        etag = read.headers["ETag"]

        changed = client.patch(
            f"/api/v1/accounts/{account['id']}",
            content=b'[{"op": "replace", "path": "accountBalance", "value": -412.37, "operationType": 2}]',
            headers={"Content-Type": "application/json", "If-Match": etag},
        )
        assert changed.status_code == 200, changed.text
        assert changed.headers["ETag"] != etag
        assert '"accountBalance":-412.37' in changed.text

        stale = client.patch(
            f"/api/v1/accounts/{account['id']}",
            json={"accountBalance": 0},
            headers={"Content-Type": "application/merge-patch+json", "If-Match": etag},
        )
        assert stale.status_code == 412
        assert stale.headers["content-type"] == "application/problem+json"

        arrears = client.get("/api/v1/accounts/arrears", params={"sortBy": "amountowed", "direction": "DESC"})
        assert arrears.status_code == 200
        [owing] = arrears.json()["accountResponseList"]
        assert owing["id"] == account["id"] and owing["accountBalance"] == -412.37

        assert httpx.get(f"{server.url}/api/v1/accounts/{account['id']}").status_code == 401
        assert httpx.get(f"{server.url}/api/v1/healthcheck/ping").json()["status"] == "Healthy"
        assert httpx.get(f"{server.url}/api/v1/openapi.json").json()["info"]["title"]

    # A clean stop: uvicorn finishes, then exits by the signal it was sent (it re-raises it), with no traceback.
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=15) in (0, -signal.SIGTERM)
    assert "Traceback" not in server.log.read_text()
