"""Fixtures for the real servers the suite talks to.

A test that needs PostgreSQL, RabbitMQ or the local SQS endpoint runs whenever the
server is reachable. Under CI (CI=true) an unreachable server fails the test rather
than skipping it, so a broken machine can never pass as green.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from accounts.bootstrap import Application
    from accounts.settings import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_HOST = os.environ.get("TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TEST_PG_USER", "postgres")
RABBIT_HOST = os.environ.get("TEST_RABBITMQ_HOST", "127.0.0.1")
RABBIT_PORT = int(os.environ.get("TEST_RABBITMQ_PORT", "5672"))


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_server(name: str, host: str, port: int) -> None:
    if reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(message + " (CI=true: a missing server is a failure)")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The maintenance URL of the machine's PostgreSQL (trust auth)."""
    require_server("PostgreSQL", PG_HOST, PG_PORT)
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"


def _create_database(server_url: str) -> tuple[str, str]:
    import sqlalchemy as sa

    name = unique("accounts_test")
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return name, server_url.rsplit("/", 1)[0] + "/" + name


def _drop_database(server_url: str, name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture
def postgres_database(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    name, url = _create_database(postgres_server_url)
    try:
        yield url
    finally:
        _drop_database(postgres_server_url, name)


@pytest.fixture
def sqlite_database(tmp_path: Path) -> str:
    """A fresh SQLite database file for one test."""
    return f"sqlite:///{tmp_path / 'accounts.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run the test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'accounts.db'}"
    return str(request.getfixturevalue("postgres_database"))


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    require_server("RabbitMQ", RABBIT_HOST, RABBIT_PORT)
    return f"amqp://guest:guest@{RABBIT_HOST}:{RABBIT_PORT}/%2F"


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[str]:
    """A local SQS/SNS endpoint: moto in server mode on loopback, for the whole session."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not reachable("127.0.0.1", port, 0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            message = "the moto server (local SQS endpoint) did not start"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
        time.sleep(0.1)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


# The service itself -------------------------------------------------------------


def make_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    """Settings for one test: its own database and workbook, fast retries, no environment leaking in."""
    from accounts.settings import Settings

    values: dict[str, object] = {
        "environment": "test",
        "database_url": database_url,
        "spreadsheet_path": tmp_path / "interim.xlsx",
        "interim_sinks": ["spreadsheet"],
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.5,
        "worker_poll_seconds": 0.05,
        "interim_flush_seconds": 0.05,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def application(database_url: str, tmp_path: Path) -> Iterator[Application]:
    """The wired service on a fresh, migrated database (SQLite and PostgreSQL)."""
    from accounts.bootstrap import bootstrap

    app = bootstrap(make_settings(database_url, tmp_path), run_migrations=True)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def sqlite_application(sqlite_database: str, tmp_path: Path) -> Iterator[Application]:
    """The wired service on a fresh, migrated SQLite database only."""
    from accounts.bootstrap import bootstrap

    app = bootstrap(make_settings(sqlite_database, tmp_path), run_migrations=True)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[object]:
    """Run the service as real processes (`accounts serve`, `accounts worker`, the CLI) for one test.

    `service_factory(database_url, broker_url, max_attempts=3, ...)` gives a
    tests.fixtures.service.Service; keyword settings become ACCOUNTS_* variables.
    Every process it started is killed when the test ends.
    """
    from tests.fixtures.service import Service

    made: list[Service] = []

    def make(database_url: str, broker_url: str = "embedded", **settings: object) -> Service:
        environment = {f"ACCOUNTS_{key.upper()}": str(value) for key, value in settings.items()}
        service = Service(tmp_path, database_url, broker_url, environment, port=free_port())
        made.append(service)
        return service

    yield make
    for service in made:
        service.stop_all()


@pytest.fixture(scope="session")
def rsa_keys() -> tuple[str, str]:
    """An RSA key pair (private PEM, public PEM) for RS256 tokens; made once, it is slow."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public
