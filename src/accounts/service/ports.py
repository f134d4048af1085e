"""The ports the service layer needs from the outside world.

Each port is a Protocol; adapters implement it and `bootstrap` picks one. A port's optional
capabilities are declared here with a default that works for every adapter (acking many is
acking each; a broker with no connection to keep alive has nothing to do): an adapter
subclasses its port and overrides what it can do better, and the service calls them all
without asking first. Adding a broker or an interim sink is one new adapter file plus one
line in `adapters/registry.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from accounts.domain.account import version_tag
from accounts.domain.interim import InterimRow

# Logical topics. Each broker adapter maps them to its own names (exchange, queue, topic ARN).
TENURE_TOPIC = "tenure"
ACCOUNTS_TOPIC = "accounts"


@dataclass
class ReceivedMessage:
    """One delivery of a message; `receipt` is whatever the adapter needs to ack it."""

    body: bytes
    attempts: int  # deliveries so far, this one included (1 on the first delivery)
    receipt: Any = field(repr=False, default=None)
    message_id: str = ""


class QueueDepth(NamedTuple):
    waiting: int
    oldest_at: datetime | None  # None: the broker does not say


class MessageBroker(Protocol):
    """At-least-once messaging: publish to a topic, consume the tenure queue.

    Adapters subclass it (they are built by `adapters/registry.py`, from the settings) and
    inherit the defaults of what they do not override.
    """

    # How often, in seconds, the listener calls `keepalive` while it handles a slow message;
    # None for a broker that needs no keeping alive (the listener then handles messages inline).
    keepalive_interval: float | None = None

    def publish(self, topic: str, body: bytes, *, group_id: str, message_id: str) -> None:
        """Publish durably; return only when the broker has accepted the message.

        group_id orders messages (one tenure's events); message_id deduplicates where
        the broker can.
        """
        raise NotImplementedError

    def publish_many(self, topic: str, items: Sequence[tuple[bytes, str, str]]) -> None:
        """Publish (body, group_id, message_id) items in order; a broker that can, in one round trip."""
        for body, group_id, message_id in items:
            self.publish(topic, body, group_id=group_id, message_id=message_id)

    def receive(self, max_messages: int, wait_seconds: float) -> list[ReceivedMessage]:
        """Up to max_messages from the tenure queue, waiting at most wait_seconds."""
        raise NotImplementedError

    def ack(self, message: ReceivedMessage) -> None:
        """Done with it: never deliver it again."""
        raise NotImplementedError

    def ack_many(self, messages: Sequence[ReceivedMessage]) -> None:
        """Done with all of them; a broker that can, in one round trip."""
        for message in messages:
            self.ack(message)

    def retry_later(self, message: ReceivedMessage, delay_seconds: float) -> None:
        """Deliver it again after about delay_seconds, with attempts increased."""
        raise NotImplementedError

    def waiting(self) -> QueueDepth | None:
        """The tenure events waiting in the queue, and when the oldest was queued where the broker says;
        None from a broker that cannot tell (the metrics then leave the figure out)."""
        return None

    def keepalive(self) -> None:
        """Housekeeping while a slow message is handled (heartbeats, leases); every `keepalive_interval`."""
        return None  # nothing to keep alive (a body, so that it is a default and not left to the adapter)

    def close(self) -> None:
        """Release the connection; a broker may be used again after (it reconnects)."""
        return None


class InterimSink(Protocol):
    """Somewhere the interim tenancy-agreement rows are delivered, and read back for reconciling.

    Adapters subclass it (built by `adapters/registry.py`, by name) and inherit the defaults.
    """

    name: str
    # True for a sink that is rewritten whole (the workbook): `deliver` gets every row.
    # False for one that is upserted (the interim database): `deliver` gets the changed rows.
    rewrites_everything: bool

    def deliver(self, rows: Iterable[InterimRow]) -> None:
        """Deliver rows idempotently; raise on failure (the flusher retries, nothing is lost).

        A sink that rewrites everything gets the rows streamed, to be read once.
        """
        raise NotImplementedError

    def remove(self, payment_refs: Sequence[str]) -> None:
        """Drop rows whose key no longer exists (a corrected payment reference). Upserting sinks only."""

    def read_rows(self) -> list[InterimRow]:
        """Every row the sink holds now, for `accounts interim reconcile`."""
        raise NotImplementedError

    def missing(self) -> bool:
        """True when the sink can tell it has lost everything (the workbook deleted): it is rewritten."""
        return False

    def close(self) -> None:
        """Release what the sink holds open (connection pools); it reopens them if used again."""
        return None


class TenureSource(Protocol):
    """Where the listener fetches a tenure it has never seen (the Tenure API)."""

    def fetch(self, tenure_id: UUID) -> dict[str, Any] | None:
        """The whole tenure, or None when it does not exist. Raises TransientError when unreachable."""


class TransientError(Exception):
    """Worth retrying later: a server down, a timeout, a 5xx."""


@dataclass(frozen=True)
class StoredAccount:
    """An account as the API answers it: its wire JSON, and its version for the ETag."""

    account_id: UUID
    wire: bytes
    version: int

    @property
    def etag(self) -> str:
        return version_tag(self.account_id, self.version)


class AccountReads(Protocol):
    """The API's read side: accounts as stored wire JSON, no `Account` built (the reads are the hot path).

    Asynchronous: a read waiting on its database leaves the event loop to the other requests,
    with no worker thread per read.
    """

    async def open(self) -> None:
        """Ready the reads on the running event loop: the server's, at its startup."""

    async def aclose(self) -> None:
        """Release what `open` took, on the same loop, at the server's shutdown."""

    async def account(self, account_id: UUID) -> StoredAccount | None: ...

    async def by_target(self, target_id: UUID, account_type: str | None) -> list[bytes]:
        """The wire JSON of the target's accounts (of one type, if given), oldest first."""

    def close(self) -> None: ...
