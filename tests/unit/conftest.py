"""The service on in-memory fakes, wired by `bootstrap`: no database, no broker, no file is touched."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from accounts.bootstrap import Application, bootstrap
from tests.conftest import make_settings
from tests.fakes import FakeAccountReads, FakeBroker, FakeDatabase, FakeSink

# Nothing may reach it: a test that touched the database would fail loudly.
NO_DATABASE = "postgresql+psycopg://nobody@nowhere.invalid:1/none"


@dataclass
class OnFakes:
    app: Application
    database: FakeDatabase
    broker: FakeBroker
    sink: FakeSink


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[OnFakes]:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a unit test on fakes reached for the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    database, broker, sink = FakeDatabase(), FakeBroker(), FakeSink("fake")
    app = bootstrap(
        make_settings(NO_DATABASE, Path("/nonexistent")),
        uow_factory=database.uow,
        broker_factory=lambda: broker,
        sinks=[sink],
        reads=FakeAccountReads(database),
    )
    try:
        yield OnFakes(app, database, broker, sink)
    finally:
        app.close()
    assert app._engine is None  # no engine was ever made
