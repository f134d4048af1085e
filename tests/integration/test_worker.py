"""The finance listener in-process, on the embedded queue: what it does with each kind of message."""

from __future__ import annotations

import json
import multiprocessing
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from accounts.adapters.brokers.embedded import EmbeddedBroker
from accounts.adapters.database import tables
from accounts.bootstrap import Application, bootstrap
from accounts.domain.account import AccountType, to_wire
from accounts.entrypoints.worker import DrainedCounter, Worker, run_sync_process
from accounts.service.listener import FinanceListener
from accounts.service.ports import ACCOUNTS_TOPIC, TENURE_TOPIC, MessageBroker, ReceivedMessage, TransientError
from tests.conftest import make_settings
from tests.fixtures.tenures import (
    all_events,
    decided_by_tenure,
    expected_account,
    malformed_bodies,
    realistic_stories,
    shuffled_with_duplicates,
    story,
    unknown_event,
)
from tests.integration.test_interim_sync_support import workbook_rows


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., Application]]:
    """A wired service on a fresh SQLite database, with test settings overridden as asked."""
    made: list[Application] = []

    def make(**overrides: object) -> Application:
        settings = make_settings(f"sqlite:///{tmp_path}/accounts-{len(made)}.db", tmp_path, **overrides)
        app = bootstrap(settings, run_migrations=True)
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


def publish(broker: EmbeddedBroker, *events: dict[str, Any] | bytes) -> None:
    items = []
    for index, event in enumerate(events):
        if isinstance(event, bytes):
            items.append((event, "unknown", f"raw-{index}-{time.monotonic_ns()}"))
        else:
            items.append((json.dumps(event).encode(), str(event["entityId"]), str(event["id"])))
    broker.publish_many(TENURE_TOPIC, items)


def drain(listener: FinanceListener, broker: EmbeddedBroker, timeout: float = 20.0) -> None:
    """Poll until the queue is empty (retried messages included)."""
    deadline = time.monotonic() + timeout
    while broker.depth():
        assert time.monotonic() < deadline, f"{broker.depth()} message(s) still queued after {timeout}s"
        listener.poll(0.05)


def master_wire(app: Application, tenure_id: str) -> dict[str, Any]:
    accounts = app.accounts.by_target(UUID(tenure_id), AccountType.MASTER)
    assert len(accounts) == 1, f"tenure {tenure_id} has {len(accounts)} Master accounts"
    return json.loads(json.dumps(to_wire(accounts[0]), default=str))


def count(app: Application, table: sa.Table) -> int:
    with app.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_shuffled_duplicated_events_on_the_queue_give_the_in_order_accounts(make_app) -> None:
    app = make_app(worker_batch_size=5)  # small batches: some updates come in a batch before their create's
    broker = app.broker()
    stories = realistic_stories(18, seed=31)
    events = all_events(stories)
    publish(broker, *shuffled_with_duplicates(events, seed=32))
    listener = app.listener(broker)

    drain(listener, broker)

    for tale in stories:
        assert decided_by_tenure(master_wire(app, tale.tenure_id)) == expected_account(tale.tenure)
    assert count(app, tables.processed_events) == len({e["id"] for e in events})
    assert count(app, tables.dead_letters) == 0
    with app.engine.connect() as connection:
        outcomes = connection.execute(sa.select(tables.processed_events.c.outcome)).scalars().all()
    assert any("was parked" in outcome for outcome in outcomes), "some updates came before their create and waited"
    assert count(app, tables.parked_events) == 0


@pytest.mark.parametrize("company", [0, 1], ids=["alone", "in a batch"])
def test_an_unknown_event_type_is_logged_acknowledged_and_skipped(make_app, caplog, company: int) -> None:
    app = make_app()
    broker = app.broker()
    others = [tale.events[0] for tale in realistic_stories(company, seed=21)]
    publish(broker, unknown_event(), *others)
    listener = app.listener(broker)

    with caplog.at_level("INFO", logger="accounts"):
        assert listener.poll(0.1) == 1 + company

    assert broker.depth() == 0
    assert count(app, tables.dead_letters) == 0
    assert count(app, tables.accounts) == company
    assert "of unknown type TenureArchivedEvent" in caplog.text


def test_malformed_events_are_dead_lettered_at_once_with_the_reason_and_block_nothing(make_app) -> None:
    app = make_app()
    broker = app.broker()
    bad = malformed_bodies()
    good = realistic_stories(3, seed=41)
    mixed: list[dict[str, Any] | bytes] = []
    for index, (_, body, _) in enumerate(bad):
        mixed.append(body)
        mixed.extend(all_events(good)[index : index + 1])
    mixed.extend(all_events(good)[len(bad) :])
    publish(broker, *mixed)
    listener = app.listener(broker)

    drain(listener, broker)

    with app.uow(read_only=True) as uow:
        letters = uow.dead_letters.list()
    assert len(letters) == len(bad)
    for (label, body, mention), letter in zip(bad, letters, strict=True):
        assert letter.body == body, label
        assert letter.attempts == 1, f"{label}: never retried"
        assert mention in letter.reason, f"{label}: {letter.reason!r} should mention {mention!r}"
    for tale in good:
        assert decided_by_tenure(master_wire(app, tale.tenure_id)) == expected_account(tale.tenure)


def test_an_update_whose_tenure_comes_a_week_late_waits_parked_across_a_restart(make_app) -> None:
    """Never dead-lettered for waiting alone: parked durably, and applied when its create finally comes."""
    app = make_app(max_attempts=3, retry_base_seconds=0.01, retry_max_seconds=0.02)
    broker = app.broker()
    tale = story(random.Random(51)).moved_to("1 Nowhere Street, London E8 1AA")
    create, update = tale.events
    publish(broker, update)
    listener = app.listener(broker)
    drain(listener, broker)

    assert count(app, tables.dead_letters) == 0 and count(app, tables.accounts) == 0
    assert count(app, tables.parked_events) == 1 and listener.retried == 0
    broker.close()
    app.close()

    later = bootstrap(app.settings, run_migrations=True)  # a restart on the same database...
    later.tenure_events.clock = lambda: datetime.now(UTC) + timedelta(days=7)  # ...a week on
    try:
        broker = later.broker()
        publish(broker, create)
        drain(later.listener(broker), broker)
        broker.close()
        assert decided_by_tenure(master_wire(later, tale.tenure_id)) == expected_account(tale.tenure)
        assert count(later, tables.parked_events) == 0 and count(later, tables.dead_letters) == 0
    finally:
        later.close()


class RecordingBroker(MessageBroker):
    """A broker double that records what the listener did with each message."""

    def __init__(self, keepalive_interval: float | None = None) -> None:
        self.acked: list[ReceivedMessage] = []
        self.retried: list[tuple[ReceivedMessage, float]] = []
        self.keepalives = 0
        if keepalive_interval is not None:
            self.keepalive_interval = keepalive_interval
            self.keepalive = self._keepalive

    def _keepalive(self) -> None:
        self.keepalives += 1

    def receive(self, max_messages: int, wait_seconds: float) -> list[ReceivedMessage]:
        return []

    def ack(self, message: ReceivedMessage) -> None:
        self.acked.append(message)

    def retry_later(self, message: ReceivedMessage, delay_seconds: float) -> None:
        self.retried.append((message, delay_seconds))

    def publish(self, topic: str, body: bytes, *, group_id: str, message_id: str) -> None:
        raise AssertionError("the listener publishes nothing")

    def close(self) -> None:
        pass


def delivery(event: dict[str, Any] | bytes, attempts: int = 1) -> ReceivedMessage:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    return ReceivedMessage(body=body, attempts=attempts, receipt=object(), message_id="m-1")


def test_a_dead_letter_that_cannot_be_stored_goes_back_to_the_broker(make_app, monkeypatch) -> None:
    app = make_app()
    broker = RecordingBroker()

    def database_down(*_args: object, **_kwargs: object) -> object:
        raise TransientError("database unavailable: connection refused")

    monkeypatch.setattr(app, "uow", database_down)
    app.listener(broker).process(delivery(b"not json at all"))

    assert broker.acked == []
    assert len(broker.retried) == 1, "not stored, so not acked: the broker delivers it again"


def test_the_database_down_holds_the_event_without_spending_its_attempts(make_app, monkeypatch) -> None:
    app = make_app()
    broker = RecordingBroker()
    tale = story(random.Random(61))
    real_handle = app.tenure_events.handle
    answers = iter([False, False, True])
    failures = iter([TransientError("database unavailable: server closed the connection")])

    def flaky_handle(event: Any) -> Any:
        for error in failures:
            raise error
        return real_handle(event)

    monkeypatch.setattr(app.tenure_events, "handle", flaky_handle)
    listener = app.listener(broker)
    monkeypatch.setattr(listener, "database_answers", lambda: next(answers))

    listener.process(delivery(tale.events[0]))

    assert broker.retried == [], "an outage is not the event's fault"
    assert len(broker.acked) == 1
    master_wire(app, tale.tenure_id)


def test_a_dropped_connection_is_retried_at_once_when_the_database_answers(make_app, monkeypatch) -> None:
    app = make_app()
    broker = RecordingBroker()
    tale = story(random.Random(62))
    real_handle = app.tenure_events.handle
    failures = iter([TransientError("database unavailable: terminating connection due to administrator command")])

    def flaky_handle(event: Any) -> Any:
        for error in failures:
            raise error
        return real_handle(event)

    monkeypatch.setattr(app.tenure_events, "handle", flaky_handle)
    app.listener(broker).process(delivery(tale.events[0]))

    assert broker.retried == [] and len(broker.acked) == 1
    master_wire(app, tale.tenure_id)


def test_stopping_while_the_database_is_down_leaves_the_message_to_the_broker(make_app, monkeypatch) -> None:
    app = make_app()
    broker = RecordingBroker()

    def down(event: Any) -> Any:
        raise TransientError("database unavailable")

    monkeypatch.setattr(app.tenure_events, "handle", down)
    listener = app.listener(broker)
    monkeypatch.setattr(listener, "database_answers", lambda: False)
    threading.Timer(0.2, listener.stop.set).start()

    started = time.monotonic()
    listener.process(delivery(story(random.Random(63)).events[0]))

    assert time.monotonic() - started < 5
    assert broker.acked == [] and broker.retried == [], "neither applied nor failed: delivered again later"


def test_the_broker_is_kept_alive_while_a_slow_event_is_handled(make_app, monkeypatch) -> None:
    app = make_app()
    broker = RecordingBroker(keepalive_interval=0.05)
    real_handle = app.tenure_events.handle

    def slow_handle(event: Any) -> Any:
        time.sleep(0.5)
        return real_handle(event)

    monkeypatch.setattr(app.tenure_events, "handle", slow_handle)
    listener = app.listener(broker)
    listener.process(delivery(story(random.Random(64)).events[0]))
    listener.close()

    assert broker.keepalives >= 4
    assert len(broker.acked) == 1


def test_the_embedded_lease_is_renewed_while_in_hand_and_runs_out_when_abandoned(make_app) -> None:
    app = make_app()
    first = EmbeddedBroker(app.engine, lease_seconds=1.0)
    other = EmbeddedBroker(app.engine, lease_seconds=1.0)
    publish(first, *story(random.Random(71)).events)

    [message] = first.receive(10, 0.1)
    for _ in range(5):  # 1.5 s, longer than the lease, renewed every 0.3 s
        time.sleep(0.3)
        first.keepalive()
        assert other.receive(10, 0) == [], "a renewed lease keeps the message from a competing worker"

    time.sleep(1.3)  # abandoned (a killed worker renews nothing)
    [again] = other.receive(10, 0.1)
    assert again.body == message.body and again.attempts == 2


def test_closing_the_embedded_broker_hands_back_its_leases(make_app) -> None:
    app = make_app()
    first = EmbeddedBroker(app.engine, lease_seconds=60)
    publish(first, *story(random.Random(72)).events)
    assert len(first.receive(10, 0.1)) == 1
    first.close()
    assert len(EmbeddedBroker(app.engine).receive(10, 0.1)) == 1


def test_account_events_are_not_queued_on_the_embedded_broker(make_app) -> None:
    app = make_app()
    broker = app.broker()
    broker.publish(ACCOUNTS_TOPIC, b"{}", group_id="g", message_id="m")
    assert count(app, tables.embedded_messages) == 0


def test_on_stop_the_worker_finishes_the_batch_in_hand_and_takes_no_more(make_app, monkeypatch) -> None:
    app = make_app(worker_batch_size=10)
    broker = app.broker()
    stories = realistic_stories(30, seed=81)
    publish(broker, *[tale.events[0] for tale in stories])
    worker = Worker(app, relay=False, sync=False)
    real_handle = app.tenure_events.handle

    def stop_after_first(event: Any) -> Any:
        worker.stop.set()  # SIGTERM arrives while the first message is handled
        return real_handle(event)

    monkeypatch.setattr(app.tenure_events, "handle", stop_after_first)
    worker.start()
    worker.shutdown(timeout=10)

    assert count(app, tables.accounts) == 10, "the whole batch in hand is applied"
    assert broker.depth() == 20
    with app.engine.connect() as connection:
        leased = connection.execute(
            sa.select(sa.func.count()).where(tables.embedded_messages.c.leased_until.is_not(None))
        ).scalar_one()
    assert leased == 0, "nothing is left leased: the next worker takes the rest at once"


def test_a_worker_whose_listener_cannot_start_exits_with_an_error(make_app, monkeypatch) -> None:
    app = make_app()

    def no_broker() -> Any:
        raise ValueError("ACCOUNTS_BROKER_URL 'carrier-pigeon://': use embedded, amqp://... or sqs://QUEUE")

    monkeypatch.setattr(app, "broker", no_broker)
    worker = Worker(app, relay=False, sync=False)
    done = threading.Event()
    result: list[int] = []
    threading.Thread(target=lambda: (result.append(worker.run_forever()), done.set()), daemon=True).start()

    assert done.wait(5), "the worker stops instead of running on without its listener"
    assert result == [1]


def test_asking_for_more_hands_back_what_was_left_of_the_last_batch(make_app) -> None:
    app = make_app()
    broker = EmbeddedBroker(app.engine, lease_seconds=60)
    publish(broker, *[tale.events[0] for tale in realistic_stories(3, seed=73)])
    first, *rest = broker.receive(10, 0.1)
    broker.ack(first)  # then, say, the next ack failed and the listener gave up on the batch

    again = broker.receive(10, 0.1)

    assert [m.body for m in again] == [m.body for m in rest], "back at once, not after the 60 s lease"
    assert [m.attempts for m in again] == [2, 2]


def test_a_claim_whose_answer_was_lost_is_handed_back_uncounted(make_app) -> None:
    app = make_app()
    broker = EmbeddedBroker(app.engine, lease_seconds=60)
    publish(broker, *[tale.events[0] for tale in realistic_stories(2, seed=74)])
    token = broker._token()
    with app.engine.begin() as connection:  # what the claim did before its connection died
        connection.execute(
            tables.embedded_messages.update().values(
                leased_until=token, attempts=tables.embedded_messages.c.attempts + 1
            )
        )
    broker._lost_claims.append((token, True))

    again = broker.receive(10, 0.1)

    assert len(again) == 2 and [m.attempts for m in again] == [1, 1]


def test_a_workbook_rewrite_rest_ends_when_the_listener_has_drained_a_burst(make_app) -> None:
    """After a rewrite the flusher rests (the listener keeps the interpreter while events stream in);
    once the queue is empty after a burst, the last rows go to the workbook without waiting that out."""
    worker = Worker(make_app(), consume=False, relay=False, sync=False)
    threading.Timer(0.2, worker.drained.set).start()
    started = time.monotonic()
    assert worker._rest(30.0) == 0.0
    assert time.monotonic() - started < 5.0
    assert not worker.drained.is_set()  # taken: the next rest is a whole one again
    worker.stop.set()
    started = time.monotonic()
    worker._rest(30.0)  # stopping ends a rest too
    assert time.monotonic() - started < 1.0


# The relay and the sinks in a process of their own (`accounts worker`'s default) ---------------------


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what} after {timeout}s"
        time.sleep(0.05)


def test_with_the_relay_and_sinks_in_a_process_of_their_own_every_account_reaches_the_workbook(make_app) -> None:
    app = make_app(worker_batch_size=25)
    broker = app.broker()
    stories = realistic_stories(40, seed=91)
    publish(broker, *[event for tale in stories for event in tale.events])
    worker = Worker(app, sync_process=True)
    worker.start()
    try:
        wait_for(lambda: broker.depth() == 0 and count(app, tables.processed_events) >= 1, 30, "the listener")
        wait_for(lambda: count(app, tables.interim_pending) == 0, 30, "the other process's sinks")
        with app.engine.connect() as connection:
            unsent = connection.execute(
                sa.select(sa.func.count()).where(tables.outbox.c.published_at.is_(None))
            ).scalar_one()
        assert unsent == 0, "the other process's relay published every account event"
        with app.uow(read_only=True) as uow:
            references = sorted(row.payment_ref for row in uow.deliveries.all())
        assert len(references) == 40
        assert sorted(workbook_rows(app.settings.spreadsheet_path)) == references
    finally:
        worker.shutdown(timeout=20)
    assert worker._process is not None and worker._process.exitcode == 0, "stopped when the worker stopped"
    assert not worker.failed


def test_the_worker_stops_with_an_error_when_its_relay_and_sinks_process_dies(make_app) -> None:
    worker = Worker(make_app(), sync_process=True)
    done = threading.Event()
    result: list[int] = []
    threading.Thread(target=lambda: (result.append(worker.run_forever()), done.set()), daemon=True).start()
    wait_for(lambda: worker._process is not None and worker._process.pid is not None, 10, "the child process")
    assert worker._process is not None
    wait_for(lambda: worker._process is not None and worker._process.is_alive(), 10, "the child to run")
    worker._process.kill()

    assert done.wait(10), "the worker stops rather than run on without its relay and sinks"
    assert result == [1]
    assert worker.failed == ["relay-and-sinks process"]


def test_the_relay_and_sinks_process_stops_by_itself_when_its_worker_is_gone(make_app) -> None:
    app = make_app()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    context = multiprocessing.get_context("spawn")
    child = context.Process(
        target=run_sync_process, args=(app.settings, True, True, context.RawValue("q", 0), gone.pid)
    )
    child.start()
    child.join(30)
    assert child.exitcode == 0, "it saw that the worker that started it was gone, and stopped"


def test_the_drained_signal_crosses_processes_as_a_counter() -> None:
    shared = multiprocessing.get_context("spawn").RawValue("q", 0)
    listener_side, flusher_side = DrainedCounter(shared), DrainedCounter(shared)
    assert not flusher_side.wait(0.1)
    listener_side.set()
    assert flusher_side.is_set() and flusher_side.wait(0.1)
    flusher_side.clear()
    assert not flusher_side.is_set(), "taken: the next rest is a whole one again"
