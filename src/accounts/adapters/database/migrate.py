"""Schema migrations (Alembic), run by `accounts migrate` and at start-up of `accounts serve`."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from accounts.adapters.database.engine import create_engine

MIGRATIONS = Path(__file__).parent / "migrations"

log = logging.getLogger(__name__)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# Any fixed number: the key of the PostgreSQL advisory lock that serialises migrations.
MIGRATION_LOCK = 7_227_001


def migrate(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the schema; the revision it was at and the one it is at now.

    Processes starting together (two workers and the API) take turns on PostgreSQL, so none
    fails half-way through creating what another is creating. Quiet: what it did is logged at
    DEBUG (Alembic's own story too, `runtime.configure_logging`); `accounts migrate` prints it.
    """
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
                connection.commit()
            try:
                before = MigrationContext.configure(connection).get_current_revision()
                connection.commit()
                config = alembic_config(url)
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                connection.commit()
                after = MigrationContext.configure(connection).get_current_revision()
                connection.commit()
            finally:
                if connection.dialect.name == "postgresql":
                    connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                    connection.commit()
    finally:
        engine.dispose()
    log.debug("database schema at revision %s (was %s)", after, before)
    return before, after
