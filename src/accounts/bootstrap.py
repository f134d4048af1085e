"""The composition root: the one place that picks adapters and wires the service layer."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import urlparse

import sqlalchemy as sa

from accounts.adapters.database.engine import create_engine
from accounts.adapters.database.migrate import migrate
from accounts.adapters.database.unit_of_work import SqlAlchemyUnitOfWork
from accounts.adapters.sinks.delivery_lock import DeliveryLocks
from accounts.domain.tenure import RentGroupMap
from accounts.service.accounts import AccountService
from accounts.service.interim_sync import InterimSync
from accounts.service.outbox_relay import OutboxRelay
from accounts.service.ports import AccountReads, InterimSink, MessageBroker, TenureSource
from accounts.service.tenure_events import TenureEventHandler
from accounts.settings import Settings, get_settings

log = logging.getLogger(__name__)


def build_broker(settings: Settings, engine: sa.Engine) -> MessageBroker:
    """A broker chosen by ACCOUNTS_BROKER_URL: embedded, amqp://..., or sqs://QUEUE."""
    url = settings.broker_url
    scheme = urlparse(url).scheme
    if url == "embedded" or scheme == "embedded":
        from accounts.adapters.brokers.embedded import EmbeddedBroker

        return EmbeddedBroker(engine, lease_seconds=settings.embedded_lease_seconds)
    if scheme in ("amqp", "amqps"):
        from accounts.adapters.brokers.rabbitmq import RabbitMqBroker

        return RabbitMqBroker(
            url,
            tenure_exchange=settings.tenure_exchange,
            tenure_queue=settings.tenure_queue,
            accounts_exchange=settings.accounts_exchange,
            prefetch=settings.worker_batch_size,
        )
    if scheme == "sqs":
        from accounts.adapters.brokers.sqs import SqsBroker

        return SqsBroker(
            queue_name=urlparse(url).netloc or settings.tenure_queue,
            region=settings.aws_region,
            endpoint_url=settings.sqs_endpoint_url,
            topic_name=settings.sqs_topic_name,
            accounts_topic_name=settings.sqs_accounts_topic_name,
            visibility_timeout=settings.sqs_visibility_timeout,
            max_receive_count=settings.sqs_max_receive_count,
        )
    raise ValueError(f"ACCOUNTS_BROKER_URL {url!r}: use embedded, amqp://... or sqs://QUEUE")


def build_sink(name: str, settings: Settings) -> InterimSink:
    if name == "spreadsheet":
        from accounts.adapters.sinks.xlsx_workbook import XlsxWorkbookSink

        return XlsxWorkbookSink(settings.spreadsheet_path)
    if name == "database":
        from accounts.adapters.sinks.interim_database import InterimDatabaseSink

        if not settings.interim_database_url:
            raise ValueError("the database sink needs ACCOUNTS_INTERIM_DATABASE_URL")
        return InterimDatabaseSink(settings.interim_database_url, batch_size=settings.interim_batch_size)
    raise ValueError(f"unknown interim sink {name!r}: use spreadsheet or database")


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
    engine: sa.Engine
    accounts: AccountService
    tenure_events: TenureEventHandler
    interim: InterimSync
    reads: AccountReads
    sinks: list[InterimSink] = field(default_factory=list)

    def uow(self, read_only: bool = False) -> SqlAlchemyUnitOfWork:
        return SqlAlchemyUnitOfWork(self.engine, read_only=read_only)

    def broker(self) -> MessageBroker:
        """A new broker connection: each thread that talks to the broker gets its own."""
        return build_broker(self.settings, self.engine)

    def outbox_relay(self, broker: MessageBroker) -> OutboxRelay:
        return OutboxRelay(self.uow, broker)

    def reconcile_targets(self) -> list[InterimSink]:
        """Every interim copy that can be checked: the configured sinks, and any other with a location."""
        names = list(self.settings.interim_sinks)
        if "spreadsheet" not in names and self.settings.spreadsheet_path.exists():
            names.append("spreadsheet")
        if "database" not in names and self.settings.interim_database_url:
            names.append("database")
        return [sink for sink in self.sinks if sink.name in names] + [
            build_sink(name, self.settings) for name in names if name not in {s.name for s in self.sinks}
        ]

    def close(self) -> None:
        self.reads.close()
        self.engine.dispose()


def bootstrap(settings: Settings | None = None, *, run_migrations: bool = False) -> Application:
    settings = settings or get_settings()
    if run_migrations:
        migrate(settings.database_url)
    engine = create_engine(settings.database_url)

    def uow(read_only: bool = False) -> SqlAlchemyUnitOfWork:
        return SqlAlchemyUnitOfWork(engine, read_only=read_only)

    rent_groups = (
        RentGroupMap.from_file(settings.rent_group_map_path) if settings.rent_group_map_path else RentGroupMap.default()
    )
    sink_names = list(dict.fromkeys(settings.interim_sinks))
    sinks = [build_sink(name, settings) for name in sink_names]
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
    return Application(settings, engine, accounts, tenure_events, interim, build_reads(engine, settings), sinks)
