"""The worker: the finance listener, the outbox relay and the interim sink flushers.

Each runs in its own thread with its own broker connection. A message is acked only
after its effect is committed, so a crash anywhere means redelivery, and redelivery
means nothing (the processed-events table). On SIGTERM each loop finishes the batch
in hand and stops: nothing is acked that was not applied.

What the listener does with a message:

* applied, a duplicate, or of a type it does not handle: ack;
* malformed, or breaking a council rule no retry can mend: into the dead-letter store
  with the reason, then ack (never retried, never holding back the messages behind it);
* its tenure not seen yet, the Tenure API failing, a lost race: back to the broker to
  come again after a backoff with jitter; after `max_attempts` deliveries, dead-lettered;
* the database down: the message is held, not failed: the listener waits (backing off)
  until the database answers again and then applies it, so an outage costs no attempts
  and dead-letters nothing. Stopping while it waits leaves the message unacked for the
  broker to deliver again.

While a message is being handled the listener thread keeps the broker connection alive
(`keepalive`, when the adapter has one: RabbitMQ heartbeats, embedded leases), since a
pika BlockingConnection only answers heartbeats when its own thread calls into it.

`accounts worker` runs the outbox relay and the interim sinks in a process of their own
beside the listener (`ACCOUNTS_WORKER_SYNC_PROCESS`, on by default): they share nothing
with the listener but the database, and in one process they took a fifth or more of the
interpreter it needs (a workbook rewrite of 100,000 rows holds it for seconds). The two
stop together: the child stops when the worker is stopped or its parent is gone, and the
worker stops (so its supervisor restarts it) when the child dies.
"""

from __future__ import annotations

import concurrent.futures
import functools
import gc
import json
import logging
import multiprocessing
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa

from accounts.bootstrap import Application
from accounts.domain.errors import DomainError
from accounts.domain.events import EventEnvelope, MalformedEvent, parse_envelope
from accounts.service.accounts import AccountConflict, utc_now
from accounts.service.ports import InterimSink, MessageBroker, ReceivedMessage, TransientError
from accounts.service.tenure_events import Outcome, RetryLater
from accounts.service.unit_of_work import ConcurrencyConflict
from accounts.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that no retry can mend: the event goes straight to the dead-letter store.
# (UnicodeEncodeError: text no database can store, such as a lone surrogate escaped in the JSON.)
PERMANENT = (MalformedEvent, DomainError, AccountConflict, UnicodeEncodeError)
DEAD_LETTER_SOURCE = "tenure-events"
# How often a slow message's wait lets the broker connection do its housekeeping (heartbeats),
# unless the adapter says otherwise (`keepalive_interval`): well inside any heartbeat timeout.
KEEPALIVE_SECONDS = 1.0
# After rewriting a whole sink (the workbook), pause this many times as long as the rewrite took.
REWRITE_PAUSE_FACTOR = 4.0
# How often the relay-and-sinks process checks that the worker that started it is still there.
PARENT_CHECK_SECONDS = 0.5


class Flag(Protocol):
    """What a worker's loops need of their stop and drained signals: a threading.Event, or a `DrainedCounter`."""

    def set(self) -> None: ...
    def clear(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


# The listener allocates quickly (a batch of 500 events made some 100,000 short-lived objects): at
# Python's default threshold (700) the cyclic collector ran about 2,000 times for 20,000 events, about
# a tenth of the worker's CPU. Collected less often, and without rescanning what startup made:
GC_THRESHOLDS = (10_000, 20, 20)


def tune_garbage_collector() -> None:
    """Freeze what exists now (modules, settings, engines: never garbage) and collect young objects less often."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def backoff(attempts: int, base: float, ceiling: float) -> float:
    """Exponential backoff with jitter, so retries from many workers spread out."""
    return random.uniform(base / 2, max(base / 2, min(ceiling, base * 2 ** max(0, attempts - 1))))


class Abandoned(Exception):
    """The worker is stopping while a message waits for the database: leave it to the broker."""


@dataclass
class Listener:
    """Consumes tenure events: apply, or retry later, or dead-letter; then ack."""

    app: Application
    broker: MessageBroker
    stop: Flag = field(default_factory=threading.Event)
    processed: int = 0
    dead_lettered: int = 0
    retried: int = 0
    _executor: concurrent.futures.ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _last_keepalive: float = field(default=0.0, init=False, repr=False)

    def poll(self, wait_seconds: float) -> int:
        """Receive one batch and deal with every message in it (even once asked to stop)."""
        settings = self.app.settings
        messages = self.broker.receive(settings.worker_batch_size, wait_seconds)
        self._last_keepalive = time.monotonic()
        if len(messages) > 1:
            self.process_batch(messages)
        else:
            for message in messages:
                self.process(message)
        return len(messages)

    def process_batch(self, messages: list[ReceivedMessage]) -> None:
        """Apply a batch in one transaction (much cheaper per event), then ack it.

        Whatever the batch could not apply (malformed, must wait, a rule broken, a lost
        race) is undone alone and then goes through `process`, one by one, exactly as if
        it had come on its own; if the batch as a whole fails, every message does.
        """
        events: list[EventEnvelope] = []
        batched: list[ReceivedMessage] = []
        alone: list[ReceivedMessage] = []
        for message in messages:
            try:
                events.append(parse_envelope(message.body))
                batched.append(message)
            except MalformedEvent:
                alone.append(message)
        try:
            results = self._keeping_alive(functools.partial(self.app.tenure_events.handle_many, events))
        except Exception as error:
            log.info("a batch of %d events failed as a whole (%r): one by one instead", len(events), error)
            results = [error] * len(events)
        applied: list[ReceivedMessage] = []
        for message, result in zip(batched, results, strict=True):
            (alone if isinstance(result, Exception) else applied).append(message)
        if applied:
            # After the commit, never before: a failed ack means redelivery, which changes nothing.
            ack_many: Callable[[list[ReceivedMessage]], None] | None = getattr(self.broker, "ack_many", None)
            if ack_many is not None:
                ack_many(applied)
            else:
                for message in applied:
                    self.broker.ack(message)
            self.processed += len(applied)
        for message in sorted(alone, key=messages.index):
            self.process(message)

    def process(self, message: ReceivedMessage) -> None:
        try:
            event = parse_envelope(message.body)
            outcome = self._keeping_alive(functools.partial(self._handle, event))
            log.debug("event %s %s: %s", event.id, event.event_type, outcome.detail)
        except Abandoned:
            log.info("stopping: message %s is left to the broker to deliver again", message.message_id)
            return
        except PERMANENT as error:
            self._dead_letter(message, f"{type(error).__name__}: {error}")
            return
        except (RetryLater, TransientError, ConcurrencyConflict) as error:
            self._retry_or_dead_letter(message, f"{type(error).__name__}: {error}")
            return
        except Exception as error:  # a bug or an unforeseen failure: retried, then kept with its reason
            log.exception("unexpected failure on message %s", message.message_id)
            self._retry_or_dead_letter(message, f"{type(error).__name__}: {error}")
            return
        # A failed ack leaves the message to be delivered again, which changes nothing.
        self.broker.ack(message)
        self.processed += 1

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # Handling --------------------------------------------------------------------

    def _handle(self, event: EventEnvelope) -> Outcome:
        """Apply the event; while the database is down, wait for it rather than fail the event."""
        handler = self.app.tenure_events
        retried_at_once = False
        while True:
            try:
                return handler.handle(event)
            except TransientError:
                if not self._database_answers():
                    self._wait_for_database()
                    continue
                if retried_at_once:
                    raise
                # The database answers: a connection dropped under us is mended by a fresh one.
                retried_at_once = True

    def _database_answers(self) -> bool:
        try:
            with self.app.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except Exception:
            return False
        return True

    def _wait_for_database(self) -> None:
        settings = self.app.settings
        log.warning("the database is not answering: holding the event until it does")
        waits = 0
        while True:
            waits += 1
            if self.stop.wait(backoff(waits, settings.retry_base_seconds, settings.retry_max_seconds)):
                raise Abandoned()
            if self._database_answers():
                log.info("the database answers again after %d check(s)", waits)
                return

    def _keeping_alive(self, work: Callable[[], T]) -> T:
        """Run work; if the broker needs it, keep its connection (or leases) alive meanwhile."""
        keepalive: Callable[[], None] | None = getattr(self.broker, "keepalive", None)
        if keepalive is None:
            return work()
        interval = float(getattr(self.broker, "keepalive_interval", KEEPALIVE_SECONDS))
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="listener-handler")
        future = self._executor.submit(work)
        while True:
            remaining = self._last_keepalive + interval - time.monotonic()
            done, _ = concurrent.futures.wait([future], timeout=max(0.0, remaining))
            if done:
                return future.result()
            try:
                keepalive()
            except Exception as error:  # the ack will tell; the message is redelivered at worst
                log.warning("keeping the broker connection alive failed: %r", error)
            self._last_keepalive = time.monotonic()

    # Retries and dead letters ----------------------------------------------------------

    def _retry_or_dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        settings = self.app.settings
        if message.attempts >= settings.max_attempts:
            self._dead_letter(message, f"gave up after {message.attempts} attempts: {reason}")
            return
        delay = backoff(message.attempts, settings.retry_base_seconds, settings.retry_max_seconds)
        log.info("message %s will be retried in %.2fs: %s", message.message_id, delay, reason)
        self.broker.retry_later(message, delay)
        self.retried += 1

    def _dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        event_id, event_type = _identify(message.body)
        try:
            with self.app.uow() as uow:
                uow.dead_letters.add(
                    DEAD_LETTER_SOURCE, message.body, reason, message.attempts, utc_now(), event_id, event_type
                )
                uow.commit()
        except Exception as error:
            # Not stored, so not acked: the broker keeps it and delivers it again.
            settings = self.app.settings
            delay = backoff(message.attempts, settings.retry_base_seconds, settings.retry_max_seconds)
            log.warning(
                "could not dead-letter message %s (%r); it will be delivered again in %.2fs",
                message.message_id,
                error,
                delay,
            )
            self.broker.retry_later(message, delay)
            return
        log.warning("dead-lettered message %s: %s", message.message_id, reason)
        self.broker.ack(message)
        self.dead_lettered += 1


def _identify(body: bytes) -> tuple[str | None, str | None]:
    """Best-effort id and type of an event, for the dead-letter listing."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, None
    if not isinstance(raw, dict):
        return None, None
    event_id, event_type = raw.get("id"), raw.get("eventType")
    return (str(event_id) if event_id else None, str(event_type) if event_type else None)


@dataclass
class Worker:
    app: Application
    consume: bool = True
    relay: bool = True
    sync: bool = True
    # The relay and the sinks in a child process (when this worker also listens).
    sync_process: bool = False
    # What that child runs: `run_sync_process`, or the benchmarks' instrumented copy of it.
    sync_process_target: Callable[..., None] | None = None
    # In that child: the worker that started it has registered the sinks already.
    sinks_registered: bool = False
    stop: Flag = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    # Set when the listener finds the queue empty after a burst of events: a flusher resting
    # after a rewrite (so as to leave the interpreter to the listener) need rest no longer.
    drained: Flag = field(default_factory=threading.Event)
    _process: BaseProcess | None = field(default=None, init=False, repr=False)

    def start(self) -> None:
        tune_garbage_collector()
        if self.sync and not self.sinks_registered:
            self.app.interim.enable_sinks()  # before the listener starts: no change it makes misses a sink
        if self.sync_process and self.consume and (self.relay or self.sync):
            self._start_sync_process()
            self._spawn("listener", self._listen)
            return
        if self.consume:
            self._spawn("listener", self._listen)
        if self.relay:
            self._spawn("outbox-relay", self._relay)
        if self.sync:
            for sink in self.app.interim.sinks:
                self._spawn(f"interim-{sink.name}", functools.partial(self._flush, sink))

    def run_forever(self) -> int:
        """Run until stopped (SIGTERM) or until a thread dies; 0, or 1 when a thread died."""
        self.start()
        try:
            while not self.stop.wait(0.5):
                pass
        finally:
            self.shutdown()
        return 1 if self.failed else 0

    def shutdown(self, timeout: float = 30.0) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("%s did not finish within %.0fs", thread.name, timeout)

    def _start_sync_process(self) -> None:
        """The relay and the sinks in a child process, watched by a thread of this one."""
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited threads or connections
        bursts = context.RawValue("q", 0)
        self.drained = DrainedCounter(bursts)
        process = context.Process(
            target=self.sync_process_target or run_sync_process,
            args=(self.app.settings, self.relay, self.sync, bursts, os.getpid()),
            name="accounts-relay-and-sinks",
            daemon=True,
        )
        process.start()
        self._process = process
        log.info("outbox relay and interim sinks started in process %s", process.pid)
        self._spawn("sync-process-watch", functools.partial(self._watch_sync_process, process))

    def _watch_sync_process(self, process: BaseProcess) -> None:
        """Stop the worker when the child dies; stop the child (SIGTERM: its work in hand first) when the worker stops."""
        try:
            while not self.stop.wait(0.2):
                if not process.is_alive():
                    log.error(
                        "the relay-and-sinks process %s exited with %s; stopping the worker",
                        process.pid,
                        process.exitcode,
                    )
                    self.failed.append("relay-and-sinks process")
                    self.stop.set()
        finally:
            if process.is_alive():
                process.terminate()
                process.join(25.0)
            if process.is_alive():
                log.warning("the relay-and-sinks process %s did not stop in time: killing it", process.pid)
                process.kill()
                process.join(5.0)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        def run() -> None:
            try:
                target()
            except BaseException:
                # Only a failure outside the retrying loop gets here (e.g. a broker that cannot be built):
                # stop the whole worker, so its supervisor restarts it, rather than run on without it.
                log.exception("%s died; stopping the worker", name)
                self.failed.append(name)
                self.stop.set()

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _loop(self, name: str, step: Callable[[], float]) -> None:
        """Run `step` until stopped; it returns how long to pause. Failures back off and retry."""
        failures = 0
        settings = self.app.settings
        while not self.stop.is_set():
            try:
                pause = step()
                failures = 0
            except Exception as error:
                failures += 1
                pause = backoff(failures, settings.retry_base_seconds, settings.retry_max_seconds)
                log.warning("%s failed (%s); retrying in %.1fs", name, error, pause)
            if pause:
                self.stop.wait(pause)

    def _listen(self) -> None:
        broker = self.app.broker()
        listener = Listener(self.app, broker, stop=self.stop)
        poll = self.app.settings.worker_poll_seconds

        busy = False

        def step() -> float:
            nonlocal busy
            received = listener.poll(poll)  # receiving already waits while the queue is empty
            if received:
                busy = True
            elif busy:
                busy = False
                self.drained.set()
            return 0.0

        try:
            self._loop("listener", step)
        finally:
            listener.close()
            broker.close()
            log.info("listener stopped: %d applied, %d dead-lettered", listener.processed, listener.dead_lettered)

    def _relay(self) -> None:
        broker = self.app.broker()
        relay = self.app.outbox_relay(broker)
        poll = self.app.settings.worker_poll_seconds
        try:
            self._loop("outbox relay", lambda: 0.0 if relay.relay_once() else poll)
        finally:
            broker.close()

    def _flush(self, sink: InterimSink) -> None:
        """Deliver what the sink is owed, then pause: a burst of changes costs one rewrite a pause."""
        interval = self.app.settings.interim_flush_seconds
        interim = self.app.interim

        def step() -> float:
            started = time.monotonic()
            delivered = interim.flush(sink)
            if sink.rewrites_everything and delivered:
                # A rewrite costs the same for one changed row as for thousands: while changes
                # stream in, rewrite at most a fifth of the time, so the listener keeps the rest.
                # Once a burst of events is over there is nothing to leave it: the last rows go now.
                return self._rest(max(interval, REWRITE_PAUSE_FACTOR * (time.monotonic() - started)))
            busy = delivered >= interim.batch_size and not sink.rewrites_everything
            return 0.0 if busy else interval

        self._loop(f"interim sink {sink.name}", step)

    def _rest(self, seconds: float) -> float:
        """Wait up to `seconds`, or until stopped or the listener has drained the queue after a burst."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if self.drained.wait(min(remaining, 0.25)):
                self.drained.clear()
                break
        return 0.0


class DrainedCounter:
    """The listener's "drained" signal for a flusher in another process: a counter in shared memory, polled.

    Not a multiprocessing.Event: setting one blocks for ever once a process waiting on it was killed.
    Written by the listener's process only; the other reads it.
    """

    def __init__(self, counter: Any) -> None:
        self._counter = counter
        self._seen = int(counter.value)

    def set(self) -> None:
        self._counter.value += 1

    def clear(self) -> None:
        self._seen = int(self._counter.value)

    def is_set(self) -> bool:
        return int(self._counter.value) != self._seen

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True


def run_sync_process(settings: Settings, relay: bool, sync: bool, bursts: Any, parent: int) -> None:
    """The child process's entry point: its own application, then `serve_sync` until stopped."""
    from accounts.bootstrap import bootstrap
    from accounts.entrypoints.cli import configure_logging

    configure_logging(settings)
    application = bootstrap(settings)
    try:
        code = serve_sync(application, relay, sync, bursts, parent)
    finally:
        application.close()
    raise SystemExit(code)


def serve_sync(application: Application, relay: bool, sync: bool, bursts: Any, parent: int) -> int:
    """Run the relay and the sink flushers until SIGTERM (from the worker) or the worker is gone; 1 if a thread died.

    Ctrl+C reaches the whole process group: it is the worker's to act on, and the worker
    then stops this process with SIGTERM, which lets it finish the work in hand.
    """
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    worker = Worker(
        application,
        consume=False,
        relay=relay,
        sync=sync,
        sinks_registered=True,
        stop=stop,
        drained=DrainedCounter(bursts),
    )
    worker.start()
    try:
        while not stop.wait(PARENT_CHECK_SECONDS):
            if os.getppid() != parent:
                log.warning("the worker that started this process (%d) is gone: stopping", parent)
                break
    finally:
        worker.shutdown()
    return 1 if worker.failed else 0
