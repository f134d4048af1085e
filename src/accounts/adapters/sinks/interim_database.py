"""The interim finance solution's own database: tenancy agreements upserted by payment ref.

Loaded the way the interim loader loads the spreadsheet: bulk-insert into a staging
table, then merge into `tenancy_agreement` keyed by payment ref. Each batch is one
transaction, so a failure leaves every batch either fully merged or not at all, and
delivering again is harmless. SQL Server in production; any SQLAlchemy URL works.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from accounts.domain.interim import InterimRow
from accounts.service.ports import InterimSink, TransientError
from accounts.settings import ConfigurationError, Settings

# The interim solution's schema, not the accounts service's: its own metadata, so the
# service's migrations never see it.
metadata = sa.MetaData()

# Unicode: NVARCHAR on SQL Server, so names and addresses outside Latin-1 survive.
# Lengths are generous; a value too long fails its batch loudly rather than being cut.
_FIELD_COLUMNS = (
    ("rent_group", sa.Unicode(40)),
    ("tenure", sa.Unicode(20)),
    ("start_date", sa.Date()),
    ("end_date", sa.Date()),
    ("property_ref", sa.Unicode(20)),
    ("short_address", sa.Unicode(200)),
    ("address", sa.Unicode(1000)),
    ("post_code", sa.Unicode(16)),
    ("num_bedrooms", sa.Integer()),
    ("title", sa.Unicode(20)),
    ("forename", sa.Unicode(100)),
    ("surname", sa.Unicode(100)),
    ("date_of_birth", sa.Date()),
)
FIELDS = ("payment_ref", *(name for name, _ in _FIELD_COLUMNS))


def _columns() -> list[sa.Column[Any]]:
    columns: list[sa.Column[Any]] = [sa.Column("payment_ref", sa.String(10), nullable=False)]
    for name, type_ in _FIELD_COLUMNS:
        if isinstance(type_, sa.String):
            columns.append(sa.Column(name, type_, nullable=False, server_default=""))
        else:
            columns.append(sa.Column(name, type_, nullable=True))
    columns.append(sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False))
    return columns


tenancy_agreement = sa.Table(
    "tenancy_agreement",
    metadata,
    *_columns(),
    sa.PrimaryKeyConstraint("payment_ref", name="pk_tenancy_agreement"),
)

# batch_id keeps concurrent loaders' rows apart; leading the key, it also indexes the merge.
tenancy_agreement_staging = sa.Table(
    "tenancy_agreement_staging",
    metadata,
    sa.Column("batch_id", sa.String(36), nullable=False),
    *_columns(),
    sa.PrimaryKeyConstraint("batch_id", "payment_ref", name="pk_tenancy_agreement_staging"),
)


class InterimDatabaseSink(InterimSink):
    """Upserts the changed rows into the interim database, `batch_size` rows a transaction."""

    name = "database"
    rewrites_everything = False

    @classmethod
    def from_settings(cls, settings: Settings) -> InterimDatabaseSink:
        if not settings.interim_database_url:
            raise ConfigurationError("ACCOUNTS_INTERIM_SINKS includes database: set ACCOUNTS_INTERIM_DATABASE_URL")
        return cls(settings.interim_database_url, batch_size=settings.interim_batch_size)

    @classmethod
    def has_copy(cls, settings: Settings) -> bool:
        """The interim database's URL is set, so it can be checked."""
        return bool(settings.interim_database_url)

    def __init__(self, url: str, *, batch_size: int = 1000) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size
        self._url = make_url(url)
        self._engine = _create_engine(url)
        self._schema_ready = False

    def create_schema(self) -> None:
        """Create the two tables where missing; safe to call any number of times."""
        with self._transient_failures():
            try:
                metadata.create_all(self._engine, checkfirst=True)
            except sa.exc.DBAPIError as error:
                # Another process created them between our check and our CREATE.
                if _is_connection_failure(error) or not self._tables_exist():
                    raise
        self._schema_ready = True

    def deliver(self, rows: Iterable[InterimRow]) -> None:
        """Merge the rows by payment ref; a repeated payment ref keeps its last row."""
        latest = list({row.payment_ref: row for row in rows}.values())
        if not latest:
            return
        if not self._schema_ready:
            self.create_schema()
        for start in range(0, len(latest), self.batch_size):
            self._merge_batch(latest[start : start + self.batch_size])

    def remove(self, payment_refs: Sequence[str]) -> None:
        """Delete the rows of payment refs that no longer exist (a corrected reference)."""
        refs = sorted(set(payment_refs))
        if not refs:
            return
        if not self._schema_ready:
            self.create_schema()
        # Chunks of at most 1000: SQL Server allows 2100 parameters a statement.
        size = min(self.batch_size, 1000)
        for start in range(0, len(refs), size):
            chunk = refs[start : start + size]
            with self._transient_failures(), self._engine.begin() as connection:
                connection.execute(tenancy_agreement.delete().where(tenancy_agreement.c.payment_ref.in_(chunk)))

    def load_workbook_rows(self, rows: Sequence[InterimRow]) -> None:
        """Load rows read from a workbook (`accounts interim import-sheet`): the same merge."""
        self.deliver(rows)

    def read_rows(self) -> list[InterimRow]:
        """Every tenancy agreement, by payment ref; none before the first delivery."""
        with self._transient_failures():
            if not self._schema_ready and not self._tables_exist():
                return []
            query = sa.select(*(tenancy_agreement.c[name] for name in FIELDS))
            with self._engine.connect() as connection:
                result = connection.execute(query.order_by(tenancy_agreement.c.payment_ref))
                return [InterimRow(**row._asdict()) for row in result]

    def close(self) -> None:
        """Close the pooled connections (a later use opens new ones)."""
        self._engine.dispose()

    def _merge_batch(self, rows: list[InterimRow]) -> None:
        batch_id = str(uuid.uuid4())
        loaded_at = datetime.now(UTC)
        records = [
            {"batch_id": batch_id, "loaded_at": loaded_at, **{name: getattr(row, name) for name in FIELDS}}
            for row in rows
        ]
        staging, target = tenancy_agreement_staging, tenancy_agreement
        in_batch = staging.c.batch_id == batch_id
        copied = (*FIELDS, "loaded_at")
        with self._transient_failures(), self._engine.begin() as connection:
            connection.execute(staging.insert(), records)  # executemany: one round of bulk inserts
            # A portable MERGE: replace every target row the batch carries.
            connection.execute(
                target.delete().where(target.c.payment_ref.in_(sa.select(staging.c.payment_ref).where(in_batch)))
            )
            connection.execute(
                target.insert().from_select(copied, sa.select(*(staging.c[name] for name in copied)).where(in_batch))
            )
            connection.execute(staging.delete().where(in_batch))

    def _tables_exist(self) -> bool:
        inspector = sa.inspect(self._engine)
        return all(inspector.has_table(table.name) for table in metadata.sorted_tables)

    @contextmanager
    def _transient_failures(self) -> Iterator[None]:
        """Lost or refused connections become TransientError, so the flusher retries later.

        After any failure the tables are checked again before the next write: the interim
        database may have come back as a fresh, empty one (restored, or recreated).
        """
        try:
            yield
        except sa.exc.DBAPIError as error:
            self._schema_ready = False
            if _is_connection_failure(error):
                where = self._url.render_as_string(hide_password=True)
                raise TransientError(f"interim database {where} unavailable: {error.orig}") from error
            raise
        except sa.exc.TimeoutError as error:  # no pooled connection came free in time
            raise TransientError(f"interim database connection pool exhausted: {error}") from error


def _is_connection_failure(error: sa.exc.DBAPIError) -> bool:
    # OperationalError also covers deadlocks and SQLite's "database is locked": worth a retry too.
    return error.connection_invalidated or isinstance(error, sa.exc.OperationalError | sa.exc.InterfaceError)


def _create_engine(url: str) -> sa.Engine:
    parsed = make_url(url)
    # hide_parameters: a failed statement's error (logged when a delivery fails) must not quote the rows,
    # which hold tenants' names and dates of birth.
    options: dict[str, Any] = {"pool_pre_ping": True, "hide_parameters": True}
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "postgresql" and driver in ("psycopg", "psycopg2") and "connect_timeout" not in parsed.query:
        # Fail a delivery in seconds, not minutes, when the server is unreachable.
        options["connect_args"] = {"connect_timeout": 10}
    elif backend == "mssql" and driver == "pyodbc":
        # Without it pyodbc sends executemany a row at a time: minutes per 100,000 rows.
        options["fast_executemany"] = True
    elif backend == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(parsed, **options)
