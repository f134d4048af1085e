"""Issue 15 item 2: the HTTP events intake (`POST /api/v1/events`), taking real batches.

Two figures, each against a ceiling measured in the same run:

- **accepted**: envelopes/s answered 202 by `accounts serve --no-worker` (the API alone, so
  the listener's work does not show in it) on a fresh database, in batches of `BATCH`
  envelopes (realistic tenure creates and updates from `tests/fixtures/tenures.py`) from
  `CONNECTIONS` connections of this process. Ceiling: the same bodies posted the same way to
  bench.ceiling's bare Starlette endpoint on uvicorn, which reads each body and parses it
  with orjson (the transfer and a JSON parse, nothing checked, nothing queued).
- **end to end**: `tenures` creates then as many updates posted to the default `accounts serve`
  (the API with the listener in the same process, the relay and the sinks in its child), timed
  from the first POST to the last event applied and in every interim sink. Ceiling: the
  broker alone, the same messages published in batches and then received and acknowledged
  with no processing (`bench.listener ceiling`); the slower of its two sides is the most a
  queue between the intake and the listener could carry.

The bodies are made and encoded before the clock starts; the posting threads are this
process (the *bench* column of the bounds table is the load generator here).
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from accounts.adapters.database.engine import create_engine
from bench import listener, servers
from bench.cpu import CpuWatch, watching
from bench.seed import fresh_database
from bench.topology import Topology, ensure_database

BATCH = 1_000  # envelopes a request: about 1.35 MB of tenure events, well inside the 10 MB limit
LARGE_BATCH = 5_000  # about 6.7 MB: the largest batch the default limit takes with room to spare
CONNECTIONS = 2
ACCEPT_ENVELOPES = 100_000  # per batch size, after one warm-up request
PRODUCTION_ACCEPT_ENVELOPES = 20_000  # RabbitMQ: the same figure at a fifth of the size
END_TO_END_TENURES = 100_000  # each a create and an update: 200,000 events


@dataclass
class Accepting:
    """One batch size posted to the intake and to the ceiling."""

    batch: int
    envelopes: int
    seconds: float
    ceiling_seconds: float
    statuses: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, Any] = field(default_factory=dict)
    ceiling_cpu: dict[str, Any] = field(default_factory=dict)
    peak_rss: int = 0

    @property
    def rate(self) -> float:
        return self.envelopes / self.seconds if self.seconds else 0.0

    @property
    def ceiling_rate(self) -> float:
        return self.envelopes / self.ceiling_seconds if self.ceiling_seconds else 0.0


@dataclass
class EndToEnd:
    """Events posted to the default `accounts serve` until every one is applied and in every sink."""

    events: int
    batch: int
    sinks: list[str]
    accepted_seconds: float = 0.0  # first POST -> last 202
    applied_seconds: float = 0.0  # first POST -> every event processed (or dead-lettered)
    seconds: float = 0.0  # first POST -> every event in every interim sink
    applied_while_accepting: int = 0
    dead_letters: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    broker: listener.CeilingResult = field(default_factory=listener.CeilingResult)
    cpu: dict[str, Any] = field(default_factory=dict)
    peak_rss: int = 0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def ceiling_rate(self) -> float:
        """The broker's slower side: publishing or receiving-and-acknowledging."""
        b = self.broker
        rates = [b.messages / s for s in (b.publish_seconds, b.consume_seconds) if s]
        return min(rates) if rates else 0.0


@dataclass
class IntakeRun:
    accepting: list[Accepting] = field(default_factory=list)
    end_to_end: EndToEnd | None = None


def bodies(tenures: int, batch: int) -> tuple[list[bytes], int]:
    """Every create, then every update, in JSON arrays of `batch` envelopes; and how many envelopes."""
    creates, updates, _ = listener.make_events(tenures)
    envelopes = creates + updates
    return [orjson.dumps(envelopes[start : start + batch]) for start in range(0, len(envelopes), batch)], len(envelopes)


def post_all(
    port: int, token: str, payloads: list[bytes], connections: int = CONNECTIONS
) -> tuple[float, dict[str, int]]:
    """Post every body, `connections` at a time (each a kept-alive connection); seconds and statuses."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    taken = itertools.count()
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    failures: list[BaseException] = []

    def one() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        try:
            while (index := next(taken)) < len(payloads):
                connection.request("POST", "/api/v1/events", payloads[index], headers)
                response = connection.getresponse()
                response.read()
                with lock:
                    statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
        except BaseException as error:  # reported by the caller: a broken run is never a figure
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=one, name=f"intake-post-{n}") for n in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"posting the batches failed: {failures[0]!r}")
    return seconds, statuses


def accepting(
    topology: Topology, work: Path, token: str, envelopes: int, batches: tuple[int, ...] = (BATCH, LARGE_BATCH)
) -> list[Accepting]:
    """Envelopes/s accepted by the API alone, and by the ceiling, at each batch size."""
    runs = []
    for batch in batches:
        payloads, count = bodies(max(1, (envelopes + batch) // 2), batch)  # one batch more: the warm-up
        warm, measured = payloads[:1], payloads[1:]
        count -= len(orjson.loads(warm[0]))
        database = f"bench_intake_accept_{batch}"
        if topology.embedded:
            url = f"sqlite:///{work / database}.db"
        else:
            assert topology.server_url is not None
            ensure_database(topology.server_url, database)
            url = topology.database_url(database) or ""
        fresh_database(url)
        extra = _broker_env(topology, work, database)
        port = servers.free_port()
        env = servers.service_env(url, work, port, **extra["env"])
        command = [*servers.accounts_command(), "serve", "--no-worker"]
        try:
            with servers.running(f"intake-accept-{batch}", command, env, work, port, "/api/v1/health/live") as server:
                post_all(server.port, token, warm)
                with watching([server.process.pid], None if topology.embedded else database) as use:
                    seconds, statuses = post_all(server.port, token, measured)
                peak = server.memory.stop()
            with servers.ceiling(work) as ceiling:
                post_all(ceiling.port, token, warm)
                with watching([ceiling.process.pid]) as ceiling_use:
                    ceiling_seconds, _ = post_all(ceiling.port, token, measured)
        finally:
            extra["cleanup"]()
        runs.append(Accepting(batch, count, seconds, ceiling_seconds, statuses, asdict(use), asdict(ceiling_use), peak))
    return runs


def _broker_env(topology: Topology, work: Path, name: str) -> dict[str, Any]:
    """The service's broker settings for a run named `name` (RabbitMQ: queues of its own, deleted after)."""
    if topology.embedded:
        return {"env": {}, "cleanup": lambda: None, "settings": None}
    spec = listener.Spec(
        name=name,
        work=str(work),
        database_url="",
        broker_url=topology.broker_url or "",
        tenures=0,
        queue_suffix=uuid.uuid4().hex[:10],
    )
    settings = listener.settings_for(spec)
    env = {
        "ACCOUNTS_BROKER_URL": settings.broker_url,
        "ACCOUNTS_TENURE_EXCHANGE": settings.tenure_exchange,
        "ACCOUNTS_TENURE_QUEUE": settings.tenure_queue,
        "ACCOUNTS_ACCOUNTS_EXCHANGE": settings.accounts_exchange,
    }
    spec.database_url = "sqlite://"
    broker, engine = listener._broker(listener.settings_for(spec))  # declares the queue: nothing published is lost
    broker.close()
    engine.dispose()
    return {
        "env": env,
        "cleanup": lambda: listener._delete_rabbit_topology(topology.broker_url or "", settings),
        "settings": settings,
    }


def end_to_end(topology: Topology, work: Path, token: str, tenures: int, batch: int = BATCH) -> EndToEnd:
    """`tenures` creates and as many updates through the intake of the default `accounts serve`."""
    name = "bench_intake_e2e"
    interim = work / f"{name}-interim.db"
    if topology.embedded:
        url = f"sqlite:///{work / name}.db"
    else:
        assert topology.server_url is not None
        ensure_database(topology.server_url, name)
        url = topology.database_url(name) or ""
    payloads, events = bodies(tenures, batch)
    sinks = ["spreadsheet"] + (["database"] if listener.database_sink_available() else [])
    result = EndToEnd(events=events, batch=batch, sinks=sinks)
    result.broker = _broker_ceiling(topology, work, payloads)
    fresh_database(url)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{interim}{suffix}").unlink(missing_ok=True)
    (work / f"{name}.xlsx").unlink(missing_ok=True)
    extra = _broker_env(topology, work, name)
    port = servers.free_port()
    env = servers.service_env(
        url,
        work,
        port,
        ACCOUNTS_RUN_WORKER_IN_SERVE="true",
        ACCOUNTS_SPREADSHEET_PATH=str(work / f"{name}.xlsx"),
        ACCOUNTS_INTERIM_SINKS=",".join(sinks),
        **({"ACCOUNTS_INTERIM_DATABASE_URL": f"sqlite:///{interim}"} if "database" in sinks else {}),
        **extra["env"],
    )
    engine = create_engine(url)
    database = None if topology.embedded else name
    try:
        with servers.running(
            "intake-serve", [*servers.accounts_command(), "serve"], env, work, port, "/api/v1/health/live"
        ) as server:
            deadline = time.monotonic() + 3600

            def applied() -> bool:
                if server.process.poll() is not None:
                    raise RuntimeError(f"accounts serve exited with {server.process.returncode}; see {server.log}")
                return listener._processed(engine) + listener._dead(engine) >= events

            watch = CpuWatch([server.process.pid], database).start()
            started = time.perf_counter()
            result.accepted_seconds, result.statuses = post_all(server.port, token, payloads)
            result.applied_while_accepting = listener._processed(engine)
            listener._wait(applied, deadline, "the listener", 0.2)
            result.applied_seconds = time.perf_counter() - started
            listener._wait(lambda: listener._pending(engine) == 0, deadline, "the interim sinks", 0.05)
            result.seconds = time.perf_counter() - started
            result.cpu = asdict(watch.stop())
            result.dead_letters = listener._dead(engine)
            result.peak_rss = server.memory.stop()
    finally:
        engine.dispose()
        extra["cleanup"]()
    return result


def _broker_ceiling(topology: Topology, work: Path, payloads: list[bytes]) -> listener.CeilingResult:
    """The broker alone, in a process of its own: the same messages published, then received and acked."""
    name = "bench_intake_broker"
    url = f"sqlite:///{work / name}.db" if topology.embedded else topology.database_url(name) or ""
    if not topology.embedded:
        assert topology.server_url is not None
        ensure_database(topology.server_url, name)
    fresh_database(url)
    spec = listener.Spec(
        name=name,
        work=str(work),
        database_url=url,
        broker_url=topology.broker_url or "embedded",
        tenures=0,
        queue_suffix=uuid.uuid4().hex[:10] if topology.broker_url else "",
    )
    messages = [
        [orjson.dumps(envelope).decode(), str(envelope["entityId"]), str(envelope["id"])]
        for payload in payloads
        for envelope in orjson.loads(payload)
    ]
    path = work / f"{name}.bodies.json"
    path.write_text(json.dumps(messages), encoding="utf-8")
    try:
        return listener.CeilingResult(**listener._child("ceiling", spec, path))
    finally:
        path.unlink(missing_ok=True)
        if topology.broker_url:
            listener._delete_rabbit_topology(topology.broker_url, listener.settings_for(spec))


def run(
    topology: Topology, work: Path, token: str, envelopes: int, batches: tuple[int, ...], tenures: int | None
) -> IntakeRun:
    """Both figures on one topology (`tenures` None: accepting only)."""
    outcome = IntakeRun(accepting=accepting(topology, work, token, envelopes, batches))
    if tenures:
        outcome.end_to_end = end_to_end(topology, work, token, tenures)
    return outcome
