"""The SQS adapter against a local SQS/SNS endpoint (moto server), straight to the queue and via SNS."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import boto3
import pytest

from accounts.adapters.brokers.sqs import SqsBroker, dead_letter_name, fifo_name, sqs_id
from accounts.service.ports import ACCOUNTS_TOPIC, TENURE_TOPIC, ReceivedMessage, TransientError
from tests.conftest import free_port, unique

pytestmark = pytest.mark.sqs

REGION = "eu-west-2"
BrokerFactory = Callable[..., SqsBroker]


@pytest.fixture(params=["queue", "sns"])
def mode(request: pytest.FixtureRequest) -> str:
    """Tenure events straight into the queue, or through an SNS FIFO topic (production's shape)."""
    return str(request.param)


@pytest.fixture
def make_broker(sqs_endpoint: str) -> Iterator[BrokerFactory]:
    """Brokers on this test's own queues and topics, all deleted afterwards."""
    queue_name = unique("tenure-events")
    made: list[SqsBroker] = []

    def make(*, sns: bool = False, **overrides: object) -> SqsBroker:
        arguments: dict[str, object] = {
            "queue_name": queue_name,
            "region": REGION,
            "endpoint_url": sqs_endpoint,
            "topic_name": f"{queue_name}-topic" if sns else None,
            "accounts_topic_name": f"{queue_name}-accounts",
            **overrides,
        }
        broker = SqsBroker(**arguments)  # type: ignore[arg-type]
        made.append(broker)
        return broker

    yield make
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=sqs_endpoint)
    sns = boto3.client("sns", region_name=REGION, endpoint_url=sqs_endpoint)
    for broker in made:
        broker.close()
    for url in sqs.list_queues(QueueNamePrefix=queue_name).get("QueueUrls", []):
        sqs.delete_queue(QueueUrl=url)
    for topic in sns.list_topics()["Topics"]:
        if queue_name in topic["TopicArn"]:
            sns.delete_topic(TopicArn=topic["TopicArn"])


def receive_one(broker: SqsBroker, timeout: float = 6.0) -> ReceivedMessage:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = broker.receive(1, 1)
        if messages:
            return messages[0]
    raise AssertionError(f"nothing delivered within {timeout}s")


def test_publish_then_receive_the_same_body_on_first_attempt(make_broker: BrokerFactory, mode: str) -> None:
    broker = make_broker(sns=mode == "sns")
    broker.publish(TENURE_TOPIC, b'{"id": 1}', group_id="tenure-1", message_id="event-1")

    message = receive_one(broker)

    assert message.body == b'{"id": 1}'
    assert message.attempts == 1
    assert message.message_id == "event-1"


def test_ack_removes_the_message_for_good(make_broker: BrokerFactory) -> None:
    broker = make_broker(visibility_timeout=1)
    broker.publish(TENURE_TOPIC, b"{}", group_id="g", message_id="m")
    broker.ack(receive_one(broker))

    time.sleep(1.2)  # past the visibility timeout: an undeleted message would be back
    assert broker.receive(10, 1) == []


def test_retry_later_redelivers_after_the_delay_with_one_more_attempt(make_broker: BrokerFactory) -> None:
    broker = make_broker(visibility_timeout=30)
    broker.publish(TENURE_TOPIC, b'{"n": 1}', group_id="g", message_id="m")
    first = receive_one(broker)

    retried_at = time.monotonic()
    broker.retry_later(first, 1.5)  # rounded up to 2 s: SQS counts whole seconds
    assert broker.receive(10, 1) == []  # not before the delay

    second = receive_one(broker)
    assert time.monotonic() - retried_at >= 1.5
    assert (second.body, second.message_id, second.attempts) == (b'{"n": 1}', "m", 2)


def test_a_message_not_acked_reappears_after_its_visibility_timeout(make_broker: BrokerFactory) -> None:
    broker = make_broker(visibility_timeout=1)
    broker.publish(TENURE_TOPIC, b"{}", group_id="g", message_id="m")
    assert receive_one(broker).attempts == 1  # and the consumer "crashes"

    again = receive_one(broker)
    assert again.message_id == "m"
    assert again.attempts == 2


def test_messages_of_one_group_keep_their_order(make_broker: BrokerFactory, mode: str) -> None:
    broker = make_broker(sns=mode == "sns")
    for n in range(15):
        broker.publish(TENURE_TOPIC, str(n).encode(), group_id="tenure-1", message_id=f"e{n}")

    got: list[int] = []
    deadline = time.monotonic() + 10
    while len(got) < 15 and time.monotonic() < deadline:
        batch = broker.receive(50, 1)
        got.extend(int(message.body) for message in batch)
        broker.ack_many(batch)

    assert got == list(range(15))


def test_receive_on_an_empty_queue_returns_after_about_wait_seconds(make_broker: BrokerFactory) -> None:
    broker = make_broker()
    broker.receive(1, 0)  # create the queues first: only the wait itself is timed

    started = time.monotonic()
    assert broker.receive(10, 1.0) == []
    assert time.monotonic() - started < 4.0


def test_the_same_message_id_twice_is_delivered_once(make_broker: BrokerFactory, mode: str) -> None:
    broker = make_broker(sns=mode == "sns")
    broker.publish(TENURE_TOPIC, b'{"v": 1}', group_id="g", message_id="event-1")
    broker.publish(TENURE_TOPIC, b'{"v": 1}', group_id="g", message_id="event-1")

    broker.ack(receive_one(broker))
    assert broker.receive(10, 1) == []


def test_long_and_odd_ids_are_hashed_into_valid_ones(make_broker: BrokerFactory) -> None:
    broker = make_broker()
    long_id = "x" * 200
    broker.publish(TENURE_TOPIC, b"{}", group_id="tenure with spaces", message_id=long_id)

    assert receive_one(broker).message_id == sqs_id(long_id)
    assert len(sqs_id(long_id)) == 64
    assert sqs_id("2b5b4f1e-0c3a-4d7e-9d8f-6a1b2c3d4e5f") == "2b5b4f1e-0c3a-4d7e-9d8f-6a1b2c3d4e5f"


def test_too_many_receives_end_in_the_dead_letter_queue(make_broker: BrokerFactory) -> None:
    broker = make_broker(visibility_timeout=1, max_receive_count=2)
    broker.publish(TENURE_TOPIC, b"{}", group_id="g", message_id="poison")
    assert receive_one(broker).attempts == 1
    assert receive_one(broker).attempts == 2

    time.sleep(1.2)
    assert broker.receive(10, 1) == []
    assert broker.dead_letter_count() == 1


def test_queue_names_are_fifo(make_broker: BrokerFactory) -> None:
    broker = make_broker(sns=True)
    assert broker.queue_url.endswith(".fifo")
    assert broker.dead_letter_queue_url.endswith("-dead.fifo")
    assert (broker.tenure_topic_arn or "").endswith(".fifo")
    assert fifo_name("a.fifo") == "a.fifo"
    assert dead_letter_name("accounts-tenure-events") == "accounts-tenure-events-dead.fifo"


def test_a_second_broker_reuses_the_queue_and_the_subscription(make_broker: BrokerFactory, sqs_endpoint: str) -> None:
    first, second = make_broker(sns=True), make_broker(sns=True)
    assert first.queue_url == second.queue_url

    sns = boto3.client("sns", region_name=REGION, endpoint_url=sqs_endpoint)
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=first.tenure_topic_arn)["Subscriptions"]
    assert len(subscriptions) == 1

    second.publish(TENURE_TOPIC, b"{}", group_id="g", message_id="once")
    assert receive_one(first).message_id == "once"
    assert first.receive(10, 1) == []


def test_account_events_go_to_their_own_queue(make_broker: BrokerFactory, sqs_endpoint: str) -> None:
    broker = make_broker()
    broker.publish(ACCOUNTS_TOPIC, b'{"account": 1}', group_id="tenure-9", message_id="acc-1")

    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=sqs_endpoint)
    response = sqs.receive_message(
        QueueUrl=broker.accounts_target, WaitTimeSeconds=1, MessageSystemAttributeNames=["MessageGroupId"]
    )
    [message] = response["Messages"]
    assert message["Body"] == '{"account": 1}'
    assert message["Attributes"]["MessageGroupId"] == "tenure-9"
    assert broker.receive(10, 0) == []  # not on the tenure queue


def test_account_events_go_to_their_own_topic_in_sns_mode(make_broker: BrokerFactory, sqs_endpoint: str) -> None:
    broker = make_broker(sns=True)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=sqs_endpoint)
    sns = boto3.client("sns", region_name=REGION, endpoint_url=sqs_endpoint)
    listener_url = sqs.create_queue(
        QueueName=unique("accounts-listener").replace("_", "-") + ".fifo", Attributes={"FifoQueue": "true"}
    )["QueueUrl"]
    try:
        listener_arn = sqs.get_queue_attributes(QueueUrl=listener_url, AttributeNames=["QueueArn"])
        sns.subscribe(
            TopicArn=broker.accounts_target,
            Protocol="sqs",
            Endpoint=listener_arn["Attributes"]["QueueArn"],
            Attributes={"RawMessageDelivery": "true"},
        )

        broker.publish(ACCOUNTS_TOPIC, b'{"account": 1}', group_id="tenure-9", message_id="acc-1")

        [message] = sqs.receive_message(QueueUrl=listener_url, WaitTimeSeconds=1)["Messages"]
        assert message["Body"] == '{"account": 1}'
        assert broker.receive(10, 0) == []
    finally:
        sqs.delete_queue(QueueUrl=listener_url)


def test_stale_receipts_are_transient(make_broker: BrokerFactory) -> None:
    broker = make_broker(visibility_timeout=1)
    broker.publish(TENURE_TOPIC, b"{}", group_id="g", message_id="m")
    first = receive_one(broker)
    second = receive_one(broker)  # the first delivery's visibility ran out
    assert second.attempts == 2

    broker.ack(second)
    with pytest.raises(TransientError, match=r"ReceiptHandleIsInvalid|MessageNotInflight"):
        broker.retry_later(first, 5)


def test_unreachable_endpoint_is_a_transient_error() -> None:
    broker = SqsBroker(queue_name="nowhere", region=REGION, endpoint_url=f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(TransientError):
            broker.receive(1, 0)
        with pytest.raises(TransientError):
            broker.publish(TENURE_TOPIC, b"{}", group_id="g", message_id="m")
    finally:
        broker.close()


def test_a_deleted_queue_is_recreated_on_the_next_call(make_broker: BrokerFactory, sqs_endpoint: str) -> None:
    broker = make_broker()
    url = broker.queue_url
    boto3.client("sqs", region_name=REGION, endpoint_url=sqs_endpoint).delete_queue(QueueUrl=url)

    with pytest.raises(TransientError):
        broker.receive(1, 0)
    broker.publish(TENURE_TOPIC, b"{}", group_id="g", message_id="after")
    assert receive_one(broker).message_id == "after"
