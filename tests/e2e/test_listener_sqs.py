"""The finance listener end to end through AWS SNS FIFO -> SQS FIFO, against a moto server on loopback.

Production's shape: tenure events go to an SNS FIFO topic subscribed by the SQS FIFO
queue (raw delivery), one message group per tenure, the event id as deduplication id.
Each test has its own topic and queues (deleted afterwards).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest

from tests.conftest import unique
from tests.fixtures.service import Service, wait_until
from tests.fixtures.tenures import (
    SAMPLE_FILE,
    all_events,
    malformed_bodies,
    realistic_stories,
    sample_stories,
    story,
    unknown_event,
)

pytestmark = pytest.mark.sqs

REGION = "eu-west-2"


@pytest.fixture
def aws(sqs_endpoint: str) -> Iterator[dict[str, str]]:
    """This test's own topic and queues, as ACCOUNTS_* settings (the broker URL names the queue)."""
    queue = unique("e2e-tenure-events")
    names = {
        "queue": queue,
        "sqs_endpoint_url": sqs_endpoint,
        "sqs_topic_name": f"{queue}-topic",
        "sqs_accounts_topic_name": f"{queue}-accounts",
        "aws_region": REGION,
        "worker_poll_seconds": "1",  # long polling: one ReceiveMessage a second while idle
    }
    yield names
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=sqs_endpoint)
    sns = boto3.client("sns", region_name=REGION, endpoint_url=sqs_endpoint)
    for url in sqs.list_queues(QueueNamePrefix=queue).get("QueueUrls", []):
        sqs.delete_queue(QueueUrl=url)
    for topic in sns.list_topics()["Topics"]:
        if queue in topic["TopicArn"]:
            sns.delete_topic(TopicArn=topic["TopicArn"])


def sqs_service(service_factory, aws: dict[str, str], database_url: str, **settings: object) -> Service:
    options = {key: value for key, value in aws.items() if key != "queue"}
    service: Service = service_factory(database_url, f"sqs://{aws['queue']}", **options, **settings)
    return service


def all_applied(service: Service, events: list[dict]) -> bool:
    return len(service.processed_ids()) == len({event["id"] for event in events})


def test_published_events_become_accounts_on_the_api(aws: dict[str, str], service_factory, tmp_path: Path) -> None:
    service = sqs_service(service_factory, aws, f"sqlite:///{tmp_path / 'accounts.db'}")
    service.serve()
    demo = sample_stories()
    others = realistic_stories(12, seed=301)
    posted = story(random.Random(302)).retyped("LEA")
    bad = malformed_bodies()[:4]

    assert "published 26 events" in service.cli("events", "publish", str(SAMPLE_FILE)).stdout
    # In order within each tenure (FIFO groups), every event twice: SQS drops the copy by its id.
    twice = [event for event in all_events(others) for _ in range(2)]
    service.publish_events([*twice, unknown_event()])
    service.publish_raw(body for _, body, _ in bad)
    with service.api() as client:
        response = client.post("/events", json=posted.events)
        assert response.status_code == 202, response.text

    stories = [*demo, *others, posted]
    events = all_events(stories)
    service.wait_for_accounts(stories, timeout=60)
    wait_until(lambda: all_applied(service, events), 30, "every event to be recorded")
    wait_until(lambda: service.count("dead_letters") == len(bad), 30, "the malformed events to be dead-lettered")

    service.check_books(stories, events)
    letters = service.dead_letters()
    assert sorted(letter["body"].encode() for letter in letters) == sorted(body for _, body, _ in bad)


def test_an_update_ahead_of_its_create_is_parked_and_never_holds_its_group(
    aws: dict[str, str], service_factory, tmp_path: Path
) -> None:
    """FIFO keeps a tenure's events in order, so an update can only precede its create if it was
    published first (a replay, a hand-made file). Received alone (here: batches of one), it is
    parked and acked at once, so its group is not held: the create behind it goes straight
    through and applies it. Nothing is dead-lettered."""
    service = sqs_service(
        service_factory, aws, f"sqlite:///{tmp_path / 'accounts.db'}", max_attempts=3, worker_batch_size=1
    )
    service.serve()
    tale = story(random.Random(311)).moved_to("7 Amhurst Road, London E8 2PX")
    created, moved = tale.events
    bystander = story(random.Random(312))

    service.publish_events([moved, created, *bystander.events])

    service.wait_for_accounts([bystander, tale], timeout=30)
    assert service.count("dead_letters") == 0 and service.count("parked_events") == 0
    service.check_books([tale, bystander], all_events([tale, bystander]))


def test_a_worker_killed_mid_drain_loses_nothing_and_applies_nothing_twice(
    aws: dict[str, str], service_factory, tmp_path: Path
) -> None:
    service = sqs_service(
        service_factory, aws, f"sqlite:///{tmp_path / 'accounts.db'}", sqs_visibility_timeout=2, worker_batch_size=10
    )
    stories = realistic_stories(40, seed=321)
    events = all_events(stories)
    first = service.worker(name="worker-killed")
    # Published from a thread while we watch: a worker keeping pace with the publisher could otherwise
    # have applied everything before the kill.
    with ThreadPoolExecutor(1) as publisher:
        published = publisher.submit(service.publish_events, events)
        wait_until(lambda: len(service.processed_ids()) >= 15, 30, "the first worker to get going", pause=0.02)
        first.kill()  # SIGKILL: what it had received reappears when the visibility timeout ends
        published.result()
    assert not all_applied(service, events), "killed mid-drain"

    service.serve()
    distinct = len({event["id"] for event in events})
    wait_until(
        lambda: len(service.processed_ids()) + service.count("dead_letters") == distinct,
        60,
        "the restarted listener to apply or dead-letter every event",
    )
    # moto (unlike SQS) hands a dead consumer's in-flight FIFO messages back out of group order:
    # an update can come back before its create, hold the group, and end in the dead-letter store.
    # Nothing is lost: replaying it is the operator's remedy, and it converges.
    if service.count("dead_letters"):
        service.cli("events", "replay", "--all")
    wait_until(lambda: all_applied(service, events), 60, "every event to be applied")
    service.check_books(stories, events)
    service.wait_for_accounts(stories)
