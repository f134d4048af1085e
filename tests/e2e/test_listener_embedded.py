"""The finance listener end to end on the embedded queue: real `accounts` processes, results read on the API.

From a published tenure event to the account readable on the API, through the
command line (`accounts events publish`) and the HTTP intake (`POST /api/v1/events`);
then what goes wrong in real life: duplicates, shuffled order, updates before their
create, unknown and malformed events, a worker killed mid-drain, a worker told to stop,
the database going away for a moment, and two workers competing for one queue.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.fixtures.service import Service, stop_each_having_applied, wait_until
from tests.fixtures.tenures import (
    SAMPLE_FILE,
    all_events,
    expected_account,
    malformed_bodies,
    realistic_stories,
    sample_stories,
    shuffled_with_duplicates,
    story,
    unknown_event,
)


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'accounts.db'}"


def drained(service: Service, events: list[dict]) -> bool:
    return service.queue_depth() == 0 and len(service.processed_ids()) == len({e["id"] for e in events})


def test_published_events_become_accounts_on_the_api(service_factory, tmp_path: Path) -> None:
    service: Service = service_factory(sqlite_url(tmp_path))
    server = service.serve()
    demo = sample_stories()
    others = realistic_stories(30, seed=101)
    posted = [story(random.Random(102)).moved_to("2 Dalston Lane, London E8 3AZ"), story(random.Random(103))]
    bad = malformed_bodies()

    # The README demo file, as it is.
    published = service.cli("events", "publish", str(SAMPLE_FILE))
    assert "published 26 events" in published.stdout
    # Many tenures at once, shuffled and duplicated, with an unknown and malformed events among them.
    service.publish_events([*shuffled_with_duplicates(all_events(others), seed=104), unknown_event()])
    service.publish_raw(body for _, body, _ in bad)
    # The authenticated HTTP intake: an array, then one envelope.
    with service.api() as client:
        response = client.post("/events", json=posted[0].events)
        assert response.status_code == 202, response.text
        assert response.json()["accepted"] == 2
        response = client.post("/events", json=posted[1].events[0])
        assert response.status_code == 202, response.text
        refused = client.post("/events", json={"eventType": "TenureCreatedEvent"})
        assert refused.status_code == 400, "the intake refuses what it can see is malformed"
    reader = {"Authorization": f"Bearer {service.token(write=False)}"}
    assert httpx.post(f"{service.api_url}/events", json=posted[1].events[0], headers=reader).status_code == 403
    assert httpx.post(f"{service.api_url}/events", json=posted[1].events[0]).status_code == 401

    stories = demo + others + posted
    accounts = service.wait_for_accounts(stories)
    wait_until(lambda: service.queue_depth() == 0, 20, "the queue to drain")

    service.check_books(stories, all_events(stories))
    own = next(tale for tale in demo if tale.tenure["paymentReference"])
    assert accounts[own.tenure_id]["paymentReference"] == "1902345678", "the tenure's own PRN is kept"
    letters = service.dead_letters()
    assert sorted(letter["body"].encode() for letter in letters) == sorted(body for _, body, _ in bad)
    for letter in letters:
        assert letter["attempts"] == 1 and letter["reason"].startswith("MalformedEvent")

    server.signal(signal.SIGTERM)  # API and listener stop together, the listener's batch finished
    assert server.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once shut down
    output = server.output()
    assert "listener stopped" in output and output.index("listener stopped") < output.index("Finished server")


def test_an_early_update_is_parked_and_dead_letters_are_listed_and_replayed(service_factory, tmp_path: Path) -> None:
    service: Service = service_factory(sqlite_url(tmp_path), max_attempts=3)
    service.serve()
    tale = story(random.Random(111)).moved_to("40 Pembury Road, London E8 1DY")
    created, moved = tale.events

    service.publish_events([moved])  # its create is held back upstream: it waits, parked, never dead-lettered
    wait_until(lambda: service.count("parked_events"), 20, "the update to be parked")
    parked = service.cli("events", "parked")
    assert moved["id"] in parked.stdout and "TenureUpdatedEvent" in parked.stdout, parked.stdout
    assert "1 event(s) waiting" in parked.stdout

    service.publish_raw([b'{"id": "not an envelope"}'])  # poison: dead-lettered at once, with its reason
    wait_until(lambda: service.count("dead_letters"), 20, "the poison to be dead-lettered")
    listing = service.cli("events", "dead-letters")
    [line] = listing.stdout.splitlines()
    assert "MalformedEvent" in line, line
    assert "1 dead letter(s)" in listing.stderr

    service.publish_events([created])  # the create comes: the parked update is applied with it
    with service.api() as client:
        wait_until(lambda: service.accounts_on_the_api(client, tale.tenure_id), 20, "the account")
    service.wait_for_accounts([tale])
    assert service.count("parked_events") == 0 and service.count("dead_letters", "replayed_at IS NULL") == 1

    replayed = service.cli("events", "replay", "--all")  # published again: still poison, dead-lettered again
    assert "replayed 1 dead letter(s)" in replayed.stdout
    wait_until(lambda: service.count("dead_letters") == 2, 20, "the replayed poison to be dead-lettered again")
    [history, again] = json.loads(service.cli("events", "dead-letters", "--all", "--json").stdout)
    assert history["replayedAt"] is not None and again["replayedAt"] is None
    assert again["body"] == history["body"]
    assert expected_account(tale.tenure)["tenure"]["fullAddress"] == "40 Pembury Road, London E8 1DY"


def test_a_worker_killed_mid_drain_loses_nothing_and_applies_nothing_twice(service_factory, tmp_path: Path) -> None:
    service: Service = service_factory(sqlite_url(tmp_path), embedded_lease_seconds=1, worker_batch_size=10)
    stories = realistic_stories(200, seed=121)
    events = all_events(stories)
    service.migrate()
    service.publish_events(shuffled_with_duplicates(events, seed=122))
    # SIGKILL while a batch is in hand (claimed, not acked). A fast worker spends part of its time
    # between batches, holding none: a kill that lands there proves less, so the next worker is killed.
    for attempt in range(10):
        worker = service.worker(name=f"worker-killed-{attempt}")
        wait_until(
            lambda: (
                len(service.processed_ids()) >= 30 and service.count("embedded_messages", "leased_until IS NOT NULL")
            ),
            30,
            "a worker under way with a batch in hand",
        )
        worker.kill()
        if service.count("embedded_messages", "leased_until IS NOT NULL") > 0:
            break
    assert service.count("embedded_messages", "leased_until IS NOT NULL") > 0, "it died holding a batch"
    left = len({e["id"] for e in events}) - len(service.processed_ids())
    assert left > 0, "killed mid-drain"

    service.serve()  # the API with a fresh listener
    wait_until(lambda: drained(service, events), 60, "the restarted listener to drain the queue")

    service.check_books(stories, events)
    service.wait_for_accounts(stories)
    assert service.count("dead_letters") == 0


def test_sigterm_finishes_the_batch_in_hand_and_the_next_worker_takes_the_rest(service_factory, tmp_path: Path) -> None:
    service: Service = service_factory(sqlite_url(tmp_path), worker_batch_size=25)
    stories = realistic_stories(400, seed=131)  # enough that the worker cannot finish before the SIGTERM
    events = all_events(stories)
    service.migrate()
    service.publish_events(events)
    published = {e["id"] for e in events}
    worker = service.worker(name="worker-stopped")

    wait_until(lambda: len(service.processed_ids()) >= 30, 30, "the worker to get going")
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert "worker stopped" in worker.output()

    assert service.count("embedded_messages", "leased_until IS NOT NULL") == 0, "no batch left half done"
    queued = {str(value) for value in service.column("SELECT message_id FROM embedded_messages")}
    done = service.processed_ids()
    assert queued, "stopped before the end"
    assert {i.replace("-", "") for i in published - queued} <= done, "every message taken off was applied"

    service.serve()  # the API with a fresh listener
    wait_until(lambda: drained(service, events), 60, "the next listener to drain the queue")
    service.check_books(stories, events)
    service.wait_for_accounts(stories)


@pytest.mark.postgres
def test_two_workers_compete_for_the_queue_on_postgresql(service_factory, postgres_database: str) -> None:
    service: Service = service_factory(postgres_database, worker_batch_size=10)
    stories = realistic_stories(80, seed=141)
    events = all_events(stories)
    service.migrate()
    workers = service.workers("worker-a", "worker-b")  # both polling before anything is published
    service.publish_events(shuffled_with_duplicates(events, seed=142))

    wait_until(lambda: drained(service, events), 60, "two workers to drain the queue")

    service.check_books(stories, events)
    service.check_accounts_in_database(stories)
    assert service.count("dead_letters") == 0
    stop_each_having_applied(workers)


@pytest.mark.postgres
def test_the_database_dropping_connections_during_a_drain_loses_nothing(
    service_factory, postgres_database: str, postgres_server_url: str
) -> None:
    service: Service = service_factory(postgres_database, worker_batch_size=10)
    stories = realistic_stories(60, seed=151)
    events = all_events(stories)
    service.migrate()
    service.publish_events(shuffled_with_duplicates(events, seed=152))
    database = postgres_database.rsplit("/", 1)[1]
    admin = sa.create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    terminated = 0

    service.worker(name="worker-outage")
    wait_until(lambda: len(service.processed_ids()) >= 20, 30, "the worker to get going")
    service.engine.dispose()
    deadline = time.monotonic() + 2.5
    with admin.connect() as connection:
        while time.monotonic() < deadline:
            terminated += int(
                connection.execute(
                    sa.text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": database},
                ).scalar_one()
            )
            time.sleep(0.05)
    admin.dispose()
    assert terminated > 0

    wait_until(lambda: drained(service, events), 60, "the worker to drain the queue after the outage")
    service.check_books(stories, events)
    service.check_accounts_in_database(stories)
    assert service.count("dead_letters") == 0, "an outage is nobody's fault: nothing dead-lettered"


def test_a_locked_sqlite_database_makes_the_worker_wait_not_fail(service_factory, tmp_path: Path) -> None:
    service: Service = service_factory(sqlite_url(tmp_path), worker_batch_size=10)
    stories = realistic_stories(60, seed=161)
    events = all_events(stories)
    service.migrate()
    service.publish_events(shuffled_with_duplicates(events, seed=162))
    service.worker(name="worker-locked-out")
    wait_until(lambda: len(service.processed_ids()) >= 10, 30, "the worker to get going")

    lock = sqlite3.connect(tmp_path / "accounts.db", timeout=30, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    held_at = len(service.processed_ids())
    time.sleep(3)
    during = len(service.processed_ids())
    lock.execute("ROLLBACK")
    lock.close()
    assert during == held_at, "nothing was written while the database was locked"

    wait_until(lambda: drained(service, events), 60, "the worker to drain the queue after the lock")
    service.check_books(stories, events)
    service.check_accounts_in_database(stories)
    assert service.count("dead_letters") == 0
