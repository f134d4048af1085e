"""The listener's batches: one transaction for what applies, the one-by-one way for the rest."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa

from accounts.adapters.database import tables
from accounts.bootstrap import Application
from accounts.domain.account import AccountType, Actor, Change, to_wire
from accounts.domain.events import parse_envelope
from accounts.service.accounts import change_account
from accounts.service.listener import FinanceListener
from accounts.service.ports import TENURE_TOPIC, TransientError
from accounts.service.unit_of_work import ConcurrencyConflict
from tests.fixtures.tenures import (
    all_events,
    decided_by_tenure,
    expected_account,
    malformed_bodies,
    story,
    unknown_event,
)


@pytest.fixture
def app(sqlite_application: Application) -> Application:
    return sqlite_application


def publish(listener: FinanceListener, *messages: dict[str, Any] | bytes) -> None:
    items = []
    for index, message in enumerate(messages):
        if isinstance(message, bytes):
            items.append((message, "unknown", f"raw-{index}"))
        else:
            items.append((json.dumps(message).encode(), str(message["entityId"]), str(message["id"])))
    listener.broker.publish_many(TENURE_TOPIC, items)  # type: ignore[attr-defined]


def count(app: Application, table: sa.Table) -> int:
    with app.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def wire(app: Application, tenure_id: str) -> dict[str, Any]:
    accounts = app.accounts.by_target(UUID(tenure_id), AccountType.MASTER)
    assert len(accounts) == 1
    return json.loads(json.dumps(to_wire(accounts[0]), default=str))


def test_one_batch_applies_what_it_can_and_treats_the_rest_one_by_one(app: Application) -> None:
    rng = random.Random(21)
    tales = [story(rng).moved_to(f"{n} Mare Street, London E8 3RH") for n in range(1, 4)]
    unseen = story(rng).moved_to("9 Well Street, London E9 6NS").events[1]  # its create never comes
    broken = [body for _, body, _ in malformed_bodies()][:3]
    listener = app.listener(app.broker())
    batch: list[dict[str, Any] | bytes] = []
    for tale in tales:
        batch.extend(tale.events)
    batch[1:1] = [broken[0], unseen, tales[0].events[0], unknown_event()]  # a duplicate create among them
    batch.extend(broken[1:])

    assert listener.poll(0.1) == 0
    publish(listener, *batch)
    assert listener.poll(0.1) == len(batch)

    for tale in tales:
        assert decided_by_tenure(wire(app, tale.tenure_id)) == decided_by_tenure(
            json.loads(json.dumps(expected_account(tale.tenure), default=str))
        )
    assert count(app, tables.processed_events) == 2 * len(tales)  # the duplicate changed nothing
    assert listener.dead_lettered == len(broken) == count(app, tables.dead_letters)
    assert listener.retried == 0  # the update about an unseen tenure is parked until its create comes
    with app.engine.connect() as connection:
        left = connection.execute(sa.select(tables.embedded_messages.c.body)).all()
        parked = connection.execute(sa.select(tables.parked_events.c.event_id)).scalars().all()
    assert [json.loads(row.body).get("eventType") for row in left] == []  # every message acked
    assert [str(event_id) for event_id in parked] == [unseen["id"]]


def test_a_batch_that_fails_as_a_whole_goes_one_by_one(app: Application, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(22)
    tales = [story(rng) for _ in range(3)]
    listener = app.listener(app.broker())

    def down(*_: object) -> list[object]:
        raise TransientError("database unavailable: gone for a moment")

    monkeypatch.setattr(app.tenure_events, "handle_many", down)
    publish(listener, *(tale.events[0] for tale in tales))
    assert listener.poll(0.1) == len(tales)
    for tale in tales:
        wire(app, tale.tenure_id)
    assert listener.processed == len(tales)
    assert count(app, tables.processed_events) == len(tales)


def test_a_failed_event_in_a_batch_leaves_nothing_of_itself_behind(app: Application) -> None:
    """Undone in its savepoint: the tenure copy it wrote before breaking a rule is gone too."""
    rng = random.Random(23)
    first = story(rng, payment_reference="2280012345")
    second = story(rng, payment_reference="2280012345")  # the same payment reference: 409, dead-lettered
    listener = app.listener(app.broker())
    publish(listener, first.events[0], second.events[0])
    assert listener.poll(0.1) == 2
    assert listener.dead_lettered == 1 and listener.processed == 1
    assert app.accounts.by_target(UUID(second.tenure_id), None) == []
    with app.engine.connect() as connection:
        copies = connection.execute(sa.select(tables.tenure_copies.c.tenure_id)).scalars().all()
    assert copies == [UUID(first.tenure_id)]
    assert count(app, tables.interim_rows) == 1
    assert count(app, tables.processed_events) == 1


# Set-based batches (SQLite and PostgreSQL): what a batch reads ahead and writes at commit gives
# exactly what the same events give one by one.


def run_batch(app: Application, *messages: dict[str, Any] | bytes) -> FinanceListener:
    """Publish the messages and take them in one batch."""
    listener = app.listener(app.broker())
    publish(listener, *messages)
    assert listener.poll(0.1) == len(messages)
    return listener


def in_order(tale: Any) -> dict[str, Any]:
    return decided_by_tenure(json.loads(json.dumps(expected_account(tale.tenure), default=str)))


def outbox_types(app: Application) -> list[str]:
    with app.engine.connect() as connection:
        return sorted(connection.execute(sa.select(tables.outbox.c.event_type)).scalars())


def next_serial(app: Application) -> int:
    with app.engine.connect() as connection:
        return int(connection.execute(sa.select(tables.payment_reference_counter.c.next_serial)).scalar_one())


def test_the_same_events_twice_in_one_batch_are_applied_once(application: Application) -> None:
    tale = story(random.Random(31)).moved_to("3 Mare Street, London E8 3RH")
    create, update = tale.events
    serial = next_serial(application)

    listener = run_batch(application, create, update, create, update)

    assert decided_by_tenure(wire(application, tale.tenure_id)) == in_order(tale)
    assert count(application, tables.processed_events) == 2
    assert outbox_types(application) == ["AccountCreatedEvent", "AccountUpdatedEvent"]
    assert listener.processed == 4 and listener.retried == 0 and listener.dead_lettered == 0
    assert next_serial(application) == serial + 1  # one payment reference allocated, once


def test_updates_before_their_creates_in_one_batch_give_the_in_order_accounts(application: Application) -> None:
    rng = random.Random(32)
    tales = [story(rng).moved_to(f"{n} Amhurst Road, London E8 2AA") for n in range(1, 4)]
    batch = [tale.events[1] for tale in tales] + [tale.events[0] for tale in tales]

    listener = run_batch(application, *batch)

    for tale in tales:
        assert decided_by_tenure(wire(application, tale.tenure_id)) == in_order(tale)
    assert count(application, tables.processed_events) == 6
    # Each update was parked, then applied in the same transaction as its create: the account was opened
    # as in-order delivery leaves it, with one event.
    assert outbox_types(application) == ["AccountCreatedEvent"] * 3
    assert listener.processed == 6 and listener.retried == 0 and listener.dead_lettered == 0


def test_bad_events_in_the_middle_of_a_batch_go_alone_while_the_rest_land(application: Application) -> None:
    rng = random.Random(33)
    first = story(rng).moved_to("5 Dalston Lane, London E8 3DF")
    own = story(rng, payment_reference="2280012345")
    clash = story(rng, payment_reference="2280012345")  # the same payment reference: 409, dead-lettered
    last = story(rng).moved_to("7 Pembury Road, London E5 8LN")
    labelled = dict((label, body) for label, body, _ in malformed_bodies())
    not_json, no_data = labelled["not JSON"], labelled["created without newData"]
    serial = next_serial(application)

    listener = run_batch(
        application,
        first.events[0],
        own.events[0],
        clash.events[0],
        no_data,  # well-formed envelope, refused inside the batch
        first.events[1],
        not_json,  # refused before the batch
        last.events[0],
        last.events[1],
    )

    assert listener.dead_lettered == 3 == count(application, tables.dead_letters)
    assert listener.processed == 5 and listener.retried == 0
    for tale in (first, own, last):
        assert decided_by_tenure(wire(application, tale.tenure_id)) == in_order(tale)
    assert wire(application, own.tenure_id)["paymentReference"] == "2280012345"
    assert application.accounts.by_target(UUID(clash.tenure_id), None) == []
    assert count(application, tables.processed_events) == 5
    assert count(application, tables.interim_rows) == 3
    # Two references allocated (first, last), none for the undone clash: the counter is exact.
    assert next_serial(application) == serial + 2
    references = [wire(application, tale.tenure_id)["paymentReference"] for tale in (first, own, last)]
    assert len(set(references)) == 3


def test_a_batch_refused_at_commit_goes_one_by_one(
    application: Application, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A unique key broken at commit (here: a processed-event row slipped in after the read-ahead, as a
    competing worker's would be) undoes the whole batch; every event then goes one by one."""
    from accounts.adapters.database.unit_of_work import SqlAlchemyUnitOfWork

    rng = random.Random(34)
    tales = [story(rng).moved_to(f"{n} Well Street, London E9 7PX") for n in range(1, 4)]
    original = SqlAlchemyUnitOfWork.read_ahead
    slipped: list[UUID] = []

    def read_ahead(self: SqlAlchemyUnitOfWork, event_ids: Any, entity_ids: Any) -> None:
        original(self, event_ids, entity_ids)
        if not slipped:
            slipped.append(event_ids[0])
            self.connection.execute(
                tables.processed_events.insert().values(
                    event_id=event_ids[0], event_type="x", outcome="x", processed_at=datetime.now(UTC)
                )
            )

    monkeypatch.setattr(SqlAlchemyUnitOfWork, "read_ahead", read_ahead)
    caplog.set_level("INFO", logger="accounts.service.listener")

    listener = run_batch(application, *all_events(tales))

    assert slipped and "failed as a whole" in caplog.text
    for tale in tales:
        assert decided_by_tenure(wire(application, tale.tenure_id)) == in_order(tale)
    assert count(application, tables.processed_events) == 6
    assert outbox_types(application) == ["AccountCreatedEvent"] * 3 + ["AccountUpdatedEvent"] * 3
    assert listener.processed == 6 and listener.retried == 0 and listener.dead_lettered == 0


def test_an_account_changed_by_another_transaction_during_a_batch_fails_its_commit(
    application: Application,
) -> None:
    """Updates written at commit carry the version the batch read: a change committed meanwhile wins."""
    tale = story(random.Random(35))
    application.tenure_events.handle(parse_envelope(tale.events[0]))
    tenure_id = UUID(tale.tenure_id)
    change = Change(Actor("test", "test@example.org"), uuid4(), datetime.now(UTC))
    postgresql = application.engine.dialect.name == "postgresql"

    with pytest.raises(ConcurrencyConflict), application.uow() as uow:
        uow.read_ahead([], [tenure_id])
        account = uow.accounts.by_target(tenure_id, AccountType.MASTER)[0]
        change_account(uow, account, {"account_balance": Decimal("-10.00")}, change)
        bump = tables.accounts.update().where(tables.accounts.c.id == account.id).values(version=account.version + 1)
        if postgresql:  # another transaction, committed while the batch runs (accounts are not locked)
            with application.engine.begin() as other:
                other.execute(bump)
        else:  # SQLite's writers take turns: the same connection stands in for the other writer
            uow.connection.execute(bump)  # type: ignore[attr-defined]
        uow.commit()

    stored = application.accounts.by_target(tenure_id, AccountType.MASTER)[0]
    assert stored.account_balance == Decimal("0.00")


def test_a_batch_of_updates_to_stored_accounts_commits_as_one(
    application: Application, caplog: pytest.LogCaptureFixture
) -> None:
    """Creates in one batch, their updates in the next: the versioned updates are written together."""
    rng = random.Random(36)
    tales = [story(rng).moved_to(f"{n} Mare Street, London E8 3RH").ended() for n in range(1, 6)]
    caplog.set_level("INFO", logger="accounts.service.listener")

    run_batch(application, *(tale.events[0] for tale in tales))
    listener = run_batch(application, *(event for tale in tales for event in tale.events[1:]))

    assert "failed as a whole" not in caplog.text
    for tale in tales:
        assert decided_by_tenure(wire(application, tale.tenure_id)) == in_order(tale)
    assert listener.processed == 10 and listener.retried == 0
    assert outbox_types(application) == ["AccountCreatedEvent"] * 5 + ["AccountUpdatedEvent"] * 10
