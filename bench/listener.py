"""Items 4 and 5: the finance listener draining tenure events, and the workbook it keeps.

The benchmark process makes the events and publishes them (so their memory is not
counted as the service's); the service is a separate process (`python -m
bench.listener drain SPEC RESULT`) running the real `Worker`: listener, outbox relay
and interim sink flushers, exactly as `accounts worker` wires them (item 4: the relay
and the sinks in a child process of their own, the default; item 5: all in one
process, so the probes can watch the workbook's rewrites). Its sinks are wrapped with
timers, which is how the workbook's share of the work is measured.

The broker's ceiling is the same number of the same messages published and then
received and acknowledged with no processing at all (`python -m bench.listener
ceiling SPEC RESULT`).
"""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from accounts.adapters.database import tables as t
from accounts.adapters.database.engine import create_engine, is_sqlite
from accounts.bootstrap import Application, bootstrap, build_broker
from accounts.service.ports import TENURE_TOPIC, MessageBroker
from accounts.settings import Settings
from bench.cpu import BENCH, SERVICE, CpuUse, CpuWatch, watching
from bench.seed import fresh_database, seed_tenure_accounts
from bench.servers import BENCH_SECRET, LOG_LEVEL, MemoryWatch, accounts_command, python_env
from bench.topology import Topology, ensure_database

PUBLISH_CHUNK = 1000


@dataclass
class Spec:
    """One drain: where, how many tenures (each a create and an update), and what to measure."""

    name: str
    work: str
    database_url: str
    broker_url: str
    tenures: int
    queue_suffix: str = ""
    interim_database_url: str | None = None
    probe: dict[str, Any] | None = None  # an update envelope for item 5 (time to reach the workbook)
    rebuild: bool = False
    sync_process: bool = False  # the relay and the sinks in a process of their own, as `accounts worker` runs them
    timeout: float = 3600.0


@dataclass
class DrainResult:
    events: int = 0
    seconds_listener: float = 0.0  # worker start -> every event processed
    seconds_end_to_end: float = 0.0  # worker start -> every event processed and in every sink
    cpu_seconds: float = 0.0  # CPU time of the worker over the drain (all threads, and its relay-and-sinks process)
    dead_letters: int = 0
    sinks: list[str] = field(default_factory=list)
    flush_seconds: float = 0.0  # wall time of every sink flush during the drain
    flush_cpu_seconds: float = 0.0  # CPU time of the flushing threads in those flushes
    flushes: int = 0
    deliver_seconds: float = 0.0  # of which writing the sinks themselves (wall)
    deliver_cpu_seconds: float = 0.0
    workbook_cpu_seconds: float = 0.0  # the spreadsheet sink's flushes alone (CPU)
    workbook_flushes: int = 0
    rows: int = 0
    probe_seconds: list[float] = field(default_factory=list)
    rebuild_seconds: float = 0.0  # queue every row again, read them, write the workbook
    write_seconds: float = 0.0  # writing the workbook alone from rows in memory
    peak_rss: int = 0
    note: str = ""
    cpu: dict[str, Any] = field(default_factory=dict)  # a CpuUse over the drain (worker start -> end to end)
    timed_sinks: bool = True  # False for the real `accounts worker`, whose flushes are not wrapped in timers

    def cpu_use(self) -> CpuUse:
        return CpuUse(**self.cpu) if self.cpu else CpuUse()


@dataclass
class CeilingResult:
    messages: int = 0
    publish_seconds: float = 0.0
    consume_seconds: float = 0.0


def settings_for(spec: Spec) -> Settings:
    sinks = ["spreadsheet"]
    if spec.interim_database_url:
        sinks.append("database")
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": spec.database_url,
        "broker_url": spec.broker_url,
        "spreadsheet_path": Path(spec.work) / f"{spec.name}.xlsx",
        "interim_sinks": sinks,
        "interim_database_url": spec.interim_database_url,
        "log_level": LOG_LEVEL,
        "retry_base_seconds": 0.2,
        "retry_max_seconds": 2.0,
    }
    if spec.queue_suffix:
        values.update(
            tenure_exchange=f"bench-tenure-{spec.queue_suffix}",
            tenure_queue=f"bench-tenure-events-{spec.queue_suffix}",
            accounts_exchange=f"bench-accounts-{spec.queue_suffix}",
        )
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def database_sink_available() -> bool:
    try:
        import accounts.adapters.sinks.interim_database  # noqa: F401
    except ImportError:
        return False
    return True


# Events ------------------------------------------------------------------------------------------


def make_events(tenures: int, seed: int = 11) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """`tenures` TenureCreatedEvents, one TenureUpdatedEvent for each, and a spare update (the probe)."""
    from tests.fixtures.tenures import POSTCODES, STREETS, story

    rng = random.Random(seed)
    creates, updates = [], []
    probe_story = None
    for _ in range(tenures):
        tale = story(rng).moved_to(f"{rng.randrange(1, 99)} {rng.choice(STREETS)}, London {rng.choice(POSTCODES)}")
        creates.append(tale.events[0])
        updates.append(tale.events[1])
        probe_story = tale
    assert probe_story is not None
    probe_story.moved_to("1 Probe Street, Hackney, London E8 1DY")
    return creates, updates, probe_story.events[-1]


def publish(broker: MessageBroker, envelopes: list[dict[str, Any]]) -> None:
    for start in range(0, len(envelopes), PUBLISH_CHUNK):
        items = [
            (json.dumps(envelope).encode(), str(envelope["entityId"]), str(envelope["id"]))
            for envelope in envelopes[start : start + PUBLISH_CHUNK]
        ]
        broker.publish_many(TENURE_TOPIC, items)


def _broker(settings: Settings) -> tuple[MessageBroker, sa.Engine]:
    engine = create_engine(settings.database_url)
    return build_broker(settings, engine), engine


# The service side (child process) ---------------------------------------------------------------


class _Timed:
    """Wraps a callable and adds up its wall time and the CPU time of the thread calling it.

    The CPU time is the honest cost: a flusher thread's wall time also counts the time it
    waits for the interpreter lock while the listener runs.
    """

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.calls = 0
        self.last = 0.0
        self.productive = 0  # calls that returned something (a flush that delivered rows)
        self.last_productive = 0.0
        self.lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started, cpu = time.perf_counter(), time.thread_time()
        result = None
        try:
            result = self.function(*args, **kwargs)
            return result
        finally:
            elapsed, used = time.perf_counter() - started, time.thread_time() - cpu
            self.last = elapsed
            with self.lock:
                if result:
                    self.last_productive = elapsed
                    self.productive += 1
                self.seconds += elapsed
                self.cpu_seconds += used
                self.calls += 1


def _count(engine: sa.Engine, query: sa.Select[Any]) -> int:
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def _processed(engine: sa.Engine) -> int:
    if is_sqlite(engine.url):
        # Polled while the listener works: the highest rowid (rows are only added) is an index lookup, where
        # count(*) read the whole table each time, on the cores the service is using.
        with engine.connect() as connection:
            return int(connection.exec_driver_sql("SELECT coalesce(max(rowid), 0) FROM processed_events").scalar_one())
    return _count(engine, sa.select(sa.func.count()).select_from(t.processed_events))


def _dead(engine: sa.Engine) -> int:
    return _count(engine, sa.select(sa.func.count()).select_from(t.dead_letters))


def _pending(engine: sa.Engine) -> int:
    return _count(engine, sa.select(sa.func.count()).select_from(t.interim_pending))


def _seen(engine: sa.Engine, event_id: str) -> bool:
    query = sa.select(sa.func.count()).select_from(t.processed_events)
    return _count(engine, query.where(t.processed_events.c.event_id == uuid.UUID(event_id))) > 0


def _wait(condition: Callable[[], bool], deadline: float, what: str, pause: float = 0.05) -> None:
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(pause)


@dataclass
class SinkTimers:
    """The timers wrapped around the interim sync's flushes and the sinks' deliveries."""

    flush: _Timed
    workbook: _Timed
    delivers: list[_Timed]

    @classmethod
    def install(cls, application: Application) -> SinkTimers:
        original_flush = application.interim.flush
        flush, workbook = _Timed(original_flush), _Timed(original_flush)

        def flush_one(sink: Any) -> int:
            return int(workbook(sink) if sink.name == "spreadsheet" else flush(sink))

        application.interim.flush = flush_one  # type: ignore[method-assign]
        delivers = []
        for sink in application.interim.sinks:
            timed = _Timed(sink.deliver)
            sink.deliver = timed  # type: ignore[method-assign]
            delivers.append(timed)
        return cls(flush, workbook, delivers)

    def report(self) -> dict[str, float]:
        return {
            "flush_seconds": self.flush.seconds + self.workbook.seconds,
            "flush_cpu_seconds": self.flush.cpu_seconds + self.workbook.cpu_seconds,
            "flushes": self.flush.calls + self.workbook.calls,
            "workbook_cpu_seconds": self.workbook.cpu_seconds,
            "workbook_flushes": self.workbook.calls,
            "deliver_seconds": sum(timed.seconds for timed in self.delivers),
            "deliver_cpu_seconds": sum(timed.cpu_seconds for timed in self.delivers),
        }


SINKS_REPORT = "BENCH_SINKS_REPORT"  # where the relay-and-sinks process writes its timers (environment)


def timed_sync_process(settings: Settings, relay: bool, sync: bool, bursts: Any, parent: int) -> None:
    """`run_sync_process` with the sinks timed: the relay-and-sinks process of item 4's worker."""
    import os

    from accounts.entrypoints.worker import serve_sync

    application = bootstrap(settings)
    timers = SinkTimers.install(application)
    cpu = time.process_time()
    try:
        code = serve_sync(application, relay, sync, bursts, parent)
    finally:
        report = {**timers.report(), "cpu_seconds": time.process_time() - cpu}
        Path(os.environ[SINKS_REPORT]).write_text(json.dumps(report), encoding="utf-8")
        application.close()
    raise SystemExit(code)


def drain(spec: Spec) -> DrainResult:
    import os

    from accounts.entrypoints.worker import Worker
    from bench.listener import timed_sync_process as sync_target  # by its module's name: this one runs as __main__

    settings = settings_for(spec)
    application = bootstrap(settings)
    result = DrainResult(events=2 * spec.tenures, sinks=[sink.name for sink in application.interim.sinks])
    original_flush = application.interim.flush
    timers = SinkTimers.install(application)  # in this process unless the sinks have one of their own
    sinks_report = Path(spec.work) / f"{spec.name}.sinks.json"
    sinks_report.unlink(missing_ok=True)
    os.environ[SINKS_REPORT] = str(sinks_report)
    # Sampled less often than the benchmark's own watch of this process (which takes the higher peak): every
    # sample walks /proc for the children, in the interpreter the listener needs.
    watch = MemoryWatch(_own_pid(), interval=0.5).start()
    engine = application.engine
    deadline = time.monotonic() + spec.timeout
    worker = Worker(application, sync_process=spec.sync_process, sync_process_target=sync_target)
    cpu_watch = CpuWatch([os.getpid()], _database_name(spec.database_url)).start()
    started, cpu = time.perf_counter(), time.process_time()
    worker.start()
    try:
        _wait(lambda: _processed(engine) + _dead(engine) >= result.events, deadline, "the listener", 0.1)
        result.seconds_listener = time.perf_counter() - started
        _wait(lambda: _pending(engine) == 0, deadline, "the interim sinks", 0.02)
        result.seconds_end_to_end = time.perf_counter() - started
        result.cpu_seconds = time.process_time() - cpu
        use = cpu_watch.stop()
        # This process is the worker: its own CPU (counted as "this process" by the watch) is the service's.
        use.seconds[SERVICE] = use.seconds.get(SERVICE, 0.0) + use.seconds.pop(BENCH, 0.0)
        result.cpu = asdict(use)
        result.dead_letters = _dead(engine)
        if spec.probe is not None:
            result.probe_seconds = _probes(application, spec.probe, deadline, timers.workbook)
    finally:
        worker.shutdown()
    timings = timers.report()
    if spec.sync_process:
        # Written by the relay-and-sinks process as it stopped: its timers, and its CPU (counted in the worker's).
        timings = json.loads(sinks_report.read_text(encoding="utf-8"))
        result.cpu_seconds += timings.pop("cpu_seconds")
    for name, value in timings.items():
        setattr(result, name, value)
    result.rows = _count(engine, sa.select(sa.func.count()).select_from(t.interim_rows))
    if spec.rebuild:
        spreadsheet = next(sink for sink in application.interim.sinks if sink.name == "spreadsheet")
        started = time.perf_counter()
        with application.uow() as uow:  # what `accounts interim rebuild` does, for the workbook alone
            uow.deliveries.queue_everything(spreadsheet.name)
            uow.commit()
        original_flush(spreadsheet)
        result.rebuild_seconds = time.perf_counter() - started
    # Sampled, not ru_maxrss: on Linux that carries the high-water mark of the parent across fork and exec.
    # Stopped before the benchmark loads every row for its own write timing below: that list is not the service's.
    result.peak_rss = watch.stop()
    if spec.rebuild:
        with application.uow(read_only=True) as uow:
            rows = uow.deliveries.all()
        started = time.perf_counter()
        spreadsheet.deliver(rows)
        result.write_seconds = time.perf_counter() - started
        del rows
    if not spec.interim_database_url:
        result.note = "database sink not measured (not configured or not importable)"
    application.close()
    return result


def _probes(
    application: Application, probe: dict[str, Any], deadline: float, workbook: _Timed, count: int = 3
) -> list[float]:
    """Time for one tenure update to reach every sink: publish, then wait for its row to be delivered.

    Each probe is one update on a quiet service: after a rewrite the workbook rests a
    multiple of the time it took (REWRITE_PAUSE_FACTOR), so each probe first waits that out.
    """
    from accounts.entrypoints.worker import REWRITE_PAUSE_FACTOR

    broker = application.broker()
    engine = application.engine
    timings = []
    try:
        # The first whole write has delivered (pending is empty); let its flush call finish and be timed.
        _wait(lambda: workbook.productive > 0, deadline, "the first rewrite", 0.005)
        envelope = dict(probe)
        for number in range(count):
            # The flusher rests REWRITE_PAUSE_FACTOR times its last rewrite: let that pass.
            time.sleep(max(1.0, REWRITE_PAUSE_FACTOR * workbook.last_productive + 0.5))
            rewrites = workbook.productive
            envelope = {**envelope, "id": str(uuid.uuid4()), "dateTime": _later(envelope["dateTime"], number + 1)}
            address = f"{number + 1} Probe Street, Hackney, London E8 1DY"
            new_data = dict(envelope["eventData"]["newData"])
            new_data["tenuredAsset"] = {**new_data["tenuredAsset"], "fullAddress": address}
            envelope["eventData"] = {**envelope["eventData"], "newData": new_data}
            started = time.perf_counter()
            publish(broker, [envelope])
            event_id = envelope["id"]
            _wait(lambda event_id=event_id: _seen(engine, event_id), deadline, "the probe event", 0.005)
            _wait(lambda: _pending(engine) == 0, deadline, "the probe row", 0.005)
            timings.append(time.perf_counter() - started)
            # The row is in the workbook; the flush that wrote it finishes (and is timed) just after.
            _wait(lambda rewrites=rewrites: workbook.productive > rewrites, deadline, "the probe's rewrite", 0.005)
    finally:
        broker.close()
    return timings


def _later(stamp: str, seconds: int) -> str:
    from datetime import datetime, timedelta

    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(hours=1, seconds=seconds)
    return moment.isoformat().replace("+00:00", "Z")


def _own_pid() -> int:
    import os

    return os.getpid()


def ceiling(spec: Spec, bodies: list[tuple[bytes, str, str]]) -> CeilingResult:
    """Publish, then receive and acknowledge every message: the broker alone, no processing."""
    settings = settings_for(spec)
    broker, engine = _broker(settings)
    result = CeilingResult(messages=len(bodies))
    started = time.perf_counter()
    for start in range(0, len(bodies), PUBLISH_CHUNK):
        broker.publish_many(TENURE_TOPIC, bodies[start : start + PUBLISH_CHUNK])
    result.publish_seconds = time.perf_counter() - started
    received = 0
    started = time.perf_counter()
    idle = 0
    while received < len(bodies) and idle < 50:
        batch = broker.receive(settings.worker_batch_size, 0.1)
        if not batch:
            idle += 1
            continue
        idle = 0
        broker.ack_many(batch)
        received += len(batch)
    result.consume_seconds = time.perf_counter() - started
    if received < len(bodies):
        raise RuntimeError(f"the broker gave back {received} of {len(bodies)} messages")
    broker.close()
    engine.dispose()
    return result


# The benchmark side -----------------------------------------------------------------------------


def _child(mode: str, spec: Spec, extra: Path | None = None) -> dict[str, Any]:
    work = Path(spec.work)
    spec_path, result_path = work / f"{spec.name}.spec.json", work / f"{spec.name}.result.json"
    spec_path.write_text(json.dumps(asdict(spec)), encoding="utf-8")
    result_path.unlink(missing_ok=True)
    command = [sys.executable, "-m", "bench.listener", mode, str(spec_path), str(result_path)]
    if extra is not None:
        command.append(str(extra))
    with open(work / f"{spec.name}.log", "wb") as log:
        process = subprocess.Popen(command, env=python_env(), stdout=log, stderr=subprocess.STDOUT)
        watch = MemoryWatch(process.pid).start()
        code = process.wait()
        peak = watch.stop()
    if code != 0:
        raise RuntimeError(f"{mode} {spec.name} failed with exit code {code}; see {work / spec.name}.log")
    raw: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
    if "peak_rss" in raw:
        raw["peak_rss"] = max(raw["peak_rss"], peak)
    return raw


@dataclass
class ListenerRun:
    tenures: int
    publish_seconds: float
    drain: DrainResult
    ceiling: CeilingResult
    publish_cpu: dict[str, Any] = field(default_factory=dict)  # a CpuUse over the publishing (production)


def run(tenures: int, work: Path, database_url: str | None, broker_url: str | None) -> ListenerRun:
    """Publish `tenures` creates and as many updates, then drain them through a worker process."""
    name = f"listener-{tenures}"
    rabbit = bool(broker_url and broker_url.startswith("amqp"))
    suffix = uuid.uuid4().hex[:10] if rabbit else ""
    url = database_url if database_url and not is_sqlite(database_url) else f"sqlite:///{work / name}.db"
    interim_url = f"sqlite:///{work / name}-interim.db" if database_sink_available() else None
    spec = Spec(
        name=name,
        work=str(work),
        database_url=url,
        broker_url=broker_url or "embedded",
        tenures=tenures,
        queue_suffix=suffix,
        interim_database_url=interim_url,
        sync_process=True,
    )
    Path(spec.work, f"{name}.xlsx").unlink(missing_ok=True)
    creates, updates, _ = make_events(tenures)
    bodies = [
        (json.dumps(envelope).encode(), str(envelope["entityId"]), str(envelope["id"]))
        for envelope in creates + updates
    ]

    # The broker's ceiling first, on an empty database of its own (or its own queue).
    ceiling_spec = Spec(**{**asdict(spec), "name": f"{name}-broker", "probe": None})
    if is_sqlite(ceiling_spec.database_url):
        ceiling_spec.database_url = f"sqlite:///{work / ceiling_spec.name}.db"
    if rabbit:
        ceiling_spec.queue_suffix = uuid.uuid4().hex[:10]
    fresh_database(ceiling_spec.database_url)
    bodies_path = work / f"{ceiling_spec.name}.bodies.json"
    bodies_path.write_text(json.dumps([[body.decode(), group, mid] for body, group, mid in bodies]), encoding="utf-8")
    try:
        broker_ceiling = CeilingResult(**_child("ceiling", ceiling_spec, bodies_path))
    finally:
        bodies_path.unlink(missing_ok=True)
        if rabbit:
            _delete_rabbit_topology(broker_url or "", settings_for(ceiling_spec))

    # Then the service: a fresh database, the events published, a worker process to drain them.
    fresh_database(spec.database_url)
    if interim_url:
        Path(work / f"{name}-interim.db").unlink(missing_ok=True)
    settings = settings_for(spec)
    broker, engine = _broker(settings)
    started = time.perf_counter()
    publish(broker, creates)
    publish(broker, updates)
    publish_seconds = time.perf_counter() - started
    broker.close()
    engine.dispose()
    del creates, updates, bodies
    try:
        drained = DrainResult(**_child("drain", spec))
    finally:
        if rabbit:
            _delete_rabbit_topology(broker_url or "", settings)
    return ListenerRun(tenures, publish_seconds, drained, broker_ceiling)


def _database_name(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    return None if is_sqlite(url) else make_url(url).database


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment of an `accounts worker` on these settings; nothing else ACCOUNTS_* inherited."""
    import os

    env = {key: value for key, value in os.environ.items() if not key.startswith("ACCOUNTS_")}
    values = {
        "ENVIRONMENT": "test",
        "JWT_SECRET": BENCH_SECRET,
        "DATABASE_URL": settings.database_url,
        "BROKER_URL": settings.broker_url,
        "TENURE_EXCHANGE": settings.tenure_exchange,
        "TENURE_QUEUE": settings.tenure_queue,
        "ACCOUNTS_EXCHANGE": settings.accounts_exchange,
        "INTERIM_SINKS": ",".join(settings.interim_sinks),
        "INTERIM_DATABASE_URL": settings.interim_database_url or "",
        "SPREADSHEET_PATH": str(settings.spreadsheet_path),
        "LOG_LEVEL": LOG_LEVEL,
    }
    env.update({f"ACCOUNTS_{key}": value for key, value in values.items() if value})
    return env


PUBLISHERS = 4  # connections publishing at once when the queue is filled (each waits for its confirms)


def publish_parallel(settings: Settings, envelopes: list[dict[str, Any]], publishers: int = PUBLISHERS) -> None:
    """Publish from `publishers` connections at once, each with the service's own broker adapter.

    One connection waits for the broker's confirm of each message before the next (the
    adapter's guarantee), so one publisher is bound by round trips; several fill the queue
    faster, and the report gives their combined rate as the publisher's ceiling.
    """
    from concurrent.futures import ThreadPoolExecutor

    def one(part: list[dict[str, Any]]) -> None:
        broker, engine = _broker(settings)
        try:
            publish(broker, part)
        finally:
            broker.close()
            engine.dispose()

    size = -(-len(envelopes) // publishers)
    parts = [envelopes[start : start + size] for start in range(0, len(envelopes), size)]
    with ThreadPoolExecutor(publishers, thread_name_prefix="publisher") as pool:
        for future in [pool.submit(one, part) for part in parts]:
            future.result()


def run_worker(tenures: int, work: Path, topology: Topology, poll: float = 0.5) -> ListenerRun:
    """The production listener: every event published first, then ONE `accounts worker` started on the full
    queue and timed from its start (the command's start-up included) to the last event in every sink.

    Publishing is timed on its own: it is the publisher's rate (one confirmed publish at a time), the
    ceiling of how fast events can arrive. Nothing in the worker is wrapped: it is the real command,
    so its sinks' share is not split out as the embedded run's is.
    """
    import os
    import signal

    assert topology.server_url is not None and topology.broker_url is not None
    name = f"production-listener-{tenures}"
    database = "bench_listener"
    ensure_database(topology.server_url, database)
    url = topology.database_url(database)
    assert url is not None
    interim = work / f"{name}-interim.db"
    spec = Spec(
        name=name,
        work=str(work),
        database_url=url,
        broker_url=topology.broker_url,
        tenures=tenures,
        queue_suffix=uuid.uuid4().hex[:10],
        interim_database_url=f"sqlite:///{interim}" if database_sink_available() else None,
    )
    settings = settings_for(spec)
    fresh_database(url)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{interim}{suffix}").unlink(missing_ok=True)
    Path(settings.spreadsheet_path).unlink(missing_ok=True)
    creates, updates, _ = make_events(tenures)
    events = len(creates) + len(updates)
    try:
        broker, engine = _broker(settings)  # declares this run's exchange and queue, so nothing published is lost
        broker.close()
        engine.dispose()
        with watching([], database) as publish_cpu:
            started = time.perf_counter()
            publish_parallel(settings, creates)
            publish_parallel(settings, updates)  # every create is in the queue before its update
            publish_seconds = time.perf_counter() - started
        del creates, updates
        result = DrainResult(events=events, sinks=list(settings.interim_sinks), timed_sinks=False)
        engine = create_engine(url)
        deadline = time.monotonic() + 3600
        with open(work / f"{name}.log", "wb") as log:
            started = time.perf_counter()
            process = subprocess.Popen(
                [*accounts_command(), "worker"],
                env=worker_env(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=work,
            )
        memory = MemoryWatch(process.pid).start()
        cpu_watch = CpuWatch([process.pid], database).start()

        def applied() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"accounts worker exited with {process.returncode}; see {work / name}.log")
            return _processed(engine) + _dead(engine) >= events

        try:
            _wait(applied, deadline, "the worker", poll)
            result.seconds_listener = time.perf_counter() - started
            _wait(lambda: _pending(engine) == 0, deadline, "the interim sinks", poll / 5)
            result.seconds_end_to_end = time.perf_counter() - started
            use = cpu_watch.stop()
            result.cpu, result.cpu_seconds = asdict(use), use.seconds.get(SERVICE, 0.0)
            result.dead_letters = _dead(engine)
            result.rows = _count(engine, sa.select(sa.func.count()).select_from(t.interim_rows))
        finally:
            result.peak_rss = memory.stop()
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            engine.dispose()
        result.note = (
            f"the real `accounts worker` (pid {process.pid}, exit {process.returncode}) on {os.cpu_count()} cores"
        )
        ceiling = CeilingResult(messages=events, publish_seconds=publish_seconds)
        return ListenerRun(tenures, publish_seconds, result, ceiling, asdict(publish_cpu))
    finally:
        _delete_rabbit_topology(topology.broker_url, settings)


@dataclass
class WorkbookRun:
    rows: int
    seed_seconds: float
    drain: DrainResult  # no events: seconds_end_to_end is the worker's first whole write
    naive_seconds: float


def workbook(rows: int, work: Path, database_url: str | None, broker_url: str | None) -> WorkbookRun:
    """Item 5: a database holding `rows` tenure accounts; a worker writes the workbook, then one update
    at a time reaches it; then a full rebuild; then the naive peer on the same file."""
    name = f"workbook-{rows}"
    rabbit = bool(broker_url and broker_url.startswith("amqp"))
    url = database_url if database_url and not is_sqlite(database_url) else f"sqlite:///{work / name}.db"
    interim_url = f"sqlite:///{work / name}-interim.db" if database_sink_available() else None
    spec = Spec(
        name=name,
        work=str(work),
        database_url=url,
        broker_url=broker_url or "embedded",
        tenures=0,
        queue_suffix=uuid.uuid4().hex[:10] if rabbit else "",
        interim_database_url=interim_url,
        rebuild=True,
    )
    Path(spec.work, f"{name}.xlsx").unlink(missing_ok=True)
    if interim_url:
        Path(work / f"{name}-interim.db").unlink(missing_ok=True)
    creates, _, probe = make_events(rows)
    spec.probe = probe
    started = time.perf_counter()
    seed_tenure_accounts(url, creates)
    seed_seconds = time.perf_counter() - started
    del creates
    try:
        drained = DrainResult(**_child("drain", spec))
    finally:
        if rabbit:
            _delete_rabbit_topology(broker_url or "", settings_for(spec))
    naive = naive_workbook_update(Path(spec.work) / f"{name}.xlsx", work)
    return WorkbookRun(rows, seed_seconds, drained, naive)


def naive_workbook_update(path: Path, work: Path) -> float:
    """The peer for item 5: open the workbook with openpyxl, change one row, save it."""
    import openpyxl

    started = time.perf_counter()
    workbook = openpyxl.load_workbook(path)
    sheet = next(sheet for sheet in workbook.worksheets if sheet.max_row > 1)
    sheet.cell(row=2, column=6).value = "1 Naive Street"
    workbook.save(work / "naive-peer.xlsx")
    elapsed = time.perf_counter() - started
    workbook.close()
    (work / "naive-peer.xlsx").unlink(missing_ok=True)
    return elapsed


def _delete_rabbit_topology(url: str, settings: Settings) -> None:
    """Remove this run's queues and exchanges from RabbitMQ."""
    import pika

    with contextlib.suppress(Exception):
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        queue = settings.tenure_queue
        for name in (queue, f"{queue}.dead"):
            with contextlib.suppress(Exception):
                channel.queue_delete(name)
        for exchange in (settings.tenure_exchange, settings.accounts_exchange, f"{queue}.dead"):
            with contextlib.suppress(Exception):
                channel.exchange_delete(exchange)
        connection.close()


def main(argv: list[str]) -> int:
    mode, spec_path, result_path, *rest = argv
    raw = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    spec = Spec(**raw)
    if mode == "drain":
        outcome: Any = drain(spec)
    elif mode == "ceiling":
        loaded = json.loads(Path(rest[0]).read_text(encoding="utf-8"))
        outcome = ceiling(spec, [(body.encode(), group, mid) for body, group, mid in loaded])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    Path(result_path).write_text(json.dumps(asdict(outcome)), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
