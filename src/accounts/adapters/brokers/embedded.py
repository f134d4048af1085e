"""The embedded broker: a durable queue in the service's own database.

So that `make run` needs nothing but Python, tenure events can be queued in the same
database as the accounts. Messages are leased, not removed, on receipt: a worker that
dies mid-batch leaves them to reappear when the lease runs out. PostgreSQL lets
competing workers skip each other's leased rows (SKIP LOCKED); SQLite serialises
writers anyway.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import exc

from accounts.adapters.database.engine import WRITE
from accounts.adapters.database.tables import embedded_messages as messages
from accounts.service.ports import TENURE_TOPIC, ReceivedMessage, TransientError


def _now() -> datetime:
    return datetime.now(UTC)


class EmbeddedBroker:
    def __init__(self, engine: sa.Engine, *, lease_seconds: float = 15.0, topic: str = TENURE_TOPIC) -> None:
        self.engine = engine
        self.lease = timedelta(seconds=lease_seconds)
        self.topic = topic

    def _write(self) -> sa.Connection:
        return self.engine.connect().execution_options(**{WRITE: True})

    def publish(self, topic: str, body: bytes, *, group_id: str, message_id: str) -> None:
        self.publish_many(topic, [(body, group_id, message_id)])

    def publish_many(self, topic: str, items: list[tuple[bytes, str, str]]) -> None:
        """Queue many messages in one transaction (the CLI and the benchmarks publish in bulk)."""
        now = _now()
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

    def depth(self) -> int:
        """Messages still queued on the tenure topic (for the CLI and the tests)."""
        with self.engine.connect() as connection:
            query = sa.select(sa.func.count()).select_from(messages).where(messages.c.topic == self.topic)
            return int(connection.execute(query).scalar_one())

    def close(self) -> None:
        """Nothing to release: the engine belongs to the application."""
