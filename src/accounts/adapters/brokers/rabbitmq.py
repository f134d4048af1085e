"""RabbitMQ adapter for the `MessageBroker` port.

Why it looks like this:

* RabbitMQ has no built-in delayed redelivery and no delivery counter on classic queues, yet the
  worker needs both (it backs off, then dead-letters after N attempts in its own table). So the
  attempt count travels with the message in an `x-attempts` header, and a delay is a hop through a
  consumer-less "retry" queue whose expired messages dead-letter back into the main queue.
* One retry queue per delay bucket (`<queue>.retry.<ms>`, queue-level TTL) rather than one retry
  queue with per-message expirations: RabbitMQ only expires messages at the head of a queue, so in a
  single shared queue a 60 s retry would hold back a 1 s retry queued behind it. Bucket queues
  delete themselves (`x-expires`) once unused.
* Publisher confirms make `publish` return only once the broker has taken responsibility for the
  message, which is what the port promises. `publish_many` keeps the promise for a whole batch with
  a transaction on a channel of its own (a channel is in confirm or in transaction mode, never
  both): every message, then one commit, which RabbitMQ answers once the batch is on disk. pika's
  BlockingConnection waits for each confirm in turn, a round trip and an fsync a message (a few
  hundred a second); the commit is one of each for the batch, and all or nothing.
* pika's BlockingConnection is not thread-safe, so an instance must only be used by one thread at a
  time; the worker keeps one instance for consuming and another for publishing. Connections are
  opened lazily and re-opened after any failure, so a RabbitMQ restart surfaces as a
  `TransientError` (at most) instead of killing the process.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import pika
import pika.exceptions
import sqlalchemy as sa

from accounts.service.ports import (
    ACCOUNTS_TOPIC,
    TENURE_TOPIC,
    MessageBroker,
    QueueDepth,
    ReceivedMessage,
    TransientError,
)
from accounts.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

ATTEMPTS_HEADER = "x-attempts"
# Headers RabbitMQ adds when dead-lettering; dropped from retried copies so they do not pile up.
_DEAD_LETTER_HEADERS = ("x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason")
# Redeclaring a bucket queue renews its x-expires lease; redeclare at most this often (seconds).
_RETRY_REDECLARE_SECONDS = 60.0
# A bucket queue outlives its last redeclare by its TTL plus this margin (ms), so no message in it
# can still be waiting when it is deleted.
_RETRY_EXPIRES_MARGIN_MS = 300_000
# Channel/connection replies that mean the declared topology conflicts with what exists: not transient.
_CONFIGURATION_REPLY_CODES = frozenset({403, 406})

_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    OSError,
)


class BrokerConfigurationError(RuntimeError):
    """The broker refused our topology or credentials: retrying will not help."""


@dataclass(frozen=True)
class _Receipt:
    """Identifies one delivery on one connection; stale once the connection is replaced."""

    generation: int
    delivery_tag: int
    properties: Any  # pika.BasicProperties of the delivery, reused for the retried copy


def retry_delay_ms(delay_seconds: float) -> int:
    """The retry bucket for a delay: rounded up to 100 ms under 10 s, to whole seconds above.

    Rounding keeps the number of bucket queues small (about 150 for delays up to a minute) and
    never delivers earlier than asked.
    """
    ms = max(0, math.ceil(delay_seconds * 1000))
    step = 100 if ms < 10_000 else 1000
    return -(-ms // step) * step


def attempts_of(properties: Any, redelivered: bool) -> int:
    """Deliveries so far, this one included.

    `x-attempts` counts the deliveries before the last `retry_later`. A delivery RabbitMQ itself
    repeats (consumer crashed or connection lost before the ack) is flagged `redelivered`, which
    adds one however many times it happened: classic queues keep no counter. Quorum queues do
    (`x-delivery-count`), and it is used when present.
    """
    headers = getattr(properties, "headers", None) or {}
    try:
        earlier = max(0, int(headers.get(ATTEMPTS_HEADER, 0)))
    except (TypeError, ValueError):
        earlier = 0
    try:
        crashed = int(headers["x-delivery-count"])
    except (KeyError, TypeError, ValueError):
        crashed = 1 if redelivered else 0
    return earlier + crashed + 1


class RabbitMqBroker(MessageBroker):
    """`MessageBroker` over RabbitMQ (pika BlockingConnection). One thread at a time per instance.

    Topology, declared idempotently on every (re)connect:

    * `tenure_exchange` (durable topic) -> `tenure_queue` (durable, bound with `#`), whose rejected
      messages dead-letter to the `<tenure_queue>.dead` exchange and queue (an operator backstop);
    * `<tenure_queue>.retry.<ms>` bucket queues, declared on demand, dead-lettering back to
      `tenure_queue` when their TTL expires;
    * `accounts_exchange` (durable topic) for the account events this service publishes.

    Ordering per `group_id` holds with a single consumer on the queue (RabbitMQ has no message
    groups); a retried message rejoins the queue behind later messages of its group.
    """

    # A BlockingConnection answers heartbeats only when its thread calls into it: while a slow
    # message is handled, the listener lets it every second, well inside any heartbeat timeout.
    keepalive_interval = 1.0

    @classmethod
    def from_settings(cls, settings: Settings, engine: sa.Engine) -> RabbitMqBroker:
        """ACCOUNTS_BROKER_URL=amqp://...; the prefetch is the listener's batch."""
        return cls(
            settings.broker_url,
            tenure_exchange=settings.tenure_exchange,
            tenure_queue=settings.tenure_queue,
            accounts_exchange=settings.accounts_exchange,
            prefetch=settings.worker_batch_size,
        )

    def __init__(
        self,
        url: str,
        *,
        tenure_exchange: str,
        tenure_queue: str,
        accounts_exchange: str,
        prefetch: int = 50,
    ) -> None:
        self._parameters = pika.URLParameters(url)
        if self._parameters.blocked_connection_timeout is None:
            # A broker under a memory/disk alarm blocks publishers; fail (transiently) rather than hang.
            self._parameters.blocked_connection_timeout = 30
        self.tenure_exchange = tenure_exchange
        self.tenure_queue = tenure_queue
        self.accounts_exchange = accounts_exchange
        self.dead_letter_queue = f"{tenure_queue}.dead"
        self._prefetch = max(1, prefetch)
        self._connection: Any = None
        self._channel: Any = None
        self._batch_channel: Any = None  # in transaction mode, on the same connection (publish_many)
        self._generation = 0
        self._consumer_tag: str | None = None
        self._consumer_cancelled = False
        self._buffer: deque[ReceivedMessage] = deque()
        self._unacked: set[int] = set()
        self._retry_declared: dict[int, float] = {}

    # -- the port -------------------------------------------------------------------------------

    def publish(self, topic: str, body: bytes, *, group_id: str, message_id: str) -> None:
        """Publish persistently and wait for the broker's confirm; routing key = group_id."""
        exchange = self._exchange_for(topic)
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message_id,
        )
        self._call_reconnecting("publish", lambda channel: channel.basic_publish(exchange, group_id, body, properties))

    def publish_many(self, topic: str, items: Sequence[tuple[bytes, str, str]]) -> None:
        """Publish the batch in one transaction: returns once the broker holds all of it; raises having
        published none of it, unless the connection was lost with the commit's answer (then, as with a lost
        confirm, the retry publishes it again: the listener skips events it has seen)."""
        if not items:
            return
        exchange = self._exchange_for(topic)

        def publish_all(channel: Any) -> None:
            batch = self._transaction_channel()
            for body, group_id, message_id in items:
                properties = pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=message_id,
                )
                batch.basic_publish(exchange, group_id, body, properties)
            batch.tx_commit()

        self._call_reconnecting("publish", publish_all)

    def receive(self, max_messages: int, wait_seconds: float) -> list[ReceivedMessage]:
        """Up to max_messages, returning as soon as any are there or after about wait_seconds."""
        if max_messages <= 0:
            return []
        if self._consumer_cancelled:  # the queue was deleted or failed over: start afresh
            self._drop()
        self._call_reconnecting("receive", lambda channel: self._fill_buffer(channel, wait_seconds))
        batch: list[ReceivedMessage] = []
        while self._buffer and len(batch) < max_messages:
            batch.append(self._buffer.popleft())
        return batch

    def ack(self, message: ReceivedMessage) -> None:
        """Acknowledge; TransientError if the delivery's connection is gone (it will be redelivered)."""
        receipt = self._live_receipt(message)
        if receipt.delivery_tag not in self._unacked:
            return  # already acked or retried: acking twice would close the channel
        with self._transient("ack"):
            self._channel.basic_ack(receipt.delivery_tag)
        self._unacked.discard(receipt.delivery_tag)

    def ack_many(self, messages: Sequence[ReceivedMessage]) -> None:
        """Acknowledge a batch in as few frames as RabbitMQ allows.

        One `multiple` ack covers the longest run of this channel's unacked deliveries, oldest
        first, that are all in the batch (usually the whole batch); anything after a gap (a
        delivery still being handled, or retried) is acked alone. Acking a thousand deliveries
        one flushed frame at a time cost the listener about a sixth of its time.
        """
        tags: set[int] = set()
        stale = 0
        for message in messages:
            try:
                tags.add(self._live_receipt(message).delivery_tag)
            except TransientError:
                stale += 1
        tags &= self._unacked  # already acked or retried: acking twice would close the channel
        if tags:
            upto: int | None = None
            for tag in sorted(self._unacked):
                if tag not in tags:
                    break
                upto = tag
            with self._transient("ack"):
                if upto is not None:
                    self._channel.basic_ack(upto, multiple=True)
                for tag in sorted(tags):
                    if upto is None or tag > upto:
                        self._channel.basic_ack(tag)
            self._unacked -= tags
        if stale:
            raise TransientError(
                f"the RabbitMQ connection {stale} of these messages came on is gone; RabbitMQ will redeliver them"
            )

    def retry_later(self, message: ReceivedMessage, delay_seconds: float) -> None:
        """Park a copy (x-attempts = message.attempts) in a retry bucket, then ack the original.

        A failure between the two leaves both alive: the message comes back twice, which the
        worker tolerates (it deduplicates by event id).
        """
        receipt = self._live_receipt(message)
        if receipt.delivery_tag not in self._unacked:
            return
        original = receipt.properties
        headers = {
            key: value
            for key, value in (getattr(original, "headers", None) or {}).items()
            if key not in _DEAD_LETTER_HEADERS
        }
        headers[ATTEMPTS_HEADER] = message.attempts
        properties = pika.BasicProperties(
            content_type=getattr(original, "content_type", None) or "application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=getattr(original, "message_id", None) or message.message_id or None,
            headers=headers,
        )
        delay_ms = retry_delay_ms(delay_seconds)
        with self._transient("retry_later"):
            queue = self._declare_retry_queue(self._channel, delay_ms)
            self._channel.basic_publish("", queue, message.body, properties)
            self._channel.basic_ack(receipt.delivery_tag)
        self._unacked.discard(receipt.delivery_tag)

    def keepalive(self) -> None:
        """Let pika answer heartbeats; the worker calls it while a slow message is being handled.

        A BlockingConnection only does its I/O when its own thread calls into it, so without
        this a message that takes longer than about two heartbeat intervals costs the
        connection, and with it the ack of every message in hand. Deliveries that arrive
        meanwhile wait in the buffer for the next `receive`.
        """
        if self._connection is None or not self._connection.is_open:
            return
        with self._transient("keepalive"):
            self._connection.process_data_events(time_limit=0)

    def close(self) -> None:
        """Close the connection; unacked deliveries go back to the queue. A later call reconnects."""
        self._drop()

    # -- extras for tests, benchmarks and operators ---------------------------------------------

    def purge(self) -> int:
        """Empty the tenure queue and its dead-letter queue; the number of messages removed.

        Reconnects first so this instance's own unacked deliveries are purged too (and become
        stale); deliveries held by other connections are beyond its reach.
        """

        def purge_both(channel: Any) -> int:
            removed = channel.queue_purge(self.tenure_queue).method.message_count
            removed += channel.queue_purge(self.dead_letter_queue).method.message_count
            return int(removed)

        self._drop()
        return self._call_reconnecting("purge", purge_both)

    def waiting(self) -> QueueDepth:
        """Messages ready in the tenure queue (RabbitMQ does not say how old the oldest is)."""
        count = self._call_reconnecting(
            "waiting",
            lambda channel: int(channel.queue_declare(self.tenure_queue, passive=True).method.message_count),
        )
        return QueueDepth(count, None)

    def dead_letter_count(self) -> int:
        """Messages waiting in `<tenure_queue>.dead`."""
        return self._call_reconnecting(
            "dead_letter_count",
            lambda channel: int(channel.queue_declare(self.dead_letter_queue, passive=True).method.message_count),
        )

    def retry_queue_name(self, delay_seconds: float) -> str:
        """The bucket queue a retry with this delay goes through."""
        return f"{self.tenure_queue}.retry.{retry_delay_ms(delay_seconds)}"

    # -- internals ------------------------------------------------------------------------------

    def _exchange_for(self, topic: str) -> str:
        if topic == TENURE_TOPIC:
            return self.tenure_exchange
        if topic == ACCOUNTS_TOPIC:
            return self.accounts_exchange
        raise ValueError(f"unknown topic {topic!r}")

    @contextmanager
    def _transient(self, action: str) -> Iterator[None]:
        """Turn connection/channel failures into TransientError and forget the broken connection."""
        try:
            yield
        except pika.exceptions.AuthenticationError as error:
            self._drop()
            raise BrokerConfigurationError(f"RabbitMQ refused the credentials: {error!r}") from error
        except _TRANSIENT_ERRORS as error:
            self._drop()
            raise TransientError(f"RabbitMQ {action} failed: {error!r}") from error

    def _call_reconnecting(self, action: str, operation: Callable[[Any], T]) -> T:
        """Run operation on a live channel; retry once on a fresh connection if the old one died."""
        had_connection = self._channel is not None
        try:
            return operation(self._ensure_channel())
        except BrokerConfigurationError:
            raise
        except _TRANSIENT_ERRORS as error:
            self._drop()
            if not had_connection:
                raise TransientError(f"RabbitMQ {action} failed: {error!r}") from error
            log.info("RabbitMQ connection lost (%r); reconnecting", error)
        with self._transient(action):
            return operation(self._ensure_channel())

    def _ensure_channel(self) -> Any:
        if self._channel is not None and self._channel.is_open and self._connection.is_open:
            return self._channel
        self._drop()
        try:
            connection = pika.BlockingConnection(self._parameters)
        except pika.exceptions.AuthenticationError as error:
            raise BrokerConfigurationError(f"RabbitMQ refused the credentials: {error!r}") from error
        try:
            channel = connection.channel()
            self._declare_topology(channel)
            channel.confirm_delivery()
            channel.basic_qos(prefetch_count=self._prefetch)
        except pika.exceptions.ChannelClosedByBroker as error:
            _close_quietly(connection)
            if error.reply_code in _CONFIGURATION_REPLY_CODES:
                raise BrokerConfigurationError(
                    f"RabbitMQ refused the topology for {self.tenure_queue!r}: {error.reply_text}"
                ) from error
            raise
        except BaseException:
            _close_quietly(connection)
            raise
        self._connection = connection
        self._channel = channel
        self._generation += 1
        return channel

    def _transaction_channel(self) -> Any:
        """The connection's channel in transaction mode, opened on first use (after `_ensure_channel`)."""
        if self._batch_channel is None or not self._batch_channel.is_open:
            channel = self._connection.channel()
            channel.tx_select()
            self._batch_channel = channel
        return self._batch_channel

    def _declare_topology(self, channel: Any) -> None:
        channel.exchange_declare(self.tenure_exchange, exchange_type="topic", durable=True)
        channel.exchange_declare(self.dead_letter_queue, exchange_type="fanout", durable=True)
        channel.queue_declare(self.dead_letter_queue, durable=True)
        channel.queue_bind(self.dead_letter_queue, self.dead_letter_queue)
        channel.queue_declare(
            self.tenure_queue,
            durable=True,
            arguments={"x-dead-letter-exchange": self.dead_letter_queue},
        )
        channel.queue_bind(self.tenure_queue, self.tenure_exchange, routing_key="#")
        channel.exchange_declare(self.accounts_exchange, exchange_type="topic", durable=True)

    def _declare_retry_queue(self, channel: Any, delay_ms: int) -> str:
        name = f"{self.tenure_queue}.retry.{delay_ms}"
        now = time.monotonic()
        if now - self._retry_declared.get(delay_ms, -math.inf) >= _RETRY_REDECLARE_SECONDS:
            channel.queue_declare(
                name,
                durable=True,
                arguments={
                    "x-message-ttl": delay_ms,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": self.tenure_queue,
                    "x-expires": delay_ms + _RETRY_EXPIRES_MARGIN_MS,
                },
            )
            self._retry_declared[delay_ms] = now
        return name

    def _fill_buffer(self, channel: Any, wait_seconds: float) -> None:
        if self._consumer_tag is None:
            channel.add_on_cancel_callback(self._on_cancel)
            self._consumer_tag = channel.basic_consume(self.tenure_queue, self._on_message)
        deadline = time.monotonic() + max(0.0, wait_seconds)
        self._connection.process_data_events(time_limit=0)
        while not self._buffer and not self._consumer_cancelled:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # Returns as soon as a delivery is ready to dispatch, or when the time limit passes.
            self._connection.process_data_events(time_limit=remaining)

    def _on_message(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        tag = int(method.delivery_tag)
        self._unacked.add(tag)
        self._buffer.append(
            ReceivedMessage(
                body=body,
                attempts=attempts_of(properties, bool(method.redelivered)),
                receipt=_Receipt(self._generation, tag, properties),
                message_id=str(getattr(properties, "message_id", None) or ""),
            )
        )

    def _on_cancel(self, _frame: Any) -> None:
        log.warning("RabbitMQ cancelled the consumer on %s; will reconnect", self.tenure_queue)
        self._consumer_cancelled = True

    def _live_receipt(self, message: ReceivedMessage) -> _Receipt:
        receipt = message.receipt
        if not isinstance(receipt, _Receipt):
            raise ValueError("not a message received from this RabbitMQ broker")
        if receipt.generation != self._generation or self._channel is None:
            raise TransientError("the RabbitMQ connection this message came on is gone; RabbitMQ will redeliver it")
        return receipt

    def _drop(self) -> None:
        """Forget the connection (closing it if possible); deliveries on it become stale."""
        connection, self._connection, self._channel = self._connection, None, None
        self._batch_channel = None
        self._consumer_tag = None
        self._consumer_cancelled = False
        self._buffer.clear()
        self._unacked.clear()
        self._retry_declared.clear()
        if connection is not None:
            self._generation += 1
            _close_quietly(connection)


def _close_quietly(connection: Any) -> None:
    try:
        if connection.is_open:
            connection.close()
    except Exception as error:  # already broken: nothing left to release
        log.debug("closing a RabbitMQ connection failed: %r", error)
