"""The composition root: the one place that picks adapters and wires the service layer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import sqlalchemy as sa

from accounts.adapters import registry
from accounts.adapters.database.engine import create_engine
from accounts.adapters.database.migrate import migrate
from accounts.adapters.database.unit_of_work import SqlAlchemyUnitOfWork
from accounts.adapters.metrics import Metrics
from accounts.adapters.sinks.delivery_lock import DeliveryLocks
from accounts.demo.loader import DemoLoader
from accounts.domain.tenure import RentGroupMap
from accounts.service.accounts import AccountService
from accounts.service.arrears import WorklistService
from accounts.service.charge_runs import ChargeRunService
from accounts.service.dead_letters import DeadLetterService
from accounts.service.interim_sync import InterimSync
from accounts.service.ledger import LedgerService
from accounts.service.listener import FinanceListener, Flag, RetryPolicy
from accounts.service.operations import Figures, SinkFigures, figures, sink_figures
from accounts.service.outbox_relay import OutboxRelay
from accounts.service.payment_files import PaymentFileService, SuspenseService
from accounts.service.ports import AccountReads, InterimSink, MessageBroker, TenureSource
from accounts.service.reconciliations import ReconciliationService
from accounts.service.tenure_events import TenureEventHandler
from accounts.service.unit_of_work import UnitOfWork
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


def build_reads(engine: sa.Engine, settings: Settings | None = None) -> AccountReads:
    """The API's read side, asynchronous, straight from the driver: psycopg's async pool for PostgreSQL,
    the sqlite3 module for an embedded SQLite file."""
    from accounts.adapters.database.account_reads import PostgresAccountReads, SqliteAccountReads

    settings = settings or get_settings()
    if engine.dialect.name == "postgresql":
        return PostgresAccountReads(engine.url, settings.read_pool_size)
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        return SqliteAccountReads(engine, settings.read_cache_mb)
    raise ValueError(f"the API reads from PostgreSQL or a SQLite file, not {engine.url.render_as_string()}")


def build_tenure_source(settings: Settings) -> TenureSource | None:
    if not settings.tenure_api_url:
        return None
    from accounts.adapters.tenure_api import TenureApiClient

    return TenureApiClient(settings.tenure_api_url, settings.tenure_api_token)


@dataclass
class Application:
    settings: Settings
    accounts: AccountService
    tenure_events: TenureEventHandler
    interim: InterimSync
    reads: AccountReads
    ledger: LedgerService
    sinks: list[InterimSink] = field(default_factory=list)
    # Units of work as the services get them: the database's, or those handed to `bootstrap` (fakes, in the
    # service's unit tests); None: the database's on `engine` (an engine replaced by a test is then used).
    uow_factory: Callable[..., UnitOfWork] | None = None
    broker_factory: Callable[[], MessageBroker] | None = None
    _engine: sa.Engine | None = field(default=None, repr=False)
    # Sinks built for reconciling only, once (the page reconciles again and again); closed with the application.
    _checked: list[InterimSink] | None = field(default=None, init=False, repr=False)
    _checking: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    # Every listener this application made: their counts are the process's events metrics.
    listeners: list[FinanceListener] = field(default_factory=list, init=False, repr=False)
    _metrics: Metrics | None = field(default=None, init=False, repr=False)
    # Payment files and suspense (set by `bootstrap`, on the same units of work as the rest).
    payment_files: PaymentFileService = field(init=False, repr=False)
    suspense: SuspenseService = field(init=False, repr=False)
    charge_runs: ChargeRunService = field(kw_only=True)

    @property
    def engine(self) -> sa.Engine:
        """The database's engine; made on first use by an application handed a unit of work."""
        if self._engine is None:
            self._engine = create_engine(self.settings.database_url)
        return self._engine

    @engine.setter
    def engine(self, engine: sa.Engine) -> None:
        self._engine = engine

    @property
    def reconciliations(self) -> ReconciliationService:
        """Reconciling the interim copies on request, each outcome kept (the command and the /interim page)."""
        return ReconciliationService(self.uow, self.reconcile_targets)

    @property
    def dead_letters(self) -> DeadLetterService:
        """The events the listener could not apply: listed, and replayed (the commands and the /interim page)."""
        return DeadLetterService(self.uow)

    @property
    def worklist(self) -> WorklistService:
        """The arrears worklist, on this application's units of work (read only: nothing to wire ahead)."""
        return WorklistService(self.uow)

    @property
    def demo(self) -> DemoLoader:
        """The demonstration data loader, on this application's own services (the paths production takes)."""
        return DemoLoader(
            self.tenure_events, self.accounts, self.charge_runs, self.payment_files, self.worklist, self.suspense
        )

    def uow(self, read_only: bool = False) -> UnitOfWork:
        if self.uow_factory is not None:
            return self.uow_factory(read_only=read_only)
        interim_sinks = [sink.name for sink in self.sinks]
        return SqlAlchemyUnitOfWork(self.engine, read_only=read_only, interim_sinks=interim_sinks)

    def broker(self) -> MessageBroker:
        """A new broker connection: each thread that talks to the broker gets its own."""
        if self.broker_factory is not None:
            return self.broker_factory()
        return build_broker(self.settings, self.engine)

    def outbox_relay(self, broker: MessageBroker) -> OutboxRelay:
        return OutboxRelay(self.uow, broker)

    def listener(self, broker: MessageBroker, stop: Flag | None = None) -> FinanceListener:
        """The finance listener on that broker connection, with the configured attempts and backoff."""
        settings = self.settings
        listener = FinanceListener(
            broker,
            self.tenure_events,
            self.uow,
            self.database_answers,
            RetryPolicy(settings.max_attempts, settings.retry_base_seconds, settings.retry_max_seconds),
            batch_size=settings.worker_batch_size,
            stop=stop if stop is not None else threading.Event(),
        )
        self.listeners.append(listener)
        return listener

    def metrics(self) -> Metrics:
        """This process's metrics (one registry, however many servers expose it)."""
        if self._metrics is None:
            self._metrics = Metrics(lambda: self.listeners, self.figures, self.broker)
        return self._metrics

    def figures(self) -> Figures:
        """Backlogs and their age, as the store has them now (for the metrics)."""
        return figures(self.uow, [sink.name for sink in self.sinks])

    def sink_figures(self) -> list[SinkFigures]:
        """Each configured sink's backlog and last delivery, as the metrics report them (the /interim page)."""
        with self.uow(read_only=True) as uow:
            return sink_figures(uow, [sink.name for sink in self.sinks])

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
        with self._checking:
            if self._checked is None:
                configured = {sink.name for sink in self.sinks}
                self._checked = [
                    build_sink(name, self.settings)
                    for name in registry.sink_names()
                    if name not in configured and registry.sink_adapter(name).has_copy(self.settings)
                ]
        return [*self.sinks, *self._checked]

    def close(self) -> None:
        for sink in [*self.sinks, *(self._checked or [])]:
            sink.close()
        self.reads.close()
        if self._metrics is not None:
            self._metrics.close()
        if self._engine is not None:
            self._engine.dispose()


def bootstrap(
    settings: Settings | None = None,
    *,
    run_migrations: bool = False,
    uow_factory: Callable[..., UnitOfWork] | None = None,
    broker_factory: Callable[[], MessageBroker] | None = None,
    sinks: Sequence[InterimSink] | None = None,
    reads: AccountReads | None = None,
) -> Application:
    """The service wired from settings; a unit of work, a broker, sinks or reads given replace the configured ones.

    Given a unit of work (and reads), no database is touched: the service's handlers run on
    whatever it is, as the unit tests run them on in-memory fakes.
    """
    settings = settings or get_settings()
    # First: a configuration error is told before anything is touched.
    sinks = build_sinks(settings) if sinks is None else list(sinks)
    sink_names = [sink.name for sink in sinks]
    engine: sa.Engine | None = None
    locks: DeliveryLocks | None = None
    given = uow_factory is not None
    if uow_factory is None:
        if run_migrations:
            migrate(settings.database_url)
        engine = create_engine(settings.database_url)
        locks = DeliveryLocks(engine)
        uow_factory = partial(SqlAlchemyUnitOfWork, engine)
    # Every unit of work owes each change to the sinks configured here (and to every one ever registered).
    uow_factory = partial(uow_factory, interim_sinks=sink_names)

    rent_groups = (
        RentGroupMap.from_file(settings.rent_group_map_path) if settings.rent_group_map_path else RentGroupMap.default()
    )
    accounts = AccountService(uow_factory)
    tenure_events = TenureEventHandler(uow_factory, rent_groups, tenure_source=build_tenure_source(settings))
    interim = InterimSync(
        uow_factory,
        sinks,
        batch_size=settings.interim_batch_size,
        locks=locks,
        retry_base_seconds=settings.retry_base_seconds,
        retry_max_seconds=min(settings.retry_max_seconds, 30.0),
    )
    if reads is None:
        engine = engine or create_engine(settings.database_url)
        reads = build_reads(engine, settings)
    application = Application(
        settings,
        accounts,
        tenure_events,
        interim,
        reads,
        LedgerService(uow_factory),
        sinks,
        uow_factory if given else None,
        broker_factory=broker_factory,
        _engine=engine,
        charge_runs=ChargeRunService(uow_factory, batch_size=settings.charge_run_batch_size),
    )
    application.payment_files = PaymentFileService(uow_factory, batch_lines=settings.payment_file_batch_lines)
    application.suspense = SuspenseService(uow_factory)
    return application
