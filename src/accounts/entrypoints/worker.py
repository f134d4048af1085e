"""The worker: the finance listener, the outbox relay and the interim sink flushers.

Each runs in its own thread with its own broker connection. A message is acked only
after its effect is committed, so a crash anywhere means redelivery, and redelivery
means nothing (the processed-events table). On SIGTERM each loop finishes the batch
in hand and stops: nothing is acked that was not applied.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from accounts.bootstrap import Application
from accounts.domain.errors import DomainError
from accounts.domain.events import MalformedEvent, parse_envelope
from accounts.service.accounts import AccountConflict, utc_now
from accounts.service.ports import InterimSink, MessageBroker, ReceivedMessage, TransientError
from accounts.service.tenure_events import RetryLater
from accounts.service.unit_of_work import ConcurrencyConflict

log = logging.getLogger(__name__)

# Errors that no retry can mend: the event goes straight to the dead-letter store.
PERMANENT = (MalformedEvent, DomainError, AccountConflict)


def backoff(attempts: int, base: float, ceiling: float) -> float:
    """Exponential backoff with full jitter, so retries from many workers spread out."""
    return random.uniform(base / 2, min(ceiling, base * 2 ** max(0, attempts - 1)))


@dataclass
class Listener:
    """Consumes tenure events: apply, or retry later, or dead-letter; then ack."""

    app: Application
    broker: MessageBroker
    processed: int = 0
    dead_lettered: int = 0

    def poll(self, wait_seconds: float) -> int:
        settings = self.app.settings
        messages = self.broker.receive(settings.worker_batch_size, wait_seconds)
        for message in messages:
            self.process(message)
        return len(messages)

    def process(self, message: ReceivedMessage) -> None:
        try:
            event = parse_envelope(message.body)
            outcome = self.app.tenure_events.handle(event)
            log.debug("event %s %s: %s", event.id, event.event_type, outcome.detail)
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
        self.processed += 1
        self.broker.ack(message)

    def _retry_or_dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        settings = self.app.settings
        if message.attempts >= settings.max_attempts:
            self._dead_letter(message, f"gave up after {message.attempts} attempts: {reason}")
            return
        delay = backoff(message.attempts, settings.retry_base_seconds, settings.retry_max_seconds)
        log.info("message %s will be retried in %.1fs: %s", message.message_id, delay, reason)
        self.broker.retry_later(message, delay)

    def _dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        event_id, event_type = _identify(message.body)
        try:
            with self.app.uow() as uow:
                uow.dead_letters.add(
                    "tenure-events", message.body, reason, message.attempts, utc_now(), event_id, event_type
                )
                uow.commit()
        except TransientError:
            # The database is down: leave the message to the broker, it will come back.
            log.warning("could not dead-letter message %s; it will be redelivered", message.message_id)
            self.broker.retry_later(message, self.app.settings.retry_base_seconds)
            return
        log.warning("dead-lettered message %s: %s", message.message_id, reason)
        self.dead_lettered += 1
        self.broker.ack(message)


def _identify(body: bytes) -> tuple[str | None, str | None]:
    """Best-effort id and type of an event, for the dead-letter listing."""
    try:
        raw = json.loads(body)
    except ValueError:
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
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        if self.sync:
            self.app.interim.enable_sinks()
        if self.consume:
            self._spawn("listener", self._listen)
        if self.relay:
            self._spawn("outbox-relay", self._relay)
        if self.sync:
            for sink in self.app.interim.sinks:
                self._spawn(f"interim-{sink.name}", functools.partial(self._flush, sink))

    def run_forever(self) -> None:
        self.start()
        try:
            while not self.stop.wait(0.5):
                pass
        finally:
            self.shutdown()

    def shutdown(self, timeout: float = 30.0) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
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
        listener = Listener(self.app, broker)
        poll = self.app.settings.worker_poll_seconds

        def step() -> float:
            listener.poll(poll)  # receiving already waits while the queue is empty
            return 0.0

        try:
            self._loop("listener", step)
        finally:
            broker.close()

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
            delivered = interim.flush(sink)
            busy = delivered >= interim.batch_size and not sink.rewrites_everything
            return 0.0 if busy else interval

        self._loop(f"interim sink {sink.name}", step)
