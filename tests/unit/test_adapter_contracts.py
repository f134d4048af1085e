"""The ports' declared capabilities and the one registry of adapters: a new broker or sink is one file and one line."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from accounts.adapters import registry
from accounts.domain.interim import InterimRow
from accounts.service.ports import InterimSink, MessageBroker, ReceivedMessage
from accounts.settings import ConfigurationError, Settings


class MinimalBroker(MessageBroker):
    """A broker that implements only what the port requires."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, str, str]] = []
        self.acked: list[str] = []

    def publish(self, topic: str, body: bytes, *, group_id: str, message_id: str) -> None:
        self.published.append((topic, body, group_id, message_id))

    def receive(self, max_messages: int, wait_seconds: float) -> list[ReceivedMessage]:
        return []

    def ack(self, message: ReceivedMessage) -> None:
        self.acked.append(message.message_id)

    def retry_later(self, message: ReceivedMessage, delay_seconds: float) -> None:
        pass


class MinimalSink(InterimSink):
    name = "minimal"
    rewrites_everything = False

    def deliver(self, rows: Iterable[InterimRow]) -> None:
        pass

    def remove(self, payment_refs: object) -> None:
        pass

    def read_rows(self) -> list[InterimRow]:
        return []


def test_a_broker_gets_bulk_publishing_and_acking_and_keepalive_by_default() -> None:
    broker = MinimalBroker()

    broker.publish_many("tenure", [(b"1", "g", "m1"), (b"2", "g", "m2")])
    broker.ack_many([ReceivedMessage(b"", 1, message_id="a"), ReceivedMessage(b"", 1, message_id="b")])
    broker.keepalive()
    broker.close()

    assert broker.published == [("tenure", b"1", "g", "m1"), ("tenure", b"2", "g", "m2")], "in order"
    assert broker.acked == ["a", "b"]
    assert broker.keepalive_interval is None, "nothing to keep alive: the listener handles messages inline"


def test_a_sink_is_not_missing_and_has_nothing_to_close_by_default() -> None:
    sink = MinimalSink()

    assert sink.missing() is False
    sink.close()


@pytest.mark.parametrize("name", registry.sink_names())
def test_each_registered_sink_answers_to_its_name_and_builds_from_the_settings(name: str, tmp_path: Path) -> None:
    adapter = registry.sink_adapter(name)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, spreadsheet_path=tmp_path / "sheet.xlsx", interim_database_url=f"sqlite:///{tmp_path}/i.db"
    )

    sink = adapter.from_settings(settings)
    try:
        assert adapter.name == sink.name == name
        assert adapter.has_copy(settings) is (name == "database"), "the workbook is not written yet"
    finally:
        sink.close()


@pytest.mark.parametrize(
    ("url", "adapter"),
    [
        ("embedded", "EmbeddedBroker"),
        ("amqp://guest:guest@localhost:5672/%2F", "RabbitMqBroker"),
        ("amqps://broker.example/%2F", "RabbitMqBroker"),
        ("sqs://tenure-events", "SqsBroker"),
    ],
)
def test_brokers_are_chosen_by_the_scheme_of_their_url(url: str, adapter: str) -> None:
    assert registry.broker_adapter(url).__name__ == adapter  # type: ignore[attr-defined]


def test_an_unknown_broker_or_sink_is_a_configuration_error_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="ACCOUNTS_BROKER_URL 'kafka://k': use embedded"):
        registry.broker_adapter("kafka://k")
    with pytest.raises(ConfigurationError, match="ACCOUNTS_INTERIM_SINKS: unknown interim sink 'printer'"):
        registry.sink_adapter("printer")


def test_the_database_sink_without_its_url_is_a_configuration_error() -> None:
    settings = Settings(_env_file=None, interim_database_url=None)  # type: ignore[call-arg]

    with pytest.raises(ConfigurationError, match="ACCOUNTS_INTERIM_DATABASE_URL"):
        registry.sink_adapter("database").from_settings(settings)
