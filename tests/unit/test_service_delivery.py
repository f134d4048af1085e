"""Carrying changes outward on in-memory fakes: the outbox relay to a broker, the interim rows to a sink."""

from __future__ import annotations

import json
import random
import uuid

import pytest

from accounts.domain.account import Actor
from accounts.domain.events import parse_envelope
from accounts.service.ports import ACCOUNTS_TOPIC, TransientError
from tests.fakes import FakeBroker, FakeSink
from tests.fixtures.tenures import story
from tests.unit.conftest import OnFakes
from tests.unit.test_service_accounts import OFFICER, a_tenure_master

CLERK = Actor("Rents Clerk", "rents.clerk@hackney.gov.uk")


def create_accounts(fakes: OnFakes, count: int) -> list[uuid.UUID]:
    return [fakes.app.accounts.create(a_tenure_master(), OFFICER, uuid.uuid4()).id for _ in range(count)]


def test_the_relay_publishes_each_event_once_then_marks_it_sent(fakes: OnFakes) -> None:
    ids = create_accounts(fakes, 3)
    relay = fakes.app.outbox_relay(fakes.app.broker())

    assert relay.pending() == 3
    assert relay.relay_once() == 3
    assert relay.pending() == 0
    assert relay.relay_once() == 0

    published = fakes.broker.published
    assert [message.topic for message in published] == [ACCOUNTS_TOPIC] * 3
    assert [message.group_id for message in published] == [str(account_id) for account_id in ids]
    bodies = [json.loads(message.body) for message in published]
    assert [body["entityId"] for body in bodies] == [str(account_id) for account_id in ids]
    assert [message.message_id for message in published] == [body["id"] for body in bodies]


def test_a_broker_that_fails_midway_leaves_the_rest_pending_for_the_next_pass(fakes: OnFakes) -> None:
    ids = create_accounts(fakes, 3)
    failing = FakeBroker(fail_after=1)

    with pytest.raises(TransientError):
        fakes.app.outbox_relay(failing).relay_once()

    relay = fakes.app.outbox_relay(fakes.broker)
    assert relay.pending() == 2  # the one accepted is marked sent
    assert relay.relay_once() == 2
    published = failing.published + fakes.broker.published
    assert sorted(json.loads(m.body)["entityId"] for m in published) == sorted(str(i) for i in ids)


def test_a_sink_flushed_receives_the_rows_and_owes_nothing_more(fakes: OnFakes) -> None:
    tale = story(random.Random(8), tenure_type="SEC")
    fakes.app.tenure_events.handle(parse_envelope(tale.events[0]))
    create_accounts(fakes, 2)

    assert fakes.app.interim.pending_counts() == {"fake": 3}
    assert fakes.app.interim.flush(fakes.sink) == 3
    assert fakes.app.interim.pending_counts() == {"fake": 0}
    with fakes.app.uow(read_only=True) as uow:
        assert fakes.sink.read_rows() == uow.deliveries.all()
    member = next(m for m in tale.tenure["householdMembers"] if m["isResponsible"])
    assert any(member["fullName"].endswith(row.surname) for row in fakes.sink.read_rows())
    assert fakes.app.interim.flush(fakes.sink) == 0


def test_a_row_changed_again_is_delivered_again(fakes: OnFakes) -> None:
    [account_id] = create_accounts(fakes, 1)
    fakes.app.interim.flush(fakes.sink)
    new_reference = "2280012345"
    old = fakes.app.accounts.get(account_id).payment_reference

    fakes.app.accounts.change(account_id, lambda a: {"payment_reference": new_reference}, CLERK, uuid.uuid4())

    assert fakes.app.interim.flush(fakes.sink) == 2  # the new key delivered, the old one removed
    assert [row.payment_ref for row in fakes.sink.read_rows()] == [new_reference]
    assert old not in fakes.sink.held


def test_a_failing_sink_keeps_its_rows_pending_and_gets_them_once_it_recovers(fakes: OnFakes) -> None:
    create_accounts(fakes, 2)
    fakes.sink.failing = True

    assert fakes.app.interim.flush(fakes.sink) == 0
    assert fakes.app.interim.pending_counts() == {"fake": 2}
    assert fakes.app.interim.flush(fakes.sink) == 0  # backing off: not even tried
    assert fakes.sink.held == {}

    fakes.sink.failing = False
    assert fakes.app.interim.flush_all() == 2  # flushing everything now does not wait for the back-off
    assert fakes.app.interim.pending_counts() == {"fake": 0}
    assert len(fakes.sink.held) == 2


def test_a_sink_switched_on_later_is_owed_every_row(fakes: OnFakes) -> None:
    create_accounts(fakes, 3)
    fakes.app.interim.flush_all()
    late = FakeSink("late")
    fakes.app.interim.sinks = [fakes.sink, late]

    assert fakes.app.interim.enable_sinks() == ["fake", "late"]
    assert fakes.app.interim.enable_sinks() == []
    assert fakes.app.interim.pending_counts() == {"fake": 3, "late": 3}
    assert fakes.app.interim.flush_all() == 6
    assert late.read_rows() == fakes.sink.read_rows()
