"""What the fault tests share: the worker as a real process, a cuttable TCP proxy, and the books.

No tests here. A `Deployment` is one test's service: its database, broker, queue
names, workbook and interim database, with short retry and poll settings. Its
worker is the real `accounts worker` process, started, SIGKILLed and restarted as
an operator's supervisor would. A `TcpProxy` on loopback stands between the worker
and a server (PostgreSQL, RabbitMQ, the interim database): cutting it drops every
connection through it and refuses new ones until it is restored, which is what the
worker sees when the server goes down, without touching a server other tests use.

`Books` reads back what the service did and `check` asserts every guarantee of
the crash test (one account per tenure, one workbook and interim row per account,
every account event published, `accounts interim reconcile` agreeing).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import sqlalchemy as sa

from tests.fixtures.tenures import TenureStory, decided_by_tenure, expected_account

ACCOUNTS = [sys.executable, "-m", "accounts.entrypoints.cli"]

# Short waits everywhere: a drain of thousands of events in seconds, not minutes.
FAST = {
    "ACCOUNTS_RETRY_BASE_SECONDS": "0.05",
    "ACCOUNTS_RETRY_MAX_SECONDS": "0.5",
    "ACCOUNTS_WORKER_POLL_SECONDS": "0.05",
    "ACCOUNTS_INTERIM_FLUSH_SECONDS": "0.5",
    "ACCOUNTS_EMBEDDED_LEASE_SECONDS": "3",
    "ACCOUNTS_LOG_LEVEL": "INFO",
    # Small against the few thousand events of a test, so that every kill and outage lands mid-drain
    # (a batch of the default 1,000 could finish a 5,000-event drain between two progress checks).
    "ACCOUNTS_WORKER_BATCH_SIZE": "500",
}


def wait_until(condition: Callable[[], Any], timeout: float, what: str, pause: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(pause)


# A loopback TCP proxy that can be cut ------------------------------------------------------


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a server; `cut()` drops every connection and refuses new ones.

    One thread, non-blocking sockets and a selector: a thread per direction, each waiting for
    the GIL on every packet, made the worker ten times slower through it.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.setblocking(False)
        self.port = int(self._listener.getsockname()[1])
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._peer: dict[socket.socket, socket.socket] = {}
        self._outgoing: dict[socket.socket, bytearray] = {}
        self._cut = False
        self._cutting = threading.Event()
        self._cut_done = threading.Event()
        self._closed = False
        self.cuts = 0
        self.refused = 0
        self._thread = threading.Thread(target=self._run, name=f"proxy-{self.port}", daemon=True)
        self._thread.start()

    def url_for(self, url: str) -> str:
        """The same URL, pointing at the proxy."""
        parsed = urlparse(url)
        netloc = parsed.netloc.rsplit("@", 1)
        auth = netloc[0] + "@" if len(netloc) == 2 else ""
        return parsed._replace(netloc=f"{auth}127.0.0.1:{self.port}").geturl()

    @property
    def is_cut(self) -> bool:
        return self._cut

    def cut(self) -> None:
        """Reset every connection through the proxy and refuse new ones; returns once done."""
        self._cut = True
        self.cuts += 1
        self._cut_done.clear()
        self._cutting.set()
        self._wake_write.send(b"x")
        self._cut_done.wait(5)

    def restore(self) -> None:
        self._cut = False

    @contextlib.contextmanager
    def outage(self, seconds: float) -> Iterator[None]:
        self.cut()
        try:
            time.sleep(seconds)
            yield
        finally:
            self.restore()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._thread.join(5)
        for sock in (self._listener, self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                sock.close()

    # The loop: every socket is touched by this thread only.

    def _run(self) -> None:
        while not self._closed:
            for key, mask in self._selector.select(timeout=0.5):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    self._accept()
                elif sock is self._wake_read:
                    with contextlib.suppress(OSError):
                        sock.recv(4096)
                elif sock in self._peer:
                    if mask & selectors.EVENT_READ:
                        self._forward(sock)
                    if sock in self._peer and mask & selectors.EVENT_WRITE:
                        self._flush(sock)
            if self._cutting.is_set():
                self._cutting.clear()
                for sock in list(self._peer):
                    self._drop(sock)
                self._cut_done.set()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        if self._cut:
            self.refused += 1
            _abort(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _abort(client)
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._outgoing[sock] = bytearray()
            self._selector.register(sock, selectors.EVENT_READ, None)
        self._peer[client], self._peer[upstream] = upstream, client

    def _forward(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(262144)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        peer = self._peer[sock]
        self._outgoing[peer] += data
        self._flush(peer)

    def _flush(self, sock: socket.socket) -> None:
        buffer = self._outgoing[sock]
        try:
            while buffer:
                sent = sock.send(buffer)
                del buffer[:sent]
        except BlockingIOError:
            pass
        except OSError:
            self._drop(sock)
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if buffer else 0)
        self._selector.modify(sock, events, None)

    def _drop(self, sock: socket.socket) -> None:
        peer = self._peer.pop(sock, None)
        for one in (sock, peer):
            if one is None:
                continue
            self._peer.pop(one, None)
            self._outgoing.pop(one, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(one)
            _abort(one)


def _abort(sock: socket.socket) -> None:
    """Close at once with a reset, as a crashed server's kernel would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


# The service, as processes -----------------------------------------------------------------


@dataclass
class WorkerProcess:
    popen: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.monotonic)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the worker did not stop within {timeout}s of SIGTERM") from None


@dataclass
class Deployment:
    """One test's service configuration, as the ACCOUNTS_* environment of its processes."""

    tmp: Path
    database_url: str  # as the test reaches it
    broker_url: str = "embedded"
    interim_database_url: str | None = None
    names: dict[str, str] = field(default_factory=dict)  # tenure_queue, tenure_exchange, accounts_exchange
    extra: dict[str, str] = field(default_factory=dict)
    # What the worker is given instead (through a proxy), when different.
    worker_urls: dict[str, str] = field(default_factory=dict)
    workers: list[WorkerProcess] = field(default_factory=list)
    _engine: sa.Engine | None = None

    @property
    def spreadsheet_path(self) -> Path:
        return self.tmp / "interim-tenancy-agreements.xlsx"

    def environment(self, for_worker: bool = False, **more: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("ACCOUNTS_")}
        sinks = "spreadsheet,database" if self.interim_database_url else "spreadsheet"
        values = {
            "ACCOUNTS_ENVIRONMENT": "test",
            "ACCOUNTS_DATABASE_URL": self.database_url,
            "ACCOUNTS_BROKER_URL": self.broker_url,
            "ACCOUNTS_SPREADSHEET_PATH": str(self.spreadsheet_path),
            "ACCOUNTS_INTERIM_SINKS": sinks,
            **FAST,
        }
        if self.interim_database_url:
            values["ACCOUNTS_INTERIM_DATABASE_URL"] = self.interim_database_url
        for name, value in self.names.items():
            values[f"ACCOUNTS_{name.upper()}"] = value
        if for_worker:
            values.update(self.worker_urls)
        values.update(self.extra)
        values.update(more)
        env.update(values)
        return env

    def settings(self, **overrides: object) -> Any:
        from accounts.settings import Settings

        env = self.environment()
        values: dict[str, object] = {
            key.removeprefix("ACCOUNTS_").lower(): value for key, value in env.items() if key.startswith("ACCOUNTS_")
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    def cli(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ACCOUNTS, *args],
            env=self.environment(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def migrate(self) -> None:
        result = self.cli("migrate")
        assert result.returncode == 0, result.stderr[-3000:]

    def start_worker(self, **env: str) -> WorkerProcess:
        log = self.tmp / f"worker-{len(self.workers)}.log"
        with log.open("wb") as output:
            popen = subprocess.Popen(
                [*ACCOUNTS, "worker", "--no-migrate"],
                env=self.environment(for_worker=True, **env),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProcess(popen, log)
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.kill()
        if self._engine is not None:
            self._engine.dispose()

    def logs(self, tail: int = 1500) -> str:
        return "\n".join(f"--- {w.log.name}\n{w.output()[-tail:]}" for w in self.workers[-3:])

    # Publishing -----------------------------------------------------------------------------

    def publish(self, bodies: Iterable[tuple[bytes, str, str]]) -> int:
        """Publish (body, group_id, message_id) to the tenure topic, in bulk where the broker can."""
        from accounts.bootstrap import build_broker
        from accounts.service.ports import TENURE_TOPIC

        broker = build_broker(self.settings(), self.engine)
        items = list(bodies)
        if self.broker_url.startswith("amqp") and len(items) > 1:
            # The adapter waits for a confirm per message (seconds for thousands): publish the first
            # through it (declaring the topology), the rest unconfirmed, then wait until all are queued.
            body, group, message_id = items[0]
            broker.publish(TENURE_TOPIC, body, group_id=group, message_id=message_id)
            broker.close()
            self._publish_unconfirmed(items[1:])
            queue = self.names["tenure_queue"]
            wait_until(lambda: rabbit_queue_depth(self.broker_url, queue) >= len(items), 60, "every event queued")
            return len(items)
        try:
            bulk = getattr(broker, "publish_many", None)
            if bulk is not None:
                for start in range(0, len(items), 1000):
                    bulk(TENURE_TOPIC, items[start : start + 1000])
            else:
                for body, group, message_id in items:
                    broker.publish(TENURE_TOPIC, body, group_id=group, message_id=message_id)
        finally:
            broker.close()
        return len(items)

    def _publish_unconfirmed(self, items: list[tuple[bytes, str, str]]) -> None:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.broker_url))
        channel = connection.channel()
        exchange = self.names["tenure_exchange"]
        for body, group, message_id in items:
            properties = pika.BasicProperties(
                content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent, message_id=message_id
            )
            channel.basic_publish(exchange, group, body, properties)
        connection.close()

    def publish_events(self, events: Iterable[dict[str, Any] | bytes]) -> int:
        items = []
        for index, event in enumerate(events):
            if isinstance(event, bytes):
                items.append((event, "unknown", f"raw-{index}"))
            else:
                items.append((json.dumps(event).encode(), str(event.get("entityId")), str(event.get("id"))))
        return self.publish(items)

    # Reading ---------------------------------------------------------------------------------

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            from accounts.adapters.database.engine import create_engine

            self._engine = create_engine(self.database_url)
        return self._engine

    def scalar(self, query: str) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(sa.text(query)).scalar()

    def column(self, query: str) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(sa.text(query)).scalars())

    def processed(self) -> int:
        return int(self.scalar("SELECT count(*) FROM processed_events") or 0)

    def settled(self, expected_processed: int, dead_letters: int = 0) -> bool:
        """Every event processed or dead-lettered, every account event published, every sink delivered."""
        try:
            return (
                self.processed() >= expected_processed
                and int(self.scalar("SELECT count(*) FROM dead_letters") or 0) >= dead_letters
                and int(self.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL") or 0) == 0
                and int(self.scalar("SELECT count(*) FROM interim_pending") or 0) == 0
                and int(self.scalar("SELECT count(*) FROM embedded_messages") or 0) == 0
            )
        except sa.exc.OperationalError:  # SQLite busy for a moment under the worker's writes
            return False


def story_items(stories: list[TenureStory], rng: random.Random) -> list[dict[str, Any]]:
    """Every story's events, tenures interleaved as they would be on a real feed, each tenure in order."""
    queues = [list(tale.events) for tale in stories]
    out: list[dict[str, Any]] = []
    while queues:
        index = rng.randrange(len(queues))
        out.append(queues[index].pop(0))
        if not queues[index]:
            queues[index] = queues[-1]
            queues.pop()
    return out


# Watching RabbitMQ's account events ------------------------------------------------------


class AccountEventTap:
    """A queue bound to the accounts exchange before the worker starts: what the relay published.

    No connection is held between calls (an idle pika connection misses its heartbeats and is
    closed by RabbitMQ during a long drain); the queue outlives the connections and is deleted
    by `close` (or by RabbitMQ, three hours after its last use).
    """

    def __init__(self, rabbitmq_url: str, exchange: str, queue: str) -> None:
        self.url = rabbitmq_url
        self.queue = queue
        self.ids: Counter[str] = Counter()
        with self._channel() as channel:
            channel.exchange_declare(exchange, exchange_type="topic", durable=True)
            channel.queue_declare(queue, durable=True, arguments={"x-expires": 3 * 3600 * 1000})
            channel.queue_bind(queue, exchange, routing_key="#")

    @contextlib.contextmanager
    def _channel(self) -> Iterator[Any]:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            yield connection.channel()
        finally:
            with contextlib.suppress(Exception):
                connection.close()

    def collect(self) -> Counter[str]:
        with self._channel() as channel:
            while True:
                method, properties, _body = channel.basic_get(self.queue, auto_ack=True)
                if method is None:
                    return self.ids
                self.ids[str(properties.message_id)] += 1

    def close(self) -> None:
        with contextlib.suppress(Exception), self._channel() as channel:
            channel.queue_delete(self.queue)


def delete_rabbit_names(rabbitmq_url: str, names: dict[str, str]) -> None:
    """Remove a test's queues and exchanges (the retry buckets expire by themselves)."""
    import pika

    with contextlib.suppress(Exception):
        connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
        channel = connection.channel()
        queue = names["tenure_queue"]
        for name in (queue, f"{queue}.dead"):
            with contextlib.suppress(Exception):
                channel.queue_delete(name)
        for name in (names["tenure_exchange"], names["accounts_exchange"], f"{queue}.dead"):
            with contextlib.suppress(Exception):
                channel.exchange_delete(name)
        connection.close()


def rabbit_queue_depth(rabbitmq_url: str, queue: str) -> int:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


# The books -----------------------------------------------------------------------------------


@dataclass
class Figures:
    """What a run measured, for docs/reliability.md."""

    events: int = 0
    unique_events: int = 0
    tenures: int = 0
    kills: int = 0
    outages: list[str] = field(default_factory=list)
    accounts: int = 0
    lost: int = 0
    duplicated: int = 0
    account_events: int = 0
    republished: int = 0  # account events the relay sent twice (after a crash): consumers deduplicate
    dead_letters: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return json.dumps(self.__dict__)


def check_books(
    deployment: Deployment,
    stories: list[TenureStory],
    events: list[dict[str, Any]],
    figures: Figures,
    tap: AccountEventTap | None = None,
    dead_letters: int = 0,
) -> Figures:
    """Assert every guarantee of the crash test; fill in the figures."""
    from accounts.adapters.sinks.interim_database import InterimDatabaseSink
    from accounts.adapters.sinks.xlsx_workbook import XlsxWorkbookSink
    from accounts.bootstrap import bootstrap

    tenures = {tale.tenure_id for tale in stories}
    figures.tenures = len(tenures)
    figures.unique_events = len({event["id"] for event in events})

    # Exactly one account per tenure, each as in-order delivery gives it.
    masters = Counter(str(value).replace("-", "") for value in deployment.column("SELECT target_id FROM accounts"))
    wanted = {tenure_id.replace("-", "") for tenure_id in tenures}
    figures.accounts = sum(masters.values())
    missing = wanted - set(masters)
    doubled = [tenure for tenure, count in masters.items() if count > 1]
    figures.lost = len(missing)
    figures.duplicated = len(doubled) + len(set(masters) - wanted)
    assert not missing, f"{len(missing)} tenure(s) have no account, e.g. {sorted(missing)[:3]}"
    assert not doubled, f"{len(doubled)} tenure(s) have several accounts, e.g. {doubled[:3]}"
    assert set(masters) == wanted, f"accounts for unknown targets: {sorted(set(masters) - wanted)[:3]}"

    app = bootstrap(deployment.settings())
    try:
        mismatched = []
        for tale in stories:
            from uuid import UUID

            from accounts.domain.account import to_wire

            [account] = app.accounts.by_target(UUID(tale.tenure_id), None)
            got = decided_by_tenure(json.loads(json.dumps(to_wire(account), default=str)))
            if got != expected_account(tale.tenure):
                mismatched.append(tale.tenure_id)
        assert not mismatched, f"{len(mismatched)} account(s) differ from in-order processing: {mismatched[:3]}"

        # Every event recorded once; nothing left on the queue; nothing dead-lettered.
        processed = Counter(str(v).replace("-", "") for v in deployment.column("SELECT event_id FROM processed_events"))
        assert set(processed) == {event["id"].replace("-", "") for event in events}, "every event processed"
        letters = int(deployment.scalar("SELECT count(*) FROM dead_letters") or 0)
        figures.dead_letters = letters
        assert letters == dead_letters, f"{letters} dead letter(s), expected {dead_letters}"

        # Every account event published: the outbox is empty; one creation event per account.
        unpublished = int(deployment.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL") or 0)
        assert unpublished == 0, f"{unpublished} account event(s) still in the outbox"
        created = Counter(deployment.column("SELECT group_id FROM outbox WHERE event_type = 'AccountCreatedEvent'"))
        assert len(created) == len(tenures) and set(created.values()) == {1}, "one AccountCreatedEvent per account"
        outbox_ids = {str(v).replace("-", "") for v in deployment.column("SELECT event_id FROM outbox")}
        figures.account_events = len(outbox_ids)
        if tap is not None:
            received = tap.collect()
            got_ids = {key.replace("-", "") for key in received}
            never_received = outbox_ids - got_ids
            assert not never_received, f"{len(never_received)} account event(s) never reached RabbitMQ"
            figures.republished = sum(count - 1 for count in received.values())

        # One workbook row and one interim database row per account, and the CLI's reconcile agrees.
        refs = Counter(deployment.column("SELECT payment_reference FROM accounts"))
        sinks: list[Any] = [XlsxWorkbookSink(deployment.spreadsheet_path)]
        if deployment.interim_database_url:
            sinks.append(InterimDatabaseSink(deployment.interim_database_url))
        for sink in sinks:
            rows = Counter(row.payment_ref for row in sink.read_rows())
            assert rows == refs, (
                f"{sink.name}: {len(set(refs) - set(rows))} account(s) missing, "
                f"{sum(n - 1 for n in rows.values() if n > 1)} duplicated, {len(set(rows) - set(refs))} extra"
            )
            sink.close()
    finally:
        app.close()
    reconciled = deployment.cli("interim", "reconcile")
    assert reconciled.returncode == 0, f"reconcile disagrees:\n{reconciled.stdout[-2000:]}{reconciled.stderr[-2000:]}"
    assert "agree" in reconciled.stdout, f"reconcile said:\n{reconciled.stdout[-2000:]}{reconciled.stderr[-2000:]}"
    return figures


def record_figures(name: str, figures: Figures) -> None:
    """Append the run's figures to a JSON-lines file when RELIABILITY_FIGURES names one (docs/reliability.md)."""
    target = os.environ.get("RELIABILITY_FIGURES")
    print(f"\nFIGURES {name}: {figures.line()}")
    if target:
        with open(target, "a", encoding="utf-8") as file:
            file.write(json.dumps({"test": name, **figures.__dict__}) + "\n")


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def pg_url_with_password(url: str, password: str) -> str:
    parsed = urlparse(url)
    user, _, host = parsed.netloc.rpartition("@")
    return parsed._replace(netloc=f"{user}:{quote(password)}@{host}").geturl()
