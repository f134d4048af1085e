"""The listener on a real RabbitMQ connection: a slow event must not cost the connection its heartbeats."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from accounts.adapters.brokers.rabbitmq import RabbitMqBroker
from accounts.bootstrap import Application
from accounts.service.ports import TENURE_TOPIC
from tests.conftest import unique
from tests.fixtures.service import delete_rabbitmq_topology
from tests.fixtures.tenures import story

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def names(rabbitmq_url: str) -> Iterator[dict[str, str]]:
    chosen = {
        "tenure_exchange": unique("worker_tenure_ex"),
        "tenure_queue": unique("worker_tenure_q"),
        "accounts_exchange": unique("worker_accounts_ex"),
    }
    yield chosen
    delete_rabbitmq_topology(
        rabbitmq_url, chosen["tenure_queue"], [chosen["tenure_exchange"], chosen["accounts_exchange"]]
    )


@pytest.fixture
def app(sqlite_application: Application) -> Application:
    return sqlite_application


def test_a_slow_event_keeps_the_connection_and_is_acked_once(
    app: Application, rabbitmq_url: str, names: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Heartbeats every second: RabbitMQ drops a connection that stays silent for about two of them (4 s).
    broker = RabbitMqBroker(f"{rabbitmq_url}?heartbeat=2", prefetch=10, **names)
    tale = story(random.Random(1))
    broker.publish(TENURE_TOPIC, json.dumps(tale.events[0]).encode(), group_id=tale.tenure_id, message_id="e-1")
    real_handle = app.tenure_events.handle

    def slow_handle(event: Any) -> Any:
        time.sleep(5)  # a slow database, a slow Tenure API
        return real_handle(event)

    monkeypatch.setattr(app.tenure_events, "handle", slow_handle)
    listener = app.listener(broker)
    deadline = time.monotonic() + 10
    while listener.processed == 0 and time.monotonic() < deadline:
        listener.poll(0.5)
    listener.close()

    assert listener.processed == 1, "applied and acked on the connection it came on"
    broker.close()
    again = RabbitMqBroker(rabbitmq_url, **names)
    assert again.receive(10, 1.5) == [], "acked: never delivered again"
    again.close()
