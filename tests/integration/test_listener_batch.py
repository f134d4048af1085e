"""The listener's batches: one transaction for what applies, the one-by-one way for the rest."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from accounts.adapters.database import tables
from accounts.bootstrap import Application, bootstrap
from accounts.domain.account import AccountType, to_wire
from accounts.entrypoints.worker import Listener
from accounts.service.ports import TENURE_TOPIC, TransientError
from tests.conftest import make_settings
from tests.fixtures.tenures import decided_by_tenure, expected_account, malformed_bodies, story, unknown_event


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Application]:
    application = bootstrap(make_settings(f"sqlite:///{tmp_path}/accounts.db", tmp_path), run_migrations=True)
    try:
        yield application
    finally:
        application.close()


def publish(listener: Listener, *messages: dict[str, Any] | bytes) -> None:
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
    listener = Listener(app, app.broker())
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
    assert listener.retried == 1  # the update about an unseen tenure waits for its create
    with app.engine.connect() as connection:
        left = connection.execute(sa.select(tables.embedded_messages.c.body, tables.embedded_messages.c.attempts)).all()
    tenure_left = [row for row in left if json.loads(row.body).get("eventType") == "TenureUpdatedEvent"]
    assert [(json.loads(row.body)["id"], row.attempts) for row in tenure_left] == [(unseen["id"], 1)]


def test_a_batch_that_fails_as_a_whole_goes_one_by_one(app: Application, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(22)
    tales = [story(rng) for _ in range(3)]
    listener = Listener(app, app.broker())

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
    listener = Listener(app, app.broker())
    publish(listener, first.events[0], second.events[0])
    assert listener.poll(0.1) == 2
    assert listener.dead_lettered == 1 and listener.processed == 1
    assert app.accounts.by_target(UUID(second.tenure_id), None) == []
    with app.engine.connect() as connection:
        copies = connection.execute(sa.select(tables.tenure_copies.c.tenure_id)).scalars().all()
    assert copies == [UUID(first.tenure_id)]
    assert count(app, tables.interim_rows) == 1
    assert count(app, tables.processed_events) == 1
