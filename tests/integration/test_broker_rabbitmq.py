"""The RabbitMQ adapter against the real server: delivery, acks, delayed retries, crashes, outages."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import pika
import pika.exceptions
import pytest

from accounts.adapters.brokers.rabbitmq import RabbitMqBroker, retry_delay_ms
from accounts.service.ports import ACCOUNTS_TOPIC, TENURE_TOPIC, ReceivedMessage, TransientError
from tests.conftest import free_port, unique

pytestmark = pytest.mark.rabbitmq

BrokerFactory = Callable[..., RabbitMqBroker]


@pytest.fixture
def names() -> dict[str, str]:
    return {
        "tenure_exchange": unique("test_tenure_ex"),
        "tenure_queue": unique("test_tenure_q"),
        "accounts_exchange": unique("test_accounts_ex"),
    }


@pytest.fixture
def make_broker(rabbitmq_url: str, names: dict[str, str]) -> Iterator[BrokerFactory]:
    """Brokers on this test's own exchanges and queues, all removed afterwards."""
    made: list[RabbitMqBroker] = []

    def make(url: str = rabbitmq_url, **overrides: object) -> RabbitMqBroker:
        broker = RabbitMqBroker(url, **{**names, **overrides})  # type: ignore[arg-type]
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()
    queue = names["tenure_queue"]
    retry_queues = [f"{queue}.retry.{ms}" for ms in (0, 100, 200, 300, 500, 1000, 1500, 3000)]
    _delete(
        rabbitmq_url,
        [queue, f"{queue}.dead", *retry_queues],
        [names["tenure_exchange"], names["accounts_exchange"], f"{queue}.dead"],
    )


def _delete(url: str, queues: list[str], exchanges: list[str]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        for queue in queues:
            channel = connection.channel()
            try:
                channel.queue_delete(queue)
                channel.close()
            except pika.exceptions.ChannelClosedByBroker:
                pass  # never declared
        channel = connection.channel()
        for exchange in exchanges:
            channel.exchange_delete(exchange)
    finally:
        connection.close()


def receive_one(broker: RabbitMqBroker, timeout: float = 5.0) -> ReceivedMessage:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = broker.receive(1, 0.5)
        if messages:
            return messages[0]
    raise AssertionError(f"nothing delivered within {timeout}s")


def receive_all(broker: RabbitMqBroker, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
    got: list[ReceivedMessage] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got.extend(broker.receive(count - len(got), 0.5))
    return got


def test_publish_then_receive_the_same_body_on_first_attempt(make_broker: BrokerFactory) -> None:
    publisher, consumer = make_broker(), make_broker()
    publisher.publish(TENURE_TOPIC, b'{"id": 1}', group_id="tenure-1", message_id="event-1")

    message = receive_one(consumer)

    assert message.body == b'{"id": 1}'
    assert message.attempts == 1
    assert message.message_id == "event-1"


def test_publish_many_delivers_the_whole_batch_in_order_with_its_ids(make_broker: BrokerFactory) -> None:
    publisher, consumer = make_broker(), make_broker(prefetch=1000)
    items = [(f'{{"n": {n}}}'.encode(), f"tenure-{n % 7}", f"event-{n}") for n in range(600)]

    publisher.publish_many(TENURE_TOPIC, items)
    publisher.publish_many(TENURE_TOPIC, [])  # nothing to send: nothing sent, nothing raised

    received = receive_all(consumer, len(items))
    assert [(m.body, m.message_id, m.attempts) for m in received] == [(b, mid, 1) for b, _, mid in items]
    consumer.ack_many(received)
    assert consumer.receive(10, 0.3) == []


def test_ack_removes_the_message_for_good(make_broker: BrokerFactory) -> None:
    publisher, consumer = make_broker(), make_broker()
    publisher.publish(TENURE_TOPIC, b"{}", group_id="g", message_id="m")
    consumer.ack(receive_one(consumer))

    assert consumer.receive(10, 0.3) == []
    consumer.close()  # an unacked message would now go back to the queue
    assert make_broker().receive(10, 0.5) == []


def test_a_batch_is_acked_for_good_except_the_one_held_back(make_broker: BrokerFactory) -> None:
    publisher, consumer = make_broker(prefetch=20), make_broker(prefetch=20)
    for n in range(10):
        publisher.publish(TENURE_TOPIC, b"%d" % n, group_id="g", message_id=f"m{n}")
    received = receive_all(consumer, 10)
    assert [m.body for m in received] == [b"%d" % n for n in range(10)]

    held_back = received[6]
    consumer.ack_many([m for m in received if m is not held_back])
    consumer.ack_many(received[:2])  # twice: harmless, and the channel stays open
    consumer.close()  # only the one not acked goes back to the queue

    again = receive_all(make_broker(), 10, timeout=1.5)
    assert [m.body for m in again] == [b"6"]


def test_retry_later_redelivers_after_the_delay_with_one_more_attempt(make_broker: BrokerFactory) -> None:
    publisher, consumer = make_broker(), make_broker()
    publisher.publish(TENURE_TOPIC, b'{"n": 1}', group_id="g", message_id="m")
    first = receive_one(consumer)

    retried_at = time.monotonic()
    consumer.retry_later(first, 1.0)
    assert consumer.receive(10, 0.5) == []  # not before the delay

    second = receive_one(consumer)
    assert time.monotonic() - retried_at >= 0.95
    assert (second.body, second.message_id, second.attempts) == (b'{"n": 1}', "m", 2)

    consumer.retry_later(second, 0.2)
    assert receive_one(consumer).attempts == 3


def test_a_long_retry_does_not_hold_back_a_shorter_one(make_broker: BrokerFactory) -> None:
    publisher, consumer = make_broker(), make_broker()
    publisher.publish(TENURE_TOPIC, b'"slow"', group_id="a", message_id="slow")
    publisher.publish(TENURE_TOPIC, b'"fast"', group_id="b", message_id="fast")
    slow, fast = receive_all(consumer, 2)

    consumer.retry_later(slow, 3.0)
    consumer.retry_later(fast, 0.3)

    started = time.monotonic()
    assert receive_one(consumer).message_id == "fast"
    assert time.monotonic() - started < 2.0


def test_messages_of_one_group_keep_their_order(make_broker: BrokerFactory) -> None:
    publisher, consumer = make_broker(), make_broker(prefetch=7)
    for n in range(30):
        publisher.publish(TENURE_TOPIC, str(n).encode(), group_id="tenure-1", message_id=f"e{n}")

    got = []
    while len(got) < 30:
        batch = consumer.receive(4, 1.0)
        assert batch, "queue ran dry early"
        for message in batch:
            got.append(int(message.body))
            consumer.ack(message)

    assert got == list(range(30))


def test_receive_on_an_empty_queue_returns_after_about_wait_seconds(make_broker: BrokerFactory) -> None:
    consumer = make_broker()
    consumer.receive(1, 0)  # connect first: only the wait itself is timed

    started = time.monotonic()
    assert consumer.receive(10, 1.0) == []
    elapsed = time.monotonic() - started

    assert 0.9 <= elapsed < 4.0


def test_a_message_left_unacked_by_a_crashed_consumer_is_redelivered(make_broker: BrokerFactory) -> None:
    publisher, crashed = make_broker(), make_broker()
    publisher.publish(TENURE_TOPIC, b"{}", group_id="g", message_id="m")
    assert receive_one(crashed).attempts == 1
    crashed.close()  # neither acked nor retried

    again = receive_one(make_broker())
    assert again.message_id == "m"
    assert again.attempts == 2


def test_attempts_add_up_across_a_retry_and_a_crash(make_broker: BrokerFactory) -> None:
    publisher, consumer = make_broker(), make_broker()
    publisher.publish(TENURE_TOPIC, b"{}", group_id="g", message_id="m")
    consumer.retry_later(receive_one(consumer), 0)
    assert receive_one(consumer).attempts == 2
    consumer.close()

    assert receive_one(make_broker()).attempts == 3


def test_account_events_go_to_the_accounts_exchange(
    make_broker: BrokerFactory, names: dict[str, str], rabbitmq_url: str
) -> None:
    make_broker().publish(TENURE_TOPIC, b"{}", group_id="g", message_id="declare")  # exchanges exist now
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, names["accounts_exchange"], routing_key="#")

        make_broker().publish(ACCOUNTS_TOPIC, b'{"account": 1}', group_id="tenure-9", message_id="acc-1")

        method, properties, body = channel.basic_get(queue, auto_ack=True)
        assert body == b'{"account": 1}'
        assert method.routing_key == "tenure-9"
        assert properties.message_id == "acc-1"
        assert properties.delivery_mode == 2
        assert properties.content_type == "application/json"
    finally:
        connection.close()


def test_unknown_topic_is_refused(make_broker: BrokerFactory) -> None:
    with pytest.raises(ValueError):
        make_broker().publish("nope", b"{}", group_id="g", message_id="m")


def test_purge_and_dead_letter_count(make_broker: BrokerFactory) -> None:
    broker = make_broker()
    for n in range(3):
        broker.publish(TENURE_TOPIC, b"{}", group_id="g", message_id=f"m{n}")
    assert len(broker.receive(1, 1.0)) == 1  # held unacked by this very broker: purged too
    assert broker.purge() == 3
    assert broker.dead_letter_count() == 0
    assert broker.receive(10, 0.3) == []


def test_retry_buckets_round_up() -> None:
    delays = (0, 0.01, 0.1, 0.25, 1, 9.95, 10, 10.2, 59.5)
    expected = (0, 100, 100, 300, 1000, 10_000, 10_000, 11_000, 60_000)
    assert tuple(retry_delay_ms(seconds) for seconds in delays) == expected


def test_unreachable_server_is_a_transient_error(make_broker: BrokerFactory, rabbitmq_url: str) -> None:
    parts = urlsplit(rabbitmq_url)
    down = urlunsplit(parts._replace(netloc=f"guest:guest@127.0.0.1:{free_port()}"))
    broker = make_broker(down)
    with pytest.raises(TransientError):
        broker.publish(TENURE_TOPIC, b"{}", group_id="g", message_id="m")
    with pytest.raises(TransientError):
        broker.receive(1, 0.1)


class _CuttableProxy:
    """A TCP proxy to RabbitMQ whose live connections can be cut, like a server restart would."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self.lock:
                self.sockets += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()
        self.cut()


@pytest.fixture
def proxy(rabbitmq_url: str) -> Iterator[_CuttableProxy]:
    parts = urlsplit(rabbitmq_url)
    running = _CuttableProxy((parts.hostname or "127.0.0.1", parts.port or 5672))
    yield running
    running.close()


def test_a_lost_connection_is_transient_and_the_next_call_reconnects(
    make_broker: BrokerFactory, proxy: _CuttableProxy, rabbitmq_url: str
) -> None:
    parts = urlsplit(rabbitmq_url)
    through_proxy = urlunsplit(parts._replace(netloc=f"guest:guest@127.0.0.1:{proxy.port}"))
    make_broker().publish(TENURE_TOPIC, b'"x"', group_id="g", message_id="m")
    consumer, publisher = make_broker(through_proxy), make_broker(through_proxy)
    publisher.publish(TENURE_TOPIC, b'"warm-up"', group_id="g2", message_id="w")
    in_flight = receive_one(consumer)
    assert in_flight.message_id == "m"

    proxy.cut()  # the server "restarts": every connection drops
    time.sleep(0.3)

    with pytest.raises(TransientError):
        consumer.ack(in_flight)  # its channel is gone; RabbitMQ requeued it
    publisher.publish(TENURE_TOPIC, b'"after"', group_id="g3", message_id="after")  # reconnects itself
    proxy.cut()
    time.sleep(0.3)
    publisher.publish_many(TENURE_TOPIC, [(b'"batch"', "g4", "batch")])  # its transaction channel too

    redelivered = {m.message_id: m for m in receive_all(consumer, 4)}
    assert set(redelivered) == {"m", "w", "after", "batch"}
    assert redelivered["m"].attempts == 2
    for message in redelivered.values():
        consumer.ack(message)
    assert consumer.receive(10, 0.3) == []
