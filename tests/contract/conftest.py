"""One suite of storage rules, run against every implementation of the unit of work.

`uow` is a unit-of-work factory (called as `uow()` or `uow(read_only=True)`) on an
empty store: SQLite and PostgreSQL through `bootstrap`, as the service runs, and the
in-memory fakes of `tests/fakes.py` that the service layer's unit tests run on. A rule
written here holds for all three, or the suite fails on the one that breaks it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from accounts.service.unit_of_work import UnitOfWork
from tests.conftest import PG_HOST, PG_PORT, PG_USER, _create_database, _drop_database, make_settings, require_server
from tests.fakes import FakeDatabase

UowFactory = Callable[..., UnitOfWork]

# What the migrations seed, kept between tests; every other table is emptied.
SEEDED = {"target_types", "payment_reference_counter", "alembic_version"}


@dataclass
class Store:
    name: str  # sqlite, postgresql or fake
    uow: UowFactory
    empty: Callable[[], None]


def _sql_store(url: str, tmp_path: Path) -> Iterator[Store]:
    from accounts.adapters.database import tables as t
    from accounts.bootstrap import bootstrap

    application = bootstrap(make_settings(url, tmp_path), run_migrations=True)
    tables = [table for table in reversed(t.metadata.sorted_tables) if table.name not in SEEDED]

    def empty() -> None:
        with application.engine.begin() as connection:
            for table in tables:
                connection.execute(table.delete())

    try:
        yield Store(make_url(url).get_backend_name(), application.uow, empty)
    finally:
        application.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql", "fake"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One store per implementation for the session (a PostgreSQL database per test is slow); emptied after each test."""
    if request.param == "fake":
        holder = [FakeDatabase()]

        def fresh() -> None:
            holder[0] = FakeDatabase()

        yield Store("fake", lambda read_only=False: holder[0].uow(read_only=read_only), fresh)
        return
    tmp_path = tmp_path_factory.mktemp(f"contract-{request.param}")
    if request.param == "sqlite":
        yield from _sql_store(f"sqlite:///{tmp_path / 'accounts.db'}", tmp_path)
        return
    require_server("PostgreSQL", PG_HOST, PG_PORT)
    server_url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"
    name, url = _create_database(server_url)
    try:
        yield from _sql_store(url, tmp_path)
    finally:
        _drop_database(server_url, name)


@pytest.fixture
def uow(backend: Store) -> Iterator[UowFactory]:
    """A unit-of-work factory on an empty store."""
    try:
        yield backend.uow
    finally:
        backend.empty()


def writers_take_turns(backend: Store) -> None:
    """Skip a test of two writers at once on SQLite: its writers take turns, so none commits meanwhile."""
    if backend.name == "sqlite":
        pytest.skip("SQLite writers take turns: no other writer can commit meanwhile")
