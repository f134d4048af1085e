"""Fault item 2: the database, the broker and the interim database each unavailable during a drain.

The worker reaches PostgreSQL, RabbitMQ and the interim PostgreSQL database through
loopback TCP proxies (`TcpProxy`); the test cuts one of them twice during the drain
(every connection through it reset, every new one refused) and restores it, without
touching the servers other tests use. The same worker process must ride out both
outages: retry, recover, and finish with the checks of the crash test (nothing lost,
nothing doubled, every account event published, the interim copies reconciled),
with nothing dead-lettered because of the outage.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from tests.conftest import unique
from tests.reliability.harness import (
    AccountEventTap,
    Deployment,
    Figures,
    TcpProxy,
    check_books,
    record_figures,
    story_items,
    wait_until,
)
from tests.reliability.test_crash import stories_with_events

EVENTS = 1000
OUTAGES = (2.5, 1.5)  # seconds each, the first at a quarter of the drain, the second past half


def proxy_to(url: str) -> TcpProxy:
    parsed = urlparse(url)
    return TcpProxy(parsed.hostname or "127.0.0.1", parsed.port or 0)


@pytest.fixture
def proxied(server_deployment: Deployment) -> Iterator[dict[str, TcpProxy]]:
    """The worker's three servers behind proxies; the test itself talks to them directly."""
    deployment = server_deployment
    assert deployment.interim_database_url
    proxies = {
        "database": proxy_to(deployment.database_url.replace("postgresql+psycopg", "postgresql")),
        "broker": proxy_to(deployment.broker_url),
        "interim database": proxy_to(deployment.interim_database_url.replace("postgresql+psycopg", "postgresql")),
    }
    deployment.worker_urls = {
        "ACCOUNTS_DATABASE_URL": proxies["database"].url_for(deployment.database_url),
        "ACCOUNTS_BROKER_URL": proxies["broker"].url_for(deployment.broker_url),
        "ACCOUNTS_INTERIM_DATABASE_URL": proxies["interim database"].url_for(deployment.interim_database_url),
    }
    try:
        yield proxies
    finally:
        deployment.stop()
        for proxy in proxies.values():
            proxy.close()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.rabbitmq
@pytest.mark.parametrize("server", ["database", "broker", "interim database"])
def test_the_worker_rides_out_an_outage_and_finishes_the_drain(
    server: str, server_deployment: Deployment, proxied: dict[str, TcpProxy], rabbitmq_url: str
) -> None:
    deployment, proxy = server_deployment, proxied[server]
    rng = random.Random(1200 + len(server))
    stories = stories_with_events(EVENTS, seed=1201)
    events = story_items(stories, rng)
    deployment.migrate()
    tap = AccountEventTap(rabbitmq_url, deployment.names["accounts_exchange"], unique("reliability_tap"))
    try:
        started = time.monotonic()
        deployment.publish_events(events)
        worker = deployment.start_worker()
        outages: list[str] = []
        for fraction, seconds in zip((0.25, 0.55), OUTAGES, strict=True):
            wait_until(
                lambda f=fraction: deployment.processed() >= f * len(events) or not worker.alive(),
                120,
                f"{fraction:.0%} of the drain",
            )
            assert worker.alive(), worker.output()[-3000:]
            before = deployment.processed()
            with proxy.outage(seconds):
                waiting = int(deployment.scalar("SELECT count(*) FROM interim_pending WHERE sink = 'database'") or 0)
            during = deployment.processed() - before
            assert not deployment.settled(len(events)), "the outage came after the drain: make it earlier"
            outages.append(f"{server} {seconds:.1f}s ({proxy.refused} connection(s) refused)")
            if server == "interim database":
                assert waiting > 0, "rows wait for the interim database while it is away"
                if before < len(events):
                    assert during > 0, "the accounts keep being updated while the interim database is away"
        wait_until(lambda: deployment.settled(len(events)), 240, "the drain to finish after the outages", pause=0.25)
        assert worker.alive(), "the same worker process recovered by itself"
        assert worker.terminate() == 0, worker.output()[-3000:]
        assert len(deployment.workers) == 1
        figures = Figures(events=len(events), outages=outages, seconds=round(time.monotonic() - started, 1))
        check_books(deployment, stories, events, figures, tap=tap)
    finally:
        tap.close()
    log = worker.output()
    assert "Traceback" not in log or server == "broker", log[-3000:]
    record_figures(f"outage/{server}", figures)
