"""Which adapter answers to which name: brokers by the scheme of ACCOUNTS_BROKER_URL, interim sinks by name.

Adding a broker or a sink is its adapter file plus one line here. Each adapter builds itself
from the settings (`from_settings`); an adapter's module is imported only when it is chosen,
so a process never pays for a client library it does not use (boto3, pika, openpyxl).
"""

from __future__ import annotations

import pkgutil
from typing import Protocol, cast
from urllib.parse import urlparse

import sqlalchemy as sa

from accounts.service.ports import InterimSink, MessageBroker
from accounts.settings import ConfigurationError, Settings

# URL scheme (or the whole URL, for "embedded") -> the broker adapter.
BROKERS = {
    "embedded": "accounts.adapters.brokers.embedded:EmbeddedBroker",
    "amqp": "accounts.adapters.brokers.rabbitmq:RabbitMqBroker",
    "amqps": "accounts.adapters.brokers.rabbitmq:RabbitMqBroker",
    "sqs": "accounts.adapters.brokers.sqs:SqsBroker",
}

# Sink name (ACCOUNTS_INTERIM_SINKS, and the sink's own `name`) -> the interim sink adapter.
SINKS = {
    "spreadsheet": "accounts.adapters.sinks.xlsx_workbook:XlsxWorkbookSink",
    "database": "accounts.adapters.sinks.interim_database:InterimDatabaseSink",
}


class BrokerAdapter(Protocol):
    """What a broker adapter's class offers: to build itself from the settings."""

    def from_settings(self, settings: Settings, engine: sa.Engine) -> MessageBroker:
        """A new connection; `engine` is the service's database, for a broker that keeps its queue there."""
        ...


class SinkAdapter(Protocol):
    """What an interim sink adapter's class offers: to build itself, and to say whether it has a copy to check."""

    name: str

    def from_settings(self, settings: Settings) -> InterimSink:
        """The sink; ConfigurationError when the settings lack what it needs (its location)."""
        ...

    def has_copy(self, settings: Settings) -> bool:
        """True when the settings point at rows of this sink's, so `reconcile` checks them even if it is off."""
        ...


def broker_adapter(url: str) -> BrokerAdapter:
    scheme = urlparse(url).scheme or url
    if scheme not in BROKERS:
        raise ConfigurationError(f"ACCOUNTS_BROKER_URL {url!r}: use embedded, amqp://... or sqs://QUEUE")
    return cast(BrokerAdapter, pkgutil.resolve_name(BROKERS[scheme]))


def sink_adapter(name: str) -> SinkAdapter:
    if name not in SINKS:
        raise ConfigurationError(f"ACCOUNTS_INTERIM_SINKS: unknown interim sink {name!r}: use {' or '.join(SINKS)}")
    return cast(SinkAdapter, pkgutil.resolve_name(SINKS[name]))


def sink_names() -> list[str]:
    return list(SINKS)
