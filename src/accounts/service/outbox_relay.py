"""The outbox relay: carries committed account events to the broker.

Events are written in the transaction of the change, so a crash after the commit
loses nothing: the relay publishes them on its next pass. It marks a row sent only
after the broker accepted it, so an event may be published twice (after a crash
between the two) but never lost; consumers deduplicate by event id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from accounts.service.accounts import Clock, utc_now
from accounts.service.ports import MessageBroker
from accounts.service.unit_of_work import UnitOfWork


@dataclass
class OutboxRelay:
    uow_factory: Callable[..., UnitOfWork]
    broker: MessageBroker
    batch_size: int = 500
    clock: Clock = utc_now

    def relay_once(self) -> int:
        """Publish one batch of pending events; return how many were published."""
        with self.uow_factory(read_only=True) as uow:
            pending = uow.outbox.pending(self.batch_size)
        published: list[int] = []
        try:
            for message in pending:
                self.broker.publish(
                    message.topic,
                    message.payload,
                    group_id=message.group_id,
                    message_id=str(message.event_id),
                )
                published.append(message.position)
        finally:
            if published:
                with self.uow_factory() as uow:
                    uow.outbox.mark_published(published, self.clock())
                    uow.commit()
        return len(published)

    def pending(self) -> int:
        with self.uow_factory(read_only=True) as uow:
            return uow.outbox.count_pending()
