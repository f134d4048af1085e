"""What becomes of each tenure event: the listener's decisions, on fakes (no database, no broker)."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from accounts.domain.errors import ValidationProblem
from accounts.domain.events import EventEnvelope, MalformedEvent
from accounts.service.accounts import AccountConflict
from accounts.service.listener import (
    DEAD_LETTER_SOURCE,
    Ack,
    DeadLetter,
    FinanceListener,
    Retry,
    RetryPolicy,
    dispose,
)
from accounts.service.ports import MessageBroker, ReceivedMessage, TransientError
from accounts.service.tenure_events import Outcome, RetryLater
from accounts.service.unit_of_work import ConcurrencyConflict
from tests.fixtures.tenures import story

POLICY = RetryPolicy(max_attempts=3, base_seconds=2.0, max_seconds=10.0)


# The decision -------------------------------------------------------------------------------


def test_a_handled_event_is_acked() -> None:
    assert dispose(None, 1, POLICY) == Ack()


@pytest.mark.parametrize(
    "failure",
    [
        MalformedEvent("id is missing"),
        ValidationProblem("tenure.startOfTenureDate", "is not a date"),
        AccountConflict("paymentReference", "is taken"),
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
    ],
    ids=["malformed", "a council rule", "a uniqueness rule", "unstorable text"],
)
def test_what_no_retry_can_mend_is_dead_lettered_at_once_with_its_reason(failure: Exception) -> None:
    decision = dispose(failure, 1, POLICY)

    assert decision == DeadLetter(f"{type(failure).__name__}: {failure}")


@pytest.mark.parametrize(
    "failure",
    [
        RetryLater("tenure 1 has not been seen yet"),
        TransientError("the Tenure API answered 503"),
        ConcurrencyConflict("account changed meanwhile"),
        RuntimeError("a bug"),
    ],
    ids=["tenure unseen", "transient", "lost race", "unforeseen"],
)
def test_what_may_pass_is_retried_after_a_backoff_until_the_attempts_run_out(failure: Exception) -> None:
    first = dispose(failure, 1, POLICY)
    second = dispose(failure, 2, POLICY)
    last = dispose(failure, 3, POLICY)

    assert isinstance(first, Retry) and 1.0 <= first.delay <= 2.0, "base/2 to base on the first delivery"
    assert isinstance(second, Retry) and 1.0 <= second.delay <= 4.0
    assert first.reason == f"{type(failure).__name__}: {failure}"
    assert last == DeadLetter(f"gave up after 3 attempts: {type(failure).__name__}: {failure}")


def test_the_backoff_grows_to_its_ceiling_and_is_spread_by_jitter() -> None:
    random.seed(5)
    delays = [POLICY.delay(attempts) for attempts in (1, 2, 3, 4, 10, 50) for _ in range(50)]

    assert all(1.0 <= delay <= 10.0 for delay in delays)
    assert max(delays) > 8.0, "later attempts wait up to the ceiling"
    assert len(set(delays)) == len(delays), "no two workers retry in step"


# Carrying it out ----------------------------------------------------------------------------


class FakeBroker(MessageBroker):
    """Records what the listener did with each message; ack_many is the port's default (one ack each)."""

    def __init__(self, *messages: ReceivedMessage, keepalive_interval: float | None = None) -> None:
        self.queued = list(messages)
        self.acked: list[str] = []
        self.retried: list[tuple[str, float]] = []
        self.keepalive_interval = keepalive_interval
        self.kept_alive = threading.Event()
        self.keepalives = 0

    def receive(self, max_messages: int, wait_seconds: float) -> list[ReceivedMessage]:
        taken, self.queued = self.queued[:max_messages], self.queued[max_messages:]
        return taken

    def ack(self, message: ReceivedMessage) -> None:
        self.acked.append(message.message_id)

    def retry_later(self, message: ReceivedMessage, delay_seconds: float) -> None:
        self.retried.append((message.message_id, delay_seconds))

    def keepalive(self) -> None:
        self.keepalives += 1
        if self.keepalives >= 3:
            self.kept_alive.set()


class FakeHandler:
    """Applies events as told: `fails[event id]` is raised (once, or every time when `always`)."""

    def __init__(self, fails: dict[str, Exception] | None = None, *, always: bool = True) -> None:
        self.fails = dict(fails or {})
        self.always = always
        self.applied: list[str] = []
        self.batches = 0

    def handle(self, event: EventEnvelope) -> Outcome:
        failure = self.fails.get(str(event.id))
        if failure is not None:
            if not self.always:
                del self.fails[str(event.id)]
            raise failure
        self.applied.append(str(event.id))
        return Outcome(True, "applied")

    def handle_many(self, events: Sequence[EventEnvelope]) -> list[Outcome | Exception]:
        self.batches += 1
        results: list[Outcome | Exception] = []
        for event in events:
            try:
                results.append(self.handle(event))
            except Exception as error:
                results.append(error)
        return results


class FakeDeadLetters:
    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.stored: list[dict[str, Any]] = []

    def __call__(self, read_only: bool = False) -> FakeDeadLetters:
        return self  # the unit-of-work factory, and the unit of work

    def __enter__(self) -> FakeDeadLetters:
        if self.down:
            raise TransientError("database unavailable")
        return self

    def __exit__(self, *_exc: object) -> None:
        pass

    @property
    def dead_letters(self) -> FakeDeadLetters:
        return self

    def add(
        self, source: str, body: bytes, reason: str, attempts: int, _at: Any, event_id: Any, event_type: Any
    ) -> None:
        self.stored.append({"source": source, "reason": reason, "attempts": attempts, "event_id": event_id})

    def commit(self) -> None:
        pass


def delivery(event: dict[str, Any] | bytes, attempts: int = 1) -> ReceivedMessage:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    name = event["id"] if isinstance(event, dict) else "raw"
    return ReceivedMessage(body=body, attempts=attempts, receipt=object(), message_id=str(name))


def events(count: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [story(rng).events[0] for _ in range(count)]


def make_listener(
    broker: FakeBroker,
    handler: FakeHandler,
    store: FakeDeadLetters | None = None,
    answers: Any = lambda: True,
) -> FinanceListener:
    return FinanceListener(broker, handler, store or FakeDeadLetters(), answers, POLICY, batch_size=10)


def test_an_applied_event_is_acked_once_handled() -> None:
    [event] = events(1)
    broker, handler = FakeBroker(delivery(event)), FakeHandler()
    listener = make_listener(broker, handler)

    assert listener.poll(0.0) == 1

    assert handler.applied == [event["id"]] and broker.acked == [event["id"]]
    assert listener.processed == 1 and broker.retried == []


def test_a_malformed_event_is_stored_with_its_reason_and_acked() -> None:
    broker, store = FakeBroker(delivery(b'{"id": "e-1"}')), FakeDeadLetters()
    listener = make_listener(broker, FakeHandler(), store)

    listener.poll(0.0)

    [letter] = store.stored
    assert letter["source"] == DEAD_LETTER_SOURCE and letter["event_id"] == "e-1"
    assert letter["reason"].startswith("MalformedEvent: ")
    assert broker.acked == ["raw"] and listener.dead_lettered == 1


def test_a_dead_letter_that_cannot_be_stored_is_not_acked_but_delivered_again() -> None:
    broker = FakeBroker(delivery(b"not json"))
    listener = make_listener(broker, FakeHandler(), FakeDeadLetters(down=True))

    listener.poll(0.0)

    assert broker.acked == [] and [name for name, _ in broker.retried] == ["raw"]
    assert listener.dead_lettered == 0


def test_an_event_that_must_wait_is_retried_then_given_up_on() -> None:
    [event] = events(1)
    handler = FakeHandler({event["id"]: RetryLater("its tenure has not been seen yet")})
    early, last = FakeBroker(delivery(event, attempts=1)), FakeBroker(delivery(event, attempts=3))
    store = FakeDeadLetters()

    make_listener(early, handler).poll(0.0)
    make_listener(last, handler, store).poll(0.0)

    assert [name for name, _ in early.retried] == [event["id"]] and early.acked == []
    assert store.stored[0]["reason"] == "gave up after 3 attempts: RetryLater: its tenure has not been seen yet"
    assert last.acked == [event["id"]]


def test_a_batch_is_acked_together_and_what_it_could_not_apply_goes_alone() -> None:
    batch = events(4)
    waiting = batch[2]["id"]
    handler = FakeHandler({waiting: RetryLater("not seen yet")})
    broker = FakeBroker(*(delivery(event) for event in batch), delivery(b"[]"))
    store = FakeDeadLetters()
    listener = make_listener(broker, handler, store)

    assert listener.poll(0.0) == 5

    assert handler.batches == 1
    assert broker.acked == [batch[0]["id"], batch[1]["id"], batch[3]["id"], "raw"], "applied first, then the rest"
    assert [name for name, _ in broker.retried] == [waiting]
    assert [letter["reason"][:14] for letter in store.stored] == ["MalformedEvent"]


def test_a_batch_failing_as_a_whole_falls_back_to_one_by_one() -> None:
    batch = events(3)

    class Broken(FakeHandler):
        def handle_many(self, events: Sequence[EventEnvelope]) -> list[Outcome | Exception]:
            raise TransientError("the batch's connection dropped")

    broker, handler = FakeBroker(*(delivery(event) for event in batch)), Broken()
    make_listener(broker, handler).poll(0.0)

    assert handler.applied == [event["id"] for event in batch] == broker.acked


def test_a_database_outage_is_waited_out_without_spending_an_attempt() -> None:
    [event] = events(1)
    handler = FakeHandler({event["id"]: TransientError("server closed the connection")}, always=False)
    answers = iter([False, False, True])
    broker = FakeBroker(delivery(event))
    listener = make_listener(broker, handler, answers=lambda: next(answers))
    listener.policy = RetryPolicy(max_attempts=3, base_seconds=0.01, max_seconds=0.02)

    listener.poll(0.0)

    assert broker.retried == [], "an outage is not the event's fault"
    assert broker.acked == [event["id"]] and handler.applied == [event["id"]]


def test_a_dropped_connection_is_tried_again_at_once_when_the_database_answers() -> None:
    [event] = events(1)
    handler = FakeHandler({event["id"]: TransientError("terminating connection")}, always=False)
    broker = FakeBroker(delivery(event))

    make_listener(broker, handler).poll(0.0)

    assert broker.acked == [event["id"]] and broker.retried == []


def test_stopping_while_the_database_is_down_leaves_the_message_to_the_broker() -> None:
    [event] = events(1)
    handler = FakeHandler({event["id"]: TransientError("database unavailable")})
    broker = FakeBroker(delivery(event))
    listener = make_listener(broker, handler, answers=lambda: False)
    listener.stop.set()

    listener.poll(0.0)

    assert broker.acked == [] and broker.retried == [], "neither applied nor failed: delivered again later"


def test_the_broker_is_kept_alive_while_a_slow_event_is_handled() -> None:
    [event] = events(1)
    broker = FakeBroker(delivery(event), keepalive_interval=0.001)

    class Slow(FakeHandler):
        def handle(self, event: EventEnvelope) -> Outcome:
            assert broker.kept_alive.wait(10), "no keepalive while the event was handled"
            return super().handle(event)

    listener = make_listener(broker, Slow())
    listener.poll(0.0)
    listener.close()

    assert broker.keepalives >= 3 and broker.acked == [event["id"]]


def test_a_broker_that_needs_no_keepalive_is_handled_inline() -> None:
    [event] = events(1)
    broker = FakeBroker(delivery(event))
    seen: list[str] = []

    class Recording(FakeHandler):
        def handle(self, event: EventEnvelope) -> Outcome:
            seen.append(threading.current_thread().name)
            return super().handle(event)

    make_listener(broker, Recording()).poll(0.0)

    assert seen == [threading.current_thread().name] and broker.keepalives == 0
