"""The composition root: the one place that picks adapters and wires the service layer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa

from accounts.adapters import registry
from accounts.adapters.database.engine import create_engine
from accounts.adapters.database.migrate import migrate
from accounts.adapters.database.unit_of_work import SqlAlchemyUnitOfWork
from accounts.adapters.sinks.delivery_lock import DeliveryLocks
from accounts.domain.tenure import RentGroupMap
from accounts.service.accounts import AccountService
from accounts.service.interim_sync import InterimSync
from accounts.service.listener import FinanceListener, Flag, RetryPolicy
from accounts.service.outbox_relay import OutboxRelay
from accounts.service.ports import AccountReads, InterimSink, MessageBroker, TenureSource
from accounts.service.tenure_events import TenureEventHandler
from accounts.settings import Settings, get_settings

log = logging.getLogger(__name__)


def build_broker(settings: Settings, engine: sa.Engine) -> MessageBroker:
    """A new broker connection, chosen by the scheme of ACCOUNTS_BROKER_URL (`adapters/registry.py`)."""
    return registry.broker_adapter(settings.broker_url).from_settings(settings, engine)


def build_sink(name: str, settings: Settings) -> InterimSink:
    """The interim sink of that name (`adapters/registry.py`); ConfigurationError for an unknown one."""
    return registry.sink_adapter(name).from_settings(settings)


def build_sinks(settings: Settings) -> list[InterimSink]:
    """The sinks ACCOUNTS_INTERIM_SINKS switches on, each once; every name checked before any is built."""
    names = list(dict.fromkeys(settings.interim_sinks))
    for name in names:
        registry.sink_adapter(name)
    return [build_sink(name, settings) for name in names]


@contextmanager
def open_broker(settings: Settings) -> Iterator[MessageBroker]:
    """A broker alone, closed after, for a command that only publishes (no application wired)."""
    engine = create_engine(settings.database_url)
    try:
        broker = build_broker(settings, engine)
        try:
            yield broker
        finally:
            broker.close()
    finally:
        engine.dispose()


@contextmanager
def open_sink(name: str, settings: Settings) -> Iterator[InterimSink]:
    """An interim sink alone, closed after (`accounts interim import-sheet`)."""
    sink = build_sink(name, settings)
    try:
        yield sink
    finally:
        sink.close()


def build_reads(engine: sa.Engine, cache_mb: int = 0) -> AccountReads:
    """The API's read side: straight from the driver for an embedded SQLite file, else through SQLAlchemy."""
    from accounts.adapters.database.account_reads import SqlAccountReads, SqliteAccountReads

    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        return SqliteAccountReads(engine, cache_mb)
    return SqlAccountReads(engine)


def build_tenure_source(settings: Settings) -> TenureSource | None:
    if not settings.tenure_api_url:
        return None
    from accounts.adapters.tenure_api import TenureApiClient

    return TenureApiClient(settings.tenure_api_url, settings.tenure_api_token)


@dataclass
class Application:
    settings: Settings
    engine: sa.Engine
    accounts: AccountService
    tenure_events: TenureEventHandler
    interim: InterimSync
    reads: AccountReads
    sinks: list[InterimSink] = field(default_factory=list)
    # Sinks built for reconciling only; closed with the application.
    _checked: list[InterimSink] = field(default_factory=list, init=False, repr=False)

    def uow(self, read_only: bool = False) -> SqlAlchemyUnitOfWork:
        return SqlAlchemyUnitOfWork(self.engine, read_only=read_only)

    def broker(self) -> MessageBroker:
        """A new broker connection: each thread that talks to the broker gets its own."""
        return build_broker(self.settings, self.engine)

    def outbox_relay(self, broker: MessageBroker) -> OutboxRelay:
        return OutboxRelay(self.uow, broker)

    def listener(self, broker: MessageBroker, stop: Flag | None = None) -> FinanceListener:
        """The finance listener on that broker connection, with the configured attempts and backoff."""
        settings = self.settings
        return FinanceListener(
            broker,
            self.tenure_events,
            self.uow,
            self.database_answers,
            RetryPolicy(settings.max_attempts, settings.retry_base_seconds, settings.retry_max_seconds),
            batch_size=settings.worker_batch_size,
            stop=stop if stop is not None else threading.Event(),
        )

    def database_answers(self) -> bool:
        """Whether the database takes a query now (the listener waits out an outage by asking)."""
        try:
            with self.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except Exception:
            return False
        return True

    def reconcile_targets(self) -> list[InterimSink]:
        """Every interim copy that can be checked: the configured sinks, and any other the settings locate."""
        configured = {sink.name for sink in self.sinks}
        others = [
            build_sink(name, self.settings)
            for name in registry.sink_names()
            if name not in configured and registry.sink_adapter(name).has_copy(self.settings)
        ]
        self._checked.extend(others)
        return [*self.sinks, *others]

    def close(self) -> None:
        for sink in [*self.sinks, *self._checked]:
            sink.close()
        self.reads.close()
        self.engine.dispose()


def bootstrap(settings: Settings | None = None, *, run_migrations: bool = False) -> Application:
    settings = settings or get_settings()
    sinks = build_sinks(settings)  # first: a configuration error is told before anything is touched
    sink_names = [sink.name for sink in sinks]
    if run_migrations:
        migrate(settings.database_url)
    engine = create_engine(settings.database_url)

    def uow(read_only: bool = False) -> SqlAlchemyUnitOfWork:
        return SqlAlchemyUnitOfWork(engine, read_only=read_only)

    rent_groups = (
        RentGroupMap.from_file(settings.rent_group_map_path) if settings.rent_group_map_path else RentGroupMap.default()
    )
    accounts = AccountService(uow, interim_sinks=sink_names)
    tenure_events = TenureEventHandler(
        uow, rent_groups, interim_sinks=sink_names, tenure_source=build_tenure_source(settings)
    )
    interim = InterimSync(
        uow,
        sinks,
        batch_size=settings.interim_batch_size,
        locks=DeliveryLocks(engine),
        retry_base_seconds=settings.retry_base_seconds,
        retry_max_seconds=min(settings.retry_max_seconds, 30.0),
    )
    return Application(
        settings, engine, accounts, tenure_events, interim, build_reads(engine, settings.read_cache_mb), sinks
    )
