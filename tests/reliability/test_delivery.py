"""Fault item 3: every event delivered one to three times, in a random order.

What an at-least-once, unordered transport may do. The events go through the real
listener and broker (the embedded queue on SQLite; RabbitMQ on PostgreSQL), with its
retries for updates that arrive before their create; the result is compared, field
by field, with the same events applied once each in the order they happened, on a
database of its own. Fields no ordering can decide the same way (the account's id
and allocated payment reference, its timestamps and version count) are left out;
everything else must be equal: the account, the finance side's copy of the tenure,
the interim row, and one AccountCreatedEvent per account.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from accounts.adapters.database import tables as t
from accounts.bootstrap import Application, bootstrap
from accounts.domain.account import to_wire
from accounts.domain.events import parse_envelope
from accounts.domain.payment_reference import has_valid_check_digit
from accounts.service.listener import FinanceListener
from tests.conftest import make_settings, unique
from tests.fixtures.tenures import TenureStory, all_events, realistic_stories, shuffled_with_duplicates
from tests.reliability.harness import delete_rabbit_names

# Decided by when and in which order things happened, not by what happened.
ORDER_DEPENDENT = ("id", "paymentReference", "createdAt", "lastUpdatedAt")


def snapshot(app: Application, stories: list[TenureStory]) -> dict[str, dict[str, Any]]:
    """Per tenure: its account (less the order-dependent fields), tenure copy, interim row and creation events."""
    state: dict[str, dict[str, Any]] = {}
    with app.engine.connect() as connection:
        created = {
            str(row.group_id): int(row.n)
            for row in connection.execute(
                sa.select(t.outbox.c.group_id, sa.func.count().label("n"))
                .where(t.outbox.c.event_type == "AccountCreatedEvent")
                .group_by(t.outbox.c.group_id)
            )
        }
    for tale in stories:
        accounts = app.accounts.by_target(UUID(tale.tenure_id), None)
        assert len(accounts) == 1, f"tenure {tale.tenure_id} has {len(accounts)} accounts"
        [account] = accounts
        assert has_valid_check_digit(account.payment_reference)
        wire = json.loads(json.dumps(to_wire(account), default=str))
        with app.uow(read_only=True) as uow:
            record = uow.tenures.get(UUID(tale.tenure_id))
            row = uow.interim.by_account(account.id)
        assert record is not None and row is not None
        interim = {key: str(value) for key, value in row.__dict__.items() if key != "payment_ref"}
        state[tale.tenure_id] = {
            **{f"account.{key}": value for key, value in wire.items() if key not in ORDER_DEPENDENT},
            **{f"tenure.{key}": value for key, value in record.data.items()},
            **{f"interim.{key}": value for key, value in interim.items()},
            "AccountCreatedEvents": created.get(str(account.id), 0) or created.get(account.id.hex, 0),
        }
        assert state[tale.tenure_id]["AccountCreatedEvents"] == 1, f"tenure {tale.tenure_id}: one creation event"
    return state


def field_differences(want: dict[str, dict[str, Any]], got: dict[str, dict[str, Any]]) -> list[str]:
    differences = []
    for tenure_id in sorted(want.keys() | got.keys()):
        a, b = want.get(tenure_id, {}), got.get(tenure_id, {})
        for name in sorted(a.keys() | b.keys()):
            if a.get(name) != b.get(name):
                differences.append(f"{tenure_id} {name}: in order {a.get(name)!r}, shuffled {b.get(name)!r}")
    return differences


@pytest.fixture
def in_order(tmp_path: Path) -> Iterator[Application]:
    app = bootstrap(make_settings(f"sqlite:///{tmp_path / 'in-order.db'}", tmp_path / "in-order"), run_migrations=True)
    try:
        yield app
    finally:
        app.close()


def drain(listener: FinanceListener, app: Application, unique_events: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with app.engine.connect() as connection:
            done = connection.execute(sa.select(sa.func.count()).select_from(t.processed_events)).scalar_one()
        if done >= unique_events:
            return
        assert time.monotonic() < deadline, f"{done} of {unique_events} events processed after {timeout}s"
        listener.poll(0.05)


@pytest.mark.parametrize("seed", [1301, 1302, 1303])
@pytest.mark.parametrize("transport", ["embedded", "rabbitmq"])
def test_duplicated_and_shuffled_delivery_gives_the_in_order_state_field_by_field(
    transport: str, seed: int, in_order: Application, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    stories = realistic_stories(60, seed=seed)
    events = all_events(stories)
    for event in events:  # once each, in the order they happened
        in_order.tenure_events.handle(parse_envelope(event))
    delivered = shuffled_with_duplicates(events, seed=seed + 1)
    assert len(delivered) > len(events), "some events are delivered more than once"

    names: dict[str, str] = {}
    if transport == "embedded":
        url = f"sqlite:///{tmp_path / 'shuffled.db'}"
        broker_url = "embedded"
    else:
        url = request.getfixturevalue("postgres_database")
        broker_url = request.getfixturevalue("rabbitmq_url")
        names = {
            "tenure_queue": unique("delivery_q"),
            "tenure_exchange": unique("delivery_x"),
            "accounts_exchange": unique("delivery_a"),
        }
    settings = make_settings(url, tmp_path / "shuffled", broker_url=broker_url, max_attempts=50, **names)
    app = bootstrap(settings, run_migrations=True)
    broker = app.broker()
    try:
        for event in delivered:
            body = json.dumps(event).encode()
            broker.publish("tenure", body, group_id=event["entityId"], message_id=event["id"])
        listener = app.listener(broker)
        drain(listener, app, len(events))
        listener.close()
        with app.uow(read_only=True) as uow:
            assert uow.dead_letters.list() == []

        differences = field_differences(snapshot(in_order, stories), snapshot(app, stories))
        assert not differences, f"{len(differences)} field(s) differ:\n" + "\n".join(differences[:20])
    finally:
        broker.close()
        app.close()
        if names:
            delete_rabbit_names(broker_url, names)
