"""Fault item 5: malformed events mixed into a stream of good ones.

The real `accounts worker` drains a stream of good tenure events with poison
scattered through it: not JSON, not UTF-8, empty, JSON nested too deeply to read,
envelopes missing or mangling their fields, wrong types in the tenure, text no
database can store. Every poison message must end in the dead-letter store, byte for
byte, with a reason naming what is wrong (at once: no retry can mend it), and every good
event must be applied: the books of the crash test hold. An update about a tenure that
never comes is no poison: it is parked, never dead-lettered for waiting alone. On the
embedded default and on PostgreSQL + RabbitMQ.
"""

from __future__ import annotations

import copy
import json
import random
import time
from typing import Any

import pytest

from tests.fixtures.tenures import malformed_bodies, new_id, story, unknown_event
from tests.reliability.harness import Deployment, Figures, check_books, record_figures, story_items, wait_until
from tests.reliability.test_crash import stories_with_events

GOOD_EVENTS = 400
MAX_ATTEMPTS = 3


def poison(seed: int = 1501) -> list[tuple[str, bytes, str, int]]:
    """(label, body, what the reason must mention, deliveries before it is dead-lettered)."""
    rng = random.Random(seed)

    def create_with(*path: Any, value: Any) -> bytes:
        event = copy.deepcopy(story(rng).events[0])
        event["id"] = new_id(rng)
        target = event
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return json.dumps(event).encode()

    nested = create_with("eventData", "newData", "legacyReferences", value="NESTED")
    cases = [(label, body, mention, 1) for label, body, mention in malformed_bodies(seed)]
    cases += [
        ("an empty body", b"", "not JSON", 1),
        ("not UTF-8", b"\xff\xfe\x00{", "not JSON", 1),
        ("JSON null", b"null", "not a JSON object", 1),
        ("an array nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000, "nested too deeply", 1),
        ("a field nested 50,000 deep", nested.replace(b'"NESTED"', b"[" * 50_000 + b"]" * 50_000), "nested", 1),
        (
            "a lone surrogate in a name",
            create_with("eventData", "newData", "householdMembers", 0, "fullName", value="Jane \ud800 Smith"),
            "surrogate",
            1,
        ),
        (
            "a start date in year 99999",
            create_with("eventData", "newData", "startOfTenureDate", value="99999-01-01"),
            "startOfTenureDate",
            1,
        ),
        (
            "a payment reference as a number",
            create_with("eventData", "newData", "paymentReference", value=1234567890),
            "paymentReference",
            1,
        ),
        (
            "a payment reference of letters",
            create_with("eventData", "newData", "paymentReference", value="12ab"),
            "paymentReference",
            1,
        ),
        ("a tenure type as a string", create_with("eventData", "newData", "tenureType", value="SEC"), "tenureType", 1),
    ]
    return cases


def run_poison_test(deployment: Deployment, seed: int) -> Figures:
    rng = random.Random(seed)
    stories = stories_with_events(GOOD_EVENTS, seed)
    good = story_items(stories, rng)
    bad = poison()
    never = story(rng).moved_to("1 Nowhere Street, London E8 1AA").events[1]  # its create never comes
    stream: list[dict[str, Any] | bytes] = [*good, unknown_event(), never]
    for _, body, _, _ in bad:
        stream.insert(rng.randrange(len(stream) + 1), body)
    deployment.migrate()
    started = time.monotonic()
    deployment.publish_events(stream)
    worker = deployment.start_worker(ACCOUNTS_MAX_ATTEMPTS=str(MAX_ATTEMPTS))
    wait_until(lambda: deployment.settled(len(good), dead_letters=len(bad)), 180, "the stream to drain", pause=0.25)
    assert worker.terminate() == 0, worker.output()[-3000:]

    letters = json.loads(deployment.cli("events", "dead-letters", "--json").stdout)
    assert never["id"] in deployment.cli("events", "parked").stdout, "the orphan update waits, parked"
    assert len(letters) == len(bad), [letter["reason"] for letter in letters]
    from accounts.bootstrap import bootstrap

    app = bootstrap(deployment.settings())
    with app.uow(read_only=True) as uow:
        stored = {letter.body: letter for letter in uow.dead_letters.list()}
    app.close()
    for label, body, mention, attempts in bad:
        letter = stored.get(body)
        assert letter is not None, f"{label}: not in the dead-letter store (or not byte for byte)"
        assert mention.lower() in letter.reason.lower(), f"{label}: {letter.reason!r} should mention {mention!r}"
        assert letter.attempts == attempts, f"{label}: dead-lettered after {letter.attempts} deliveries"
    figures = Figures(events=len(stream), seconds=round(time.monotonic() - started, 1))
    return check_books(deployment, stories, good, figures, dead_letters=len(bad))


def test_poison_on_the_embedded_default_is_dead_lettered_and_every_good_event_applied(
    embedded_deployment: Deployment,
) -> None:
    record_figures("poison/embedded", run_poison_test(embedded_deployment, seed=1502))


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_poison_on_postgresql_and_rabbitmq_is_dead_lettered_and_every_good_event_applied(
    server_deployment: Deployment,
) -> None:
    record_figures("poison/postgresql+rabbitmq", run_poison_test(server_deployment, seed=1503))
