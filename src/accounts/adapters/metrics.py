"""Prometheus metrics for one process: its HTTP requests, its listeners' events, and the backlogs.

Each process keeps its own registry (`accounts serve` serves it at `/metrics`; `accounts worker`
on ACCOUNTS_METRICS_PORT). Requests are counted as they are answered; the events are the
listeners' own counts; the backlogs (queue, outbox, each interim sink) and the ledger's postings
are read from the database and the broker at each scrape, so every process reports the same.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accounts.service.listener import FinanceListener
from accounts.service.operations import Figures
from accounts.service.ports import MessageBroker

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Reads answer in milliseconds, writes in tens of them, a batch of events in seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    content_type = CONTENT_TYPE

    def __init__(
        self,
        listeners: Callable[[], list[FinanceListener]],
        figures: Callable[[], Figures],
        make_broker: Callable[[], MessageBroker],
    ) -> None:
        """`listeners`: the process's listeners (their counts); `figures`: the backlogs from the database;
        `make_broker`: a broker connection, for the queue's depth."""
        self.listeners = listeners
        self.figures = figures
        self.make_broker = make_broker
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "accounts_http_requests",
            "HTTP requests answered, by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "accounts_http_request_duration_seconds",
            "How long HTTP requests took to answer, by route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._broker: MessageBroker | None = None
        self._broker_lock = threading.Lock()
        self.registry.register(_Figures(self))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, host: str, port: int) -> None:
        """Serve /metrics from a thread of its own (a worker has no HTTP server otherwise)."""
        start_http_server(port, addr=host, registry=self.registry)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Counts and times every HTTP request by its route's template (never its raw path: no ids)."""
        requests, latency = self.requests, self.latency
        # The labelled children, found once each: `labels()` on every request cost more than counting.
        children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

        async def measured(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500

            async def noting(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, noting)
            finally:
                route = scope.get("route")
                key = (scope["method"], getattr(route, "path", None) or "unmatched", status)
                child = children.get(key)
                if child is None:
                    method, template, _ = key
                    child = children[key] = (
                        requests.labels(method, template, str(status)),
                        latency.labels(method, template),
                    )
                child[0].inc()
                child[1].observe(time.perf_counter() - started)

        return measured

    def queue(self) -> tuple[int, datetime | None] | None:
        """The broker's tenure queue, through a connection of the metrics' own (made again after a failure)."""
        with self._broker_lock:
            try:
                if self._broker is None:
                    self._broker = self.make_broker()
                depth = self._broker.waiting()
            except Exception as error:
                log.info("the metrics could not read the queue: %s", error)
                if self._broker is not None:
                    self._broker.close()
                self._broker = None
                return None
        return None if depth is None else (depth.waiting, depth.oldest_at)

    def close(self) -> None:
        with self._broker_lock:
            if self._broker is not None:
                self._broker.close()
                self._broker = None


class _Figures(Collector):
    """The listeners' counts and the backlogs, worked out at each scrape."""

    def __init__(self, metrics: Metrics, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.metrics = metrics
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily("accounts_events", "Tenure events, by what became of them", labels=["outcome"])
        listeners = list(self.metrics.listeners())
        for outcome, count in (
            ("received", sum(listener.received for listener in listeners)),
            ("applied", sum(listener.processed for listener in listeners)),
            ("retried", sum(listener.retried for listener in listeners)),
            ("dead_lettered", sum(listener.dead_lettered for listener in listeners)),
        ):
            events.add_metric([outcome], count)
        yield events
        now = self.clock()
        try:
            figures = self.metrics.figures()
        except Exception as error:  # the database is down: say so, and report what this process knows
            log.info("the metrics could not read the database: %s", error)
            yield GaugeMetricFamily("accounts_database_up", "Whether the database answered this scrape", value=0)
            return
        yield GaugeMetricFamily("accounts_database_up", "Whether the database answered this scrape", value=1)
        yield GaugeMetricFamily(
            "accounts_outbox_waiting", "Account events written, not yet published", value=figures.outbox_waiting
        )
        yield GaugeMetricFamily(
            "accounts_outbox_oldest_age_seconds",
            "How long the oldest unpublished account event has waited (0 when none waits)",
            value=_age(figures.outbox_oldest_at, now),
        )
        pending = GaugeMetricFamily(
            "accounts_interim_rows_pending", "Rows a sink has still to receive", labels=["sink"]
        )
        since = GaugeMetricFamily(
            "accounts_interim_seconds_since_last_delivery",
            "Seconds since the sink last took a delivery without failing (absent: never)",
            labels=["sink"],
        )
        for sink in figures.sinks:
            pending.add_metric([sink.name], sink.pending)
            if sink.last_delivered_at is not None:
                since.add_metric([sink.name], _age(sink.last_delivered_at, now))
        yield pending
        yield since
        yield GaugeMetricFamily(
            "accounts_events_parked", "Tenure events kept until their tenure's create arrives", value=figures.parked
        )
        yield CounterMetricFamily(
            "accounts_ledger_postings", "Transactions posted to the accounts' ledgers, ever", value=figures.postings
        )
        queue = self.metrics.queue()
        if queue is not None:
            waiting, oldest = queue
            yield GaugeMetricFamily("accounts_queue_waiting", "Tenure events waiting in the queue", value=waiting)
            if oldest is not None or waiting == 0:
                yield GaugeMetricFamily(
                    "accounts_queue_oldest_age_seconds",
                    "How long the oldest waiting tenure event has waited (0 when none waits)",
                    value=_age(oldest, now),
                )


def _age(at: datetime | None, now: datetime) -> float:
    return 0.0 if at is None else max(0.0, (now - at).total_seconds())
