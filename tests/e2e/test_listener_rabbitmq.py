"""The finance listener end to end through RabbitMQ: real `accounts` processes on a real server.

Each test has its own exchange and durable queue (deleted afterwards), so tests and
developers sharing the server never see each other's messages.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.fixtures.service import Service, delete_rabbitmq_topology, stop_each_having_applied, wait_until
from tests.fixtures.tenures import (
    SAMPLE_FILE,
    all_events,
    malformed_bodies,
    realistic_stories,
    sample_stories,
    shuffled_with_duplicates,
    story,
    unknown_event,
)

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def topology(rabbitmq_url: str) -> Iterator[dict[str, str]]:
    """This test's own exchanges and queue, as ACCOUNTS_* settings."""
    names = {
        "tenure_exchange": unique("e2e_tenure_ex"),
        "tenure_queue": unique("e2e_tenure_q"),
        "accounts_exchange": unique("e2e_accounts_ex"),
    }
    yield names
    delete_rabbitmq_topology(
        rabbitmq_url, names["tenure_queue"], [names["tenure_exchange"], names["accounts_exchange"]]
    )


def all_applied(service: Service, events: list[dict]) -> bool:
    return len(service.processed_ids()) == len({event["id"] for event in events})


def test_published_events_become_accounts_on_the_api(
    topology: dict[str, str], service_factory, rabbitmq_url: str, tmp_path: Path
) -> None:
    service: Service = service_factory(f"sqlite:///{tmp_path / 'accounts.db'}", rabbitmq_url, **topology)
    service.serve()
    demo = sample_stories()
    others = realistic_stories(30, seed=201)
    posted = story(random.Random(202)).ended("2025-06-30")
    bad = malformed_bodies()

    assert "published 26 events" in service.cli("events", "publish", str(SAMPLE_FILE)).stdout
    service.publish_events([*shuffled_with_duplicates(all_events(others), seed=203), unknown_event()])
    service.publish_raw(body for _, body, _ in bad)
    with service.api() as client:
        response = client.post("/events", json=posted.events)
        assert response.status_code == 202, response.text

    stories = [*demo, *others, posted]
    events = all_events(stories)
    service.wait_for_accounts(stories)
    wait_until(lambda: all_applied(service, events), 20, "every event to be recorded")
    wait_until(lambda: service.count("dead_letters") == len(bad), 20, "the malformed events to be dead-lettered")

    service.check_books(stories, events)
    letters = service.dead_letters()
    assert sorted(letter["body"].encode() for letter in letters) == sorted(body for _, body, _ in bad)
    assert all(letter["attempts"] == 1 for letter in letters), "malformed: never retried"


@pytest.mark.postgres
def test_two_workers_share_one_queue_without_applying_anything_twice(
    topology: dict[str, str], service_factory, rabbitmq_url: str, postgres_database: str
) -> None:
    service: Service = service_factory(postgres_database, rabbitmq_url, worker_batch_size=10, **topology)
    stories = realistic_stories(80, seed=211)
    events = all_events(stories)
    service.migrate()
    workers = service.workers("worker-a", "worker-b")  # both consuming before anything is published

    service.publish_events(shuffled_with_duplicates(events, seed=212))
    wait_until(lambda: all_applied(service, events), 60, "two workers to apply every event")

    service.check_books(stories, events)
    service.check_accounts_in_database(stories)
    assert service.count("dead_letters") == 0
    stop_each_having_applied(workers)


def test_a_worker_killed_mid_drain_loses_nothing_and_applies_nothing_twice(
    topology: dict[str, str], service_factory, rabbitmq_url: str, tmp_path: Path
) -> None:
    service: Service = service_factory(
        f"sqlite:///{tmp_path / 'accounts.db'}", rabbitmq_url, worker_batch_size=10, **topology
    )
    stories = realistic_stories(600, seed=221)
    events = all_events(stories)
    first = service.worker(name="worker-killed")
    # Published from a thread while we watch: the worker keeps pace with a publisher, so waiting
    # for the publish to end first could find all 2,841 deliveries applied before the kill.
    with ThreadPoolExecutor(1) as publisher:
        published = publisher.submit(service.publish_events, shuffled_with_duplicates(events, seed=222))
        wait_until(lambda: len(service.processed_ids()) >= 30, 30, "the first worker to get going", pause=0.02)
        first.kill()  # SIGKILL: its unacked deliveries go back to the queue
        published.result()
    assert not all_applied(service, events), "killed mid-drain"

    service.serve()
    wait_until(lambda: all_applied(service, events), 60, "the restarted listener to apply every event")

    service.check_books(stories, events)
    service.wait_for_accounts(stories)
    assert service.count("dead_letters") == 0
