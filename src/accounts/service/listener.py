"""The finance listener: what becomes of each tenure event the broker delivers.

A message is acked only after its effect is committed, so a crash anywhere means
redelivery, and redelivery means nothing (the processed-events table).

* applied, a duplicate, or of a type the handler does not handle: ack;
* malformed, or breaking a council rule no retry can mend: into the dead-letter store
  with the reason, then ack (never retried, never holding back the messages behind it);
* its tenure not seen yet, the Tenure API failing, a lost race, or an unforeseen failure:
  back to the broker to come again after a backoff with jitter; after `max_attempts`
  deliveries, dead-lettered;
* the database down: the message is held, not failed: the listener waits (backing off)
  until the database answers again and then applies it, so an outage costs no attempts
  and dead-letters nothing. Stopping while it waits leaves the message unacked for the
  broker to deliver again.

`dispose` is the decision for one message, pure; `FinanceListener` carries it out on the
`MessageBroker` port. While a message is handled the listener keeps the broker alive
(`keepalive`, every `keepalive_interval`: RabbitMQ heartbeats, embedded leases), since a
pika BlockingConnection only answers heartbeats when its own thread calls into it.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import functools
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from accounts.domain.errors import DomainError
from accounts.domain.events import EventEnvelope, MalformedEvent, parse_envelope
from accounts.service.accounts import AccountConflict, utc_now
from accounts.service.log_context import about
from accounts.service.ports import MessageBroker, ReceivedMessage, TransientError
from accounts.service.tenure_events import Outcome, RetryLater
from accounts.service.unit_of_work import ConcurrencyConflict, UnitOfWork

log = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that no retry can mend: the event goes straight to the dead-letter store.
# (UnicodeEncodeError: text no database can store, such as a lone surrogate escaped in the JSON.)
PERMANENT = (MalformedEvent, DomainError, AccountConflict, UnicodeEncodeError)
# Failures foreseen as passing (logged in a line); any other is a bug or a surprise, logged with its trace.
# Both are retried until the attempts run out.
PASSING = (RetryLater, TransientError, ConcurrencyConflict)
DEAD_LETTER_SOURCE = "tenure-events"


class Flag(Protocol):
    """A stop (or drained) signal shared between threads: a threading.Event, or the worker's counter across processes."""

    def set(self) -> None: ...
    def clear(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class EventHandler(Protocol):
    """The use case that applies tenure events (`TenureEventHandler`)."""

    def handle(self, event: EventEnvelope) -> Outcome: ...

    def handle_many(self, events: Sequence[EventEnvelope]) -> list[Outcome | Exception]:
        """One outcome or error per event, in order; the errors undone alone, the rest committed together."""
        ...


def backoff(attempts: int, base: float, ceiling: float) -> float:
    """Exponential backoff with jitter, so retries from many workers spread out."""
    return random.uniform(base / 2, max(base / 2, min(ceiling, base * 2 ** max(0, attempts - 1))))


@dataclass(frozen=True)
class RetryPolicy:
    """How often a message is tried (`max_attempts` deliveries) and how long it waits between tries."""

    max_attempts: int = 5
    base_seconds: float = 1.0
    max_seconds: float = 60.0

    def delay(self, attempts: int) -> float:
        return backoff(attempts, self.base_seconds, self.max_seconds)


# What becomes of a message -----------------------------------------------------------------


@dataclass(frozen=True)
class Ack:
    """Done: applied, a duplicate, or nothing to do."""


@dataclass(frozen=True)
class Retry:
    """Back to the broker, to be delivered again after `delay` seconds."""

    delay: float
    reason: str


@dataclass(frozen=True)
class DeadLetter:
    """Into the dead-letter store with the reason, then acked: never tried again unless replayed."""

    reason: str


Disposition = Ack | Retry | DeadLetter


def dispose(failure: BaseException | None, attempts: int, policy: RetryPolicy) -> Disposition:
    """What to do with a message after its `attempts`-th delivery was handled and ended in `failure` (or None)."""
    if failure is None:
        return Ack()
    reason = f"{type(failure).__name__}: {failure}"
    if isinstance(failure, PERMANENT):
        return DeadLetter(reason)
    if attempts >= policy.max_attempts:
        return DeadLetter(f"gave up after {attempts} attempts: {reason}")
    return Retry(policy.delay(attempts), reason)


class Abandoned(Exception):
    """The listener is stopping while a message waits for the database: leave it to the broker."""


# Carrying it out ---------------------------------------------------------------------------


@dataclass
class FinanceListener:
    """Consumes tenure events from the broker: apply, or retry later, or dead-letter; then ack."""

    broker: MessageBroker
    handler: EventHandler
    uow_factory: Callable[..., UnitOfWork]  # for the dead-letter store
    # Whether the database takes a query now: the composition root asks it (`Application.database_answers`).
    database_answers: Callable[[], bool]
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    batch_size: int = 1000
    stop: Flag = field(default_factory=threading.Event)
    received: int = 0  # messages taken from the broker (a redelivery counts again)
    processed: int = 0
    dead_lettered: int = 0
    retried: int = 0
    _executor: concurrent.futures.ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _last_keepalive: float = field(default=0.0, init=False, repr=False)

    def poll(self, wait_seconds: float) -> int:
        """Receive one batch and deal with every message in it (even once asked to stop)."""
        messages = self.broker.receive(self.batch_size, wait_seconds)
        self.received += len(messages)
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
            results = self._keeping_alive(functools.partial(self.handler.handle_many, events))
        except Exception as error:
            log.info("a batch of %d events failed as a whole (%r): one by one instead", len(events), error)
            results = [error] * len(events)
        applied: list[ReceivedMessage] = []
        for message, result in zip(batched, results, strict=True):
            (alone if isinstance(result, Exception) else applied).append(message)
        if log.isEnabledFor(logging.DEBUG):
            for event, result in zip(events, results, strict=True):
                if not isinstance(result, Exception):
                    log.debug(
                        "event %s %s: %s",
                        event.id,
                        event.event_type,
                        result.detail,
                        extra={
                            "event_id": event.id,
                            "correlation_id": event.correlation_id,
                            "account_id": result.account_id,
                        },
                    )
        if applied:
            # After the commit, never before: a failed ack means redelivery, which changes nothing.
            self.broker.ack_many(applied)
            self.processed += len(applied)
        for message in sorted(alone, key=messages.index):
            self.process(message)

    def process(self, message: ReceivedMessage) -> None:
        """Handle one message and carry out what `dispose` decides for it; its log lines name its event."""
        try:
            event = parse_envelope(message.body)
        except Exception as error:
            with about(event_id=_identify(message.body)[0]):
                if not isinstance(error, PERMANENT):
                    log.exception("unexpected failure reading message %s", message.message_id)
                self._carry_out(message, error)
            return
        with about(event_id=event.id, correlation_id=event.correlation_id):
            try:
                outcome = self._keeping_alive(functools.partial(self._handle, event))
                log.debug(
                    "event %s %s: %s",
                    event.id,
                    event.event_type,
                    outcome.detail,
                    extra={"account_id": outcome.account_id},
                )
            except Abandoned:
                log.info("stopping: message %s is left to the broker to deliver again", message.message_id)
                return
            except Exception as error:
                if not isinstance(error, (*PERMANENT, *PASSING)):
                    log.exception("unexpected failure on message %s", message.message_id)
                self._carry_out(message, error)
                return
            self._carry_out(message, None)

    def _carry_out(self, message: ReceivedMessage, failure: Exception | None) -> None:
        """Ack, retry later or dead-letter the message, as `dispose` decides."""
        disposition = dispose(failure, message.attempts, self.policy)
        if isinstance(disposition, Ack):
            # A failed ack leaves the message to be delivered again, which changes nothing.
            self.broker.ack(message)
            self.processed += 1
        elif isinstance(disposition, Retry):
            log.info(
                "message %s will be retried in %.2fs: %s", message.message_id, disposition.delay, disposition.reason
            )
            self.broker.retry_later(message, disposition.delay)
            self.retried += 1
        else:
            self._dead_letter(message, disposition.reason)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # Handling --------------------------------------------------------------------

    def _handle(self, event: EventEnvelope) -> Outcome:
        """Apply the event; while the database is down, wait for it rather than fail the event."""
        retried_at_once = False
        while True:
            try:
                return self.handler.handle(event)
            except TransientError:
                if not self.database_answers():
                    self._wait_for_database()
                    continue
                if retried_at_once:
                    raise
                # The database answers: a connection dropped under us is mended by a fresh one.
                retried_at_once = True

    def _wait_for_database(self) -> None:
        log.warning("the database is not answering: holding the event until it does")
        waits = 0
        while True:
            waits += 1
            if self.stop.wait(self.policy.delay(waits)):
                raise Abandoned()
            if self.database_answers():
                log.info("the database answers again after %d check(s)", waits)
                return

    def _keeping_alive(self, work: Callable[[], T]) -> T:
        """Run work; if the broker needs it, keep its connection (or leases) alive meanwhile."""
        interval = self.broker.keepalive_interval
        if interval is None:
            return work()
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="listener-handler")
        future = self._executor.submit(contextvars.copy_context().run, work)  # its log lines name the same event
        while True:
            remaining = self._last_keepalive + interval - time.monotonic()
            done, _ = concurrent.futures.wait([future], timeout=max(0.0, remaining))
            if done:
                return future.result()
            try:
                self.broker.keepalive()
            except Exception as error:  # the ack will tell; the message is redelivered at worst
                log.warning("keeping the broker connection alive failed: %r", error)
            self._last_keepalive = time.monotonic()

    # Dead letters ----------------------------------------------------------------------

    def _dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        event_id, event_type = _identify(message.body)
        try:
            with self.uow_factory() as uow:
                uow.dead_letters.add(
                    DEAD_LETTER_SOURCE, message.body, reason, message.attempts, utc_now(), event_id, event_type
                )
                uow.commit()
        except Exception as error:
            # Not stored, so not acked: the broker keeps it and delivers it again.
            delay = self.policy.delay(message.attempts)
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
