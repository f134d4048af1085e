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
import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import exc

from accounts.adapters.database.bulk import executemany
from accounts.adapters.database.engine import WRITE
from accounts.adapters.database.rows import aware
from accounts.adapters.database.tables import embedded_messages as messages
from accounts.service.ports import TENURE_TOPIC, MessageBroker, QueueDepth, ReceivedMessage, TransientError
from accounts.settings import Settings

log = logging.getLogger(__name__)


_INSERT = messages.insert()  # built once: `bulk.executemany` keeps its compiled form


def _now() -> datetime:
    return datetime.now(UTC)


class EmbeddedBroker(MessageBroker):
    @classmethod
    def from_settings(cls, settings: Settings, engine: sa.Engine) -> EmbeddedBroker:
        """A queue in the service's own database (ACCOUNTS_BROKER_URL=embedded)."""
        return cls(engine, lease_seconds=settings.embedded_lease_seconds)

    def __init__(self, engine: sa.Engine, *, lease_seconds: float = 30.0, topic: str = TENURE_TOPIC) -> None:
        self.engine = engine
        self.lease = timedelta(seconds=lease_seconds)
        self.topic = topic
        # The listener renews leases this often while it works on a batch.
        self.keepalive_interval = max(0.05, lease_seconds / 3)
        # The messages of the batch in hand, and the end of their lease, which to the
        # microsecond is also the claim's token: rows holding it are this instance's.
        self._in_hand: set[int] = set()
        self._hand_token: datetime | None = None
        # Leases to hand back once the database answers: (token, whether the claim's delivery
        # never reached the listener, so is not to count as an attempt).
        self._lost_claims: list[tuple[datetime, bool]] = []

    def _write(self) -> sa.Connection:
        return self.engine.connect().execution_options(**{WRITE: True})

    def publish(self, topic: str, body: bytes, *, group_id: str, message_id: str) -> None:
        self.publish_many(topic, [(body, group_id, message_id)])

    def publish_many(self, topic: str, items: Sequence[tuple[bytes, str, str]]) -> None:
        """Queue many messages in one transaction (the events intake, the CLI and the benchmarks publish in bulk),
        through the driver's executemany (SQLite) or COPY (PostgreSQL): the intake's batches of thousands."""
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
                executemany(connection, _INSERT, rows)
        except exc.DBAPIError as error:
            raise TransientError(f"embedded queue unavailable: {error.orig}") from error

    def receive(self, max_messages: int, wait_seconds: float) -> list[ReceivedMessage]:
        # Asking for more means the last batch is done with: whatever of it is still in hand
        # (the listener gave up on it, e.g. an ack failed) goes back now, not when the lease ends.
        self._release_in_hand()
        self._release_lost_claims()
        deadline = time.monotonic() + wait_seconds
        pause = 0.02
        while True:
            claimed = self._claim(max_messages)
            if claimed or time.monotonic() >= deadline:
                return claimed
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.25)

    def _token(self) -> datetime:
        """A lease end that is, to the microsecond, this claim's own."""
        return _now() + self.lease + timedelta(microseconds=random.randrange(1, 1000))

    def _claim(self, max_messages: int) -> list[ReceivedMessage]:
        now = _now()
        until = self._token()
        # A group (a tenure) with a message in flight waits: a worker SIGKILLed with a tenure's create
        # in hand leaves it leased, and its update, taken meanwhile, would spend its attempts waiting.
        in_flight = sa.select(messages.c.group_id).where(messages.c.topic == self.topic, messages.c.leased_until >= now)
        ready = (
            sa.select(messages.c.id)
            .where(
                messages.c.topic == self.topic,
                messages.c.available_at <= now,
                sa.or_(messages.c.leased_until.is_(None), messages.c.leased_until < now),
                messages.c.group_id.not_in(in_flight),
            )
            # A retried message joins the back of the queue, as a RabbitMQ retry does: an update
            # waiting for its create comes back after the messages already queued, the create among them.
            .order_by(messages.c.available_at, messages.c.id)
            .limit(max_messages)
            .with_for_update(skip_locked=True)
        )
        claim = (
            messages.update()
            .where(messages.c.id.in_(ready.scalar_subquery()))
            .values(leased_until=until, attempts=messages.c.attempts + 1)
            .returning(
                messages.c.id, messages.c.body, messages.c.attempts, messages.c.message_id, messages.c.available_at
            )
        )
        try:
            with self._write() as connection, connection.begin():
                rows = list(connection.execute(claim).all())
        except exc.DBAPIError as error:
            self._lost_claims = [*self._lost_claims[-99:], (until, True)]
            raise TransientError(f"embedded queue unavailable: {error.orig}") from error
        rows.sort(key=lambda row: (row.available_at, row.id))
        self._in_hand = {row.id for row in rows}
        self._hand_token = until
        return [
            ReceivedMessage(body=bytes(row.body), attempts=row.attempts, receipt=row.id, message_id=row.message_id)
            for row in rows
        ]

    def _release_lost_claims(self) -> None:
        """Hand back what a claim leased if its answer never arrived, not counting it as a delivery.

        Otherwise those messages would wait out the whole lease, and an update waiting for
        one of them (its create) could use up its attempts meanwhile.
        """
        if not self._lost_claims:
            return
        released = 0
        try:
            with self._write() as connection, connection.begin():
                for undelivered in (True, False):
                    tokens = [token for token, flag in self._lost_claims if flag is undelivered]
                    if not tokens:
                        continue
                    released += connection.execute(
                        messages.update()
                        .where(messages.c.topic == self.topic, messages.c.leased_until.in_(tokens))
                        .values(
                            leased_until=None,
                            attempts=messages.c.attempts - 1 if undelivered else messages.c.attempts,
                        )
                    ).rowcount
        except exc.DBAPIError:
            return  # still down: try again on the next receive (else the leases run out)
        self._lost_claims = []
        if released:
            log.info("handed back %d message(s) leased by a claim whose answer was lost", released)

    def ack(self, message: ReceivedMessage) -> None:
        self.ack_many([message])

    def ack_many(self, received: Sequence[ReceivedMessage]) -> None:
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
        renewed = self._token()
        try:
            with self._write() as connection, connection.begin():
                connection.execute(self._held().values(leased_until=renewed))
        except exc.DBAPIError as error:
            # Perhaps renewed although the answer was lost: remember both tokens.
            self._lost_claims = [*self._lost_claims[-99:], (renewed, False)]
            log.info("could not renew the leases of %d message(s): %s", len(self._in_hand), error.orig)
            return
        self._hand_token = renewed

    def _held(self) -> sa.Update:
        """The rows of the batch in hand that are still leased to this instance."""
        return messages.update().where(
            messages.c.id.in_(sorted(self._in_hand)), messages.c.leased_until == self._hand_token
        )

    def _release_in_hand(self) -> None:
        if not self._in_hand:
            return
        held, token = len(self._in_hand), self._hand_token
        try:
            with self._write() as connection, connection.begin():
                connection.execute(self._held().values(leased_until=None))
        except exc.DBAPIError as error:
            if token is not None:
                self._lost_claims = [*self._lost_claims[-99:], (token, False)]  # hand them back later
            log.info("could not hand back %d leased message(s) yet: %s", held, error.orig)
        else:
            log.info("handed back %d message(s) the listener did not finish", held)
        self._in_hand, self._hand_token = set(), None

    def depth(self) -> int:
        """Messages still queued on the tenure topic (for the CLI and the tests)."""
        with self.engine.connect() as connection:
            query = sa.select(sa.func.count()).select_from(messages).where(messages.c.topic == self.topic)
            return int(connection.execute(query).scalar_one())

    def waiting(self) -> QueueDepth:
        """Messages queued on the tenure topic, and when the oldest of them was queued."""
        with self.engine.connect() as connection:
            query = sa.select(sa.func.count(), sa.func.min(messages.c.created_at)).where(messages.c.topic == self.topic)
            count, oldest = connection.execute(query).one()
        return QueueDepth(int(count), aware(oldest))

    def close(self) -> None:
        """Hand back the leases of messages still in hand, so they need not wait for the lease to run out.

        The engine itself belongs to the application.
        """
        self._release_in_hand()
