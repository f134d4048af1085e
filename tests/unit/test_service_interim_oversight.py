"""What a finance officer watches of the interim sync, on in-memory fakes: each reconciliation's outcome
kept, and dead letters listed, replayed one by one, and what became of each replay."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from accounts.domain.payment_reference import FIRST_SERIAL, from_serial
from accounts.service.dead_letters import NoSuchDeadLetter
from accounts.service.ports import TENURE_TOPIC
from tests.fixtures.tenures import story
from tests.unit.conftest import OnFakes
from tests.unit.test_service_accounts import OFFICER, a_tenure_master

TAKEN = from_serial(FIRST_SERIAL + 500)


def tenure_accounts(fakes: OnFakes, count: int) -> None:
    rng = random.Random(31)
    for _ in range(count):
        fakes.broker.send(json.dumps(story(rng, tenure_type="SEC").events[0]).encode())
    listener = fakes.app.listener(fakes.broker)
    while fakes.broker.queue:
        listener.poll(0)


def test_a_reconciliation_is_kept_with_who_ran_it_and_what_it_found(fakes: OnFakes) -> None:
    assert fakes.app.reconciliations.latest() is None
    tenure_accounts(fakes, 3)
    fakes.app.interim.flush_all()

    agreed, _ = fakes.app.reconciliations.run("fran.officer@hackney.gov.uk")
    assert (agreed.expected, agreed.matched, agreed.difference_count) == (3, 6, 0)  # the sync table and the sink
    assert agreed.targets == ("sync-table", "fake") and agreed.run_by == "fran.officer@hackney.gov.uk"
    assert fakes.app.reconciliations.latest() == agreed

    first, second, _ = sorted(fakes.sink.held)
    del fakes.sink.held[first]
    fakes.sink.held[second] = replace(fakes.sink.held[second], property_ref="00000000")
    found, reconciliation = fakes.app.reconciliations.run("abi.approver@hackney.gov.uk")
    assert (found.missing, found.changed, found.extra, found.matched) == (1, 1, 0, 4)
    assert len(reconciliation.differences) == found.difference_count == 2
    assert [text.split(":")[0] for text in found.differences] == ["fake", "fake"]
    assert any(f"{first} missing" in text for text in found.differences)
    assert fakes.app.reconciliations.latest() == found

    fakes.sink.failing = True
    unreadable, _ = fakes.app.reconciliations.run("fran.officer@hackney.gov.uk")
    assert (unreadable.unreadable, unreadable.matched) == (1, 3)  # the sync table alone agrees


def test_a_dead_letter_replayed_once_its_cause_is_mended_is_applied(fakes: OnFakes) -> None:
    holder = fakes.app.accounts.create(a_tenure_master(payment_reference=TAKEN), OFFICER, uuid.uuid4())
    tale = story(random.Random(32), tenure_type="SEC", payment_reference=TAKEN)
    fakes.broker.send(json.dumps(tale.events[0]).encode())
    fakes.app.listener(fakes.broker).poll(0)

    page = fakes.app.dead_letters.page(limit=10)
    [letter] = page.letters
    assert page.total == 1 and page.next_after is None
    assert letter.reason.startswith("AccountConflict") and letter.event_id == tale.events[0]["id"]

    with pytest.raises(NoSuchDeadLetter):
        fakes.app.dead_letters.replay(fakes.broker, [letter.id + 1])
    assert fakes.broker.on(TENURE_TOPIC) == []  # nothing published when an id is unknown

    other = from_serial(FIRST_SERIAL + 501)
    fakes.app.accounts.change(holder.id, lambda account: {"payment_reference": other}, OFFICER, uuid.uuid4())
    assert fakes.app.dead_letters.replay(fakes.broker, [letter.id]) == [letter]
    [published] = [message for message in fakes.broker.published if message.topic == TENURE_TOPIC]
    assert published.body == letter.body and published.group_id == str(tale.tenure_id)
    assert fakes.app.dead_letters.page().total == 0
    assert [o.state for o in fakes.app.dead_letters.outcomes()] == ["waiting"]
    with pytest.raises(NoSuchDeadLetter):  # replayed already
        fakes.app.dead_letters.replay(fakes.broker, [letter.id])

    fakes.broker.send(published.body)  # the broker delivers it again
    fakes.app.listener(fakes.broker).poll(0)
    [outcome] = fakes.app.dead_letters.outcomes()
    assert outcome.state == "applied" and outcome.letter.replayed_at is not None
    assert fakes.app.dead_letters.page().total == 0


def test_a_dead_letter_replayed_unmended_is_dead_lettered_again_and_says_so(fakes: OnFakes) -> None:
    fakes.app.accounts.create(a_tenure_master(payment_reference=TAKEN), OFFICER, uuid.uuid4())
    fakes.broker.send(json.dumps(story(random.Random(33), payment_reference=TAKEN).events[0]).encode())
    fakes.broker.send(b'{"id": "not an envelope"}')
    listener = fakes.app.listener(fakes.broker)
    listener.poll(0)

    conflict, poison = fakes.app.dead_letters.page(limit=1).letters + fakes.app.dead_letters.page(after=1).letters
    assert fakes.app.dead_letters.page(limit=1).next_after == conflict.id
    assert fakes.app.dead_letters.replay(fakes.broker) == [conflict, poison]  # every one waiting
    for message in [m for m in fakes.broker.published if m.topic == TENURE_TOPIC]:
        fakes.broker.send(message.body)
    listener.poll(0)

    outcomes = {outcome.letter.id: outcome for outcome in fakes.app.dead_letters.outcomes()}
    assert outcomes[conflict.id].state == "dead-lettered again"
    again = outcomes[conflict.id].again
    assert again is not None and again.id > poison.id and again.reason == conflict.reason
    assert outcomes[poison.id].state in ("published", "dead-lettered again")  # its id may be readable
    assert fakes.app.dead_letters.page().total == 2


def test_each_sink_says_what_it_owes_and_how_its_last_delivery_went(fakes: OnFakes) -> None:
    fakes.app.interim.enable_sinks()  # as the worker does when it starts
    tenure_accounts(fakes, 2)
    [before] = fakes.app.sink_figures()
    assert (before.name, before.pending, before.last_delivered_at) == ("fake", 2, None)
    fakes.sink.failing = True
    fakes.app.interim.flush_all()
    [failed] = fakes.app.sink_figures()
    assert failed.pending == 2 and failed.last_error is not None and "is down" in failed.last_error
    fakes.sink.failing = False
    fakes.app.interim.flush_all()
    [after] = fakes.app.sink_figures()
    assert after.pending == 0 and after.last_error is None
    assert after.last_delivered_at is not None and after.last_delivered_at <= datetime.now(UTC)
