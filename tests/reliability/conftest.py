"""Fixtures for the fault tests: a deployment on the embedded default, or on PostgreSQL + RabbitMQ."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import _create_database, _drop_database, unique
from tests.reliability.harness import Deployment, delete_rabbit_names, sqlite_url


@pytest.fixture
def embedded_deployment(tmp_path: Path) -> Iterator[Deployment]:
    """The default: SQLite, the embedded queue, the workbook, and an interim database (SQLite too)."""
    deployment = Deployment(
        tmp=tmp_path,
        database_url=sqlite_url(tmp_path / "accounts.db"),
        interim_database_url=sqlite_url(tmp_path / "interim.db"),
    )
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture
def make_postgres_database(postgres_server_url: str) -> Iterator[Callable[[], str]]:
    """Fresh PostgreSQL databases, as many as a test needs; dropped afterwards."""
    made: list[str] = []

    def make() -> str:
        name, url = _create_database(postgres_server_url)
        made.append(name)
        return url

    yield make
    for name in made:
        _drop_database(postgres_server_url, name)


@pytest.fixture
def server_deployment(
    tmp_path: Path, make_postgres_database: Callable[[], str], rabbitmq_url: str
) -> Iterator[Deployment]:
    """PostgreSQL + RabbitMQ, an interim PostgreSQL database, and names no other test uses."""
    names = {
        "tenure_queue": unique("reliability_tenure_q"),
        "tenure_exchange": unique("reliability_tenure_x"),
        "accounts_exchange": unique("reliability_accounts_x"),
    }
    deployment = Deployment(
        tmp=tmp_path,
        database_url=make_postgres_database(),
        broker_url=rabbitmq_url,
        interim_database_url=make_postgres_database(),
        names=names,
    )
    try:
        yield deployment
    finally:
        deployment.stop()
        delete_rabbit_names(rabbitmq_url, names)
