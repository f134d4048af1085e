"""The two topologies `make bench` measures, and the benchmark's own databases on PostgreSQL.

- embedded: the default `accounts serve` (SQLite, the queue in the database);
- production: PostgreSQL and RabbitMQ, the servers on this machine (BENCH_POSTGRES_URL,
  BENCH_RABBITMQ_URL to point elsewhere).

On PostgreSQL the benchmark creates databases of its own, every name starting with
`bench_` (so it never touches the tests' or anybody's data), and on RabbitMQ queues and
exchanges of its own, every name starting with `bench-`.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import make_url

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


@dataclass(frozen=True)
class Topology:
    """Where the service keeps its data and takes its events: None is the embedded default."""

    key: str
    title: str
    server_url: str | None = None  # PostgreSQL: the maintenance database, for CREATE DATABASE
    broker_url: str | None = None

    @property
    def embedded(self) -> bool:
        return self.server_url is None

    def database_url(self, name: str) -> str | None:
        """The URL of the benchmark's database `name` on this topology's server (None: SQLite)."""
        if self.server_url is None:
            return None
        if not name.startswith("bench_"):
            raise ValueError(f"the benchmark's PostgreSQL databases are named bench_*, not {name!r}")
        return make_url(self.server_url).set(database=name).render_as_string(hide_password=False)


EMBEDDED = Topology("embedded", "Embedded: SQLite + embedded queue")


def production(postgres_url: str = POSTGRES_URL, rabbitmq_url: str = RABBITMQ_URL) -> Topology:
    return Topology("production", "Production: PostgreSQL + RabbitMQ", postgres_url, rabbitmq_url)


def reachable(topology: Topology, timeout: float = 2.0) -> str | None:
    """None when the topology's servers answer; else why not."""
    targets = []
    if topology.server_url:
        url = make_url(topology.server_url)
        targets.append(("PostgreSQL", url.host or "127.0.0.1", url.port or 5432))
    if topology.broker_url:
        from urllib.parse import urlsplit

        parts = urlsplit(topology.broker_url)
        targets.append(("RabbitMQ", parts.hostname or "127.0.0.1", parts.port or 5672))
    for name, host, port in targets:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as error:
            return f"{name} at {host}:{port} is not reachable ({error})"
    if topology.server_url:
        try:
            engine = sa.create_engine(topology.server_url)
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
            engine.dispose()
        except sa.exc.SQLAlchemyError as error:
            return f"PostgreSQL refused the connection ({str(error).splitlines()[0]})"
    return None


@contextlib.contextmanager
def _admin(server_url: str) -> Iterator[sa.Connection]:
    """An autocommit connection to the maintenance database, its engine disposed after."""
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def _quoted(name: str) -> str:
    if not name.startswith("bench_") or not name.replace("_", "").isalnum():
        raise ValueError(f"not a benchmark database name: {name!r}")
    return f'"{name}"'


def ensure_database(server_url: str, name: str) -> bool:
    """Create the database `name` unless it exists; True when it was created."""
    with _admin(server_url) as connection:
        exists = connection.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
        if exists is None:
            connection.exec_driver_sql(f"CREATE DATABASE {_quoted(name)}")
            return True
        return False


def database_note(server_url: str, name: str) -> str:
    """The comment on a database (the benchmark marks a finished seeding there); '' without one."""
    with _admin(server_url) as connection:
        query = sa.text("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :n")
        return str(connection.execute(query, {"n": name}).scalar() or "")


def set_database_note(server_url: str, name: str, note: str) -> None:
    with _admin(server_url) as connection:
        connection.exec_driver_sql(f"COMMENT ON DATABASE {_quoted(name)} IS '{note.replace(chr(39), '')}'")


def copy_database(server_url: str, source: str, target: str, attempts: int = 20) -> None:
    """`target` as a fresh copy of `source` (CREATE DATABASE ... TEMPLATE): seconds, where reseeding takes minutes.

    PostgreSQL copies a template only while nobody is connected to it; a service that has just
    stopped may still be closing its connections, so this tries again for a few seconds.
    """
    with _admin(server_url) as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {_quoted(target)} WITH (FORCE)")
        for attempt in range(attempts):
            try:
                connection.exec_driver_sql(f"CREATE DATABASE {_quoted(target)} TEMPLATE {_quoted(source)}")
                return
            except sa.exc.OperationalError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5)


def drop_database(server_url: str, name: str) -> None:
    with _admin(server_url) as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")
