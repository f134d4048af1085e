"""Security item 9: secrets stay secret, and production refuses the development ones.

* `accounts serve`, `worker`, `token` and `migrate` started with
  ACCOUNTS_ENVIRONMENT=production and the development secret (by default or given),
  or a short one, exit with a configuration error that names the setting, not its
  value, and never listen.
* A production service refuses the tokens `make run` prints (signed with the
  development secret).
* A real `accounts serve` in production mode, logging at DEBUG, is put through good
  and bad requests, a database outage and a Tenure API that fails: neither its logs
  nor any response body contains the JWT secret, the database password, the Tenure
  API token or a bearer token it was sent.
"""

from __future__ import annotations

import http.server
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient

from accounts.bootstrap import Application
from accounts.entrypoints.http.auth import mint_token
from accounts.settings import DEV_JWT_SECRET, Settings
from tests.conftest import free_port, reachable
from tests.integration.test_api_support import tenure_request
from tests.reliability.harness import TcpProxy, pg_url_with_password, wait_until
from tests.security.conftest import claims, raw_token, tenure_event

CLI = [sys.executable, "-m", "accounts.entrypoints.cli"]


def environment(**values: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ACCOUNTS_")}
    env.update(values)
    return env


@pytest.mark.parametrize(
    ("command", "secret"),
    [
        ("serve", None),
        ("serve", DEV_JWT_SECRET),
        ("serve", "too-short-a-secret"),
        ("worker", DEV_JWT_SECRET),
        ("token", None),
        ("migrate", DEV_JWT_SECRET),
    ],
)
def test_production_refuses_the_development_secret_and_short_ones(
    command: str, secret: str | None, tmp_path: Path
) -> None:
    port = free_port()
    values = {
        "ACCOUNTS_ENVIRONMENT": "production",
        "ACCOUNTS_PORT": str(port),
        "ACCOUNTS_DATABASE_URL": f"sqlite:///{tmp_path / 'production.db'}",
    }
    if secret is not None:
        values["ACCOUNTS_JWT_SECRET"] = secret
    args = {"token": ["token", "--name", "Someone", "--email", "someone@hackney.gov.uk"]}.get(command, [command])
    result = subprocess.run([*CLI, *args], env=environment(**values), capture_output=True, text=True, timeout=60)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "ACCOUNTS_JWT_SECRET" in result.stderr
    assert (secret or DEV_JWT_SECRET) not in result.stdout + result.stderr, "the error repeats the secret"
    assert "eyJ" not in result.stdout, "no token is printed"
    assert not reachable("127.0.0.1", port, 0.2), "nothing listens"
    assert not (tmp_path / "production.db").exists(), "nothing is touched"


def test_a_production_service_refuses_the_tokens_make_run_prints(
    make_client: Callable[..., tuple[Application, TestClient]],
) -> None:
    strong = secrets.token_urlsafe(48)
    app, client = make_client(environment="production", jwt_secret=strong)
    development = Settings(_env_file=None, environment="development")  # type: ignore[call-arg]
    printed = mint_token(
        development, name="Local Developer", email="developer@localhost", groups=["housing-finance-write"]
    )
    response = client.get("/api/v1/target-types", headers={"Authorization": f"Bearer {printed}"})
    assert response.status_code == 401
    own = mint_token(app.settings, name="Finance Officer", email="f@hackney.gov.uk", groups=["housing-finance-write"])
    assert client.get("/api/v1/target-types", headers={"Authorization": f"Bearer {own}"}).status_code == 200


class FailingTenureApi(http.server.BaseHTTPRequestHandler):
    """A Tenure API that is down (500), noting the tokens it was sent."""

    seen: list[str] = []

    def do_GET(self) -> None:
        FailingTenureApi.seen.append(self.headers.get("Authorization", ""))
        self.send_response(500)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"internal error")

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def tenure_api() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FailingTenureApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.mark.slow
@pytest.mark.postgres
def test_no_secret_reaches_the_logs_or_an_error_body(postgres_database: str, tenure_api: str, tmp_path: Path) -> None:
    jwt_secret = secrets.token_urlsafe(48)
    db_password = "pw-" + secrets.token_hex(12)
    api_token = "tenure-api-" + secrets.token_hex(16)
    parsed = urlparse(postgres_database)
    proxy = TcpProxy(parsed.hostname or "127.0.0.1", parsed.port or 5432)
    database_url = pg_url_with_password(proxy.url_for(postgres_database), db_password)
    port = free_port()
    env = environment(
        ACCOUNTS_ENVIRONMENT="production",
        ACCOUNTS_JWT_SECRET=jwt_secret,
        ACCOUNTS_DATABASE_URL=database_url,
        ACCOUNTS_PORT=str(port),
        ACCOUNTS_SPREADSHEET_PATH=str(tmp_path / "interim.xlsx"),
        ACCOUNTS_TENURE_API_URL=tenure_api,
        ACCOUNTS_TENURE_API_TOKEN=api_token,
        ACCOUNTS_LOG_LEVEL="DEBUG",
        ACCOUNTS_RETRY_BASE_SECONDS="0.05",
        ACCOUNTS_RETRY_MAX_SECONDS="0.3",
        ACCOUNTS_MAX_ATTEMPTS="3",
        ACCOUNTS_WORKER_POLL_SECONDS="0.05",
    )
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([*CLI, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api/v1"
    bodies: list[str] = []
    sent_tokens: list[str] = []
    try:
        wait_until(lambda: reachable("127.0.0.1", port, 0.2) or process.poll() is not None, 60, "the API to listen")
        assert process.poll() is None, log_path.read_text()
        settings = Settings(_env_file=None, environment="production", jwt_secret=jwt_secret)  # type: ignore[call-arg]
        good = mint_token(settings, name="Finance Officer", email="f@hackney.gov.uk", groups=["housing-finance-write"])
        bad_tokens = [
            jwt.encode(claims(), "not-the-secret-but-long-enough-for-hs256-0123456789", algorithm="HS256"),
            jwt.encode(claims(exp=int(time.time()) - 60), jwt_secret, algorithm="HS256"),
            raw_token({"alg": "none"}, claims()),
            jwt_secret,  # the secret itself sent as a token must not be echoed
            good + "tampered",
        ]
        sent_tokens = [good, *bad_tokens]

        def call(method: str, path: str, token: str | None = good, **kwargs: Any) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            headers.update(kwargs.pop("headers", {}))
            response = httpx.request(method, f"{api}{path}", headers=headers, timeout=30, **kwargs)
            bodies.append(response.text)
            for name, value in response.headers.items():
                bodies.append(f"{name}: {value}")
            return response

        account = call("POST", "/accounts", json=tenure_request()).json()
        call("GET", f"/accounts/{account['id']}")
        call(
            "PATCH",
            f"/accounts/{account['id']}",
            content=b'{"agreementType": 7}',
            headers={"Content-Type": "application/merge-patch+json"},
        )
        call("POST", "/accounts", content=b"{not json")
        call("POST", "/accounts", content=b"x" * 300_000)
        call("GET", "/accounts/arrears?sortBy=password")
        call("GET", "/openapi.json", token=None)
        for token in bad_tokens:
            assert call("GET", "/target-types", token=token).status_code == 401
        # An update about a tenure never seen: the listener asks the (failing) Tenure API, with its token.
        update = tenure_event()
        update["eventType"] = "TenureUpdatedEvent"
        update["eventData"] = {"oldData": {}, "newData": {"tenuredAsset": {"fullAddress": "1 Mare Street"}}}
        assert call("POST", "/events", json=update).status_code == 202
        wait_until(lambda: len(FailingTenureApi.seen) >= 2, 30, "the listener to ask the Tenure API")
        # The database goes away for a moment.
        proxy.cut()
        assert call("GET", f"/accounts/{account['id']}").status_code == 503
        assert call("GET", "/health/ready", token=None).status_code == 503
        call("POST", "/accounts", json=tenure_request())
        time.sleep(1.0)  # the worker's loops fail and log meanwhile
        proxy.restore()
        wait_until(lambda: call("GET", "/health/ready", token=None).status_code == 200, 30, "the database to answer")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        proxy.close()
    output = log_path.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" in output or "WARNING" in output, "the failures above were logged"
    assert FailingTenureApi.seen and set(FailingTenureApi.seen) == {f"Bearer {api_token}"}
    assert "export TOKEN" not in output, "production prints no token"
    everything = output + "\n".join(bodies)
    for label, secret in [
        ("the JWT secret", jwt_secret),
        ("the database password", db_password),
        ("the Tenure API token", api_token),
        *((f"bearer token {n}", token) for n, token in enumerate(sent_tokens)),
    ]:
        assert secret not in output, f"{label} is in the logs"
        assert secret not in "\n".join(bodies), f"{label} is in a response"
    assert len(everything) > 1000
