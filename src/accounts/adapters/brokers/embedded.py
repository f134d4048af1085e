"""The embedded broker: a durable queue in the service's own database.

So that `make run` needs nothing but Python, tenure events can be queued in the same
database as the accounts. Messages are leased, not removed, on receipt: a worker that
dies mid-batch leaves them to reappear when the lease runs out, and a live worker
renews the leases of the messages in hand (`keepalive`) so a slow batch is not handed
to a competing worker. PostgreSQL lets competing workers skip each other's leased rows
(SKIP LOCKED); SQLite serialises writers anyway.

Only the tenure topic has a queue (the listener is its one consumer). A message
published to any other topic is accepted and dropped, as a RabbitMQ exchange or an SNS
topic with nothing subscribed would: the account events' durable record is the outbox
table, and with the embedded broker nothing outside the service could read them.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import exc

from accounts.adapters.database.engine import WRITE
from accounts.adapters.database.tables import embedded_messages as messages
from accounts.service.ports import TENURE_TOPIC, ReceivedMessage, TransientError

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class EmbeddedBroker:
    def __init__(self, engine: sa.Engine, *, lease_seconds: float = 30.0, topic: str = TENURE_TOPIC) -> None:
        self.engine = engine
        self.lease = timedelta(seconds=lease_seconds)
        self.topic = topic
        # The listener renews leases this often while it works on a batch.
        self.keepalive_interval = max(0.05, lease_seconds / 3)
        self._in_hand: set[int] = set()

    def _write(self) -> sa.Connection:
        return self.engine.connect().execution_options(**{WRITE: True})

    def publish(self, topic: str, body: bytes, *, group_id: str, message_id: str) -> None:
        self.publish_many(topic, [(body, group_id, message_id)])

    def publish_many(self, topic: str, items: list[tuple[bytes, str, str]]) -> None:
        """Queue many messages in one transaction (the CLI and the benchmarks publish in bulk)."""
        now = _now()
        items = [item for item in items if topic == self.topic]  # no queue on any other topic
        if not items:
            return
        rows = [
            {
                "topic": topic,
                "group_id": group,
                "message_id": mid,
                "body": body,
                "available_at": now,
                "created_at": now,
            }
            for body, group, mid in items
        ]
        try:
            with self._write() as connection, connection.begin():
                connection.execute(messages.insert(), rows)
        except exc.DBAPIError as error:
            raise TransientError(f"embedded queue unavailable: {error.orig}") from error

    def receive(self, max_messages: int, wait_seconds: float) -> list[ReceivedMessage]:
        deadline = time.monotonic() + wait_seconds
        pause = 0.02
        while True:
            claimed = self._claim(max_messages)
            if claimed or time.monotonic() >= deadline:
                return claimed
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.25)

    def _claim(self, max_messages: int) -> list[ReceivedMessage]:
        now = _now()
        ready = (
            sa.select(messages.c.id)
            .where(
                messages.c.topic == self.topic,
                messages.c.available_at <= now,
                sa.or_(messages.c.leased_until.is_(None), messages.c.leased_until < now),
            )
            .order_by(messages.c.id)
            .limit(max_messages)
            .with_for_update(skip_locked=True)
        )
        claim = (
            messages.update()
            .where(messages.c.id.in_(ready.scalar_subquery()))
            .values(leased_until=now + self.lease, attempts=messages.c.attempts + 1)
            .returning(messages.c.id, messages.c.body, messages.c.attempts, messages.c.message_id)
        )
        try:
            with self._write() as connection, connection.begin():
                rows = list(connection.execute(claim).all())
        except exc.DBAPIError as error:
            raise TransientError(f"embedded queue unavailable: {error.orig}") from error
        rows.sort(key=lambda row: row.id)
        self._in_hand.update(row.id for row in rows)
        return [
            ReceivedMessage(body=bytes(row.body), attempts=row.attempts, receipt=row.id, message_id=row.message_id)
            for row in rows
        ]

    def ack(self, message: ReceivedMessage) -> None:
        self.ack_many([message])

    def ack_many(self, received: list[ReceivedMessage]) -> None:
        if not received:
            return
        try:
            with self._write() as connection, connection.begin():
                connection.execute(messages.delete().where(messages.c.id.in_([m.receipt for m in received])))
        except exc.DBAPIError as error:
            raise TransientError(f"embedded queue unavailable: {error.orig}") from error
        self._in_hand.difference_update(m.receipt for m in received)

    def retry_later(self, message: ReceivedMessage, delay_seconds: float) -> None:
        try:
            with self._write() as connection, connection.begin():
                connection.execute(
                    messages.update()
                    .where(messages.c.id == message.receipt)
                    .values(available_at=_now() + timedelta(seconds=delay_seconds), leased_until=None)
                )
        except exc.DBAPIError as error:
            raise TransientError(f"embedded queue unavailable: {error.orig}") from error
        self._in_hand.discard(message.receipt)

    def keepalive(self) -> None:
        """Renew the leases of the messages received and not yet acked or retried (best effort)."""
        if not self._in_hand:
            return
        try:
            with self._write() as connection, connection.begin():
                connection.execute(
                    messages.update()
                    .where(messages.c.id.in_(sorted(self._in_hand)))
                    .values(leased_until=_now() + self.lease)
                )
        except exc.DBAPIError as error:
            log.info("could not renew the leases of %d message(s): %s", len(self._in_hand), error.orig)

    def depth(self) -> int:
        """Messages still queued on the tenure topic (for the CLI and the tests)."""
        with self.engine.connect() as connection:
            query = sa.select(sa.func.count()).select_from(messages).where(messages.c.topic == self.topic)
            return int(connection.execute(query).scalar_one())

    def close(self) -> None:
        """Hand back the leases of messages still in hand, so they need not wait for the lease to run out.

        The engine itself belongs to the application.
        """
        if not self._in_hand:
            return
        held, self._in_hand = sorted(self._in_hand), set()
        try:
            with self._write() as connection, connection.begin():
                connection.execute(messages.update().where(messages.c.id.in_(held)).values(leased_until=None))
        except exc.DBAPIError as error:
            log.info("could not release %d leased message(s); their leases will run out: %s", len(held), error.orig)
