"""The worker: supervises the finance listener, the outbox relay and the interim sink flushers.

Each runs in its own thread with its own broker connection; what becomes of a message is
the listener's to decide (`service/listener.py`), what a sink is owed is `InterimSync`'s.
This module only starts them, restarts a step that failed (backing off), stops them on
SIGTERM (each loop finishes the batch in hand: nothing is acked that was not applied), and
stops the whole worker when one of them dies, so that its supervisor restarts it.

`accounts worker` runs the outbox relay and the interim sinks in a process of their own
beside the listener (`ACCOUNTS_WORKER_SYNC_PROCESS`, on by default): they share nothing
with the listener but the database, and in one process they took a fifth or more of the
interpreter it needs (a workbook rewrite of 100,000 rows holds it for seconds). The two
stop together: the child stops when the worker is stopped or its parent is gone, and the
worker stops (so its supervisor restarts it) when the child dies.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

from accounts.bootstrap import Application
from accounts.runtime import configure_logging, tune_garbage_collector
from accounts.service.listener import Flag, backoff
from accounts.service.ports import InterimSink
from accounts.settings import Settings

log = logging.getLogger(__name__)

# After rewriting a whole sink (the workbook), pause this many times as long as the rewrite took.
REWRITE_PAUSE_FACTOR = 4.0
# How often the relay-and-sinks process checks that the worker that started it is still there.
PARENT_CHECK_SECONDS = 0.5


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
        listener = self.app.listener(broker, stop=self.stop)
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

    configure_logging(settings)
    application = bootstrap(settings)
    log.debug("outbox relay and interim sinks running in process %d", os.getpid())
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
