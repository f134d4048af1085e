"""The database itself: a database that is not there, and writers taking turns on SQLite.

The storage rules (what goes in comes out exactly, versions, unique keys, savepoints,
serials, ...) are one suite in `tests/contract`, run on SQLite, PostgreSQL and the fakes.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from accounts.adapters.database import engine as engine_module
from accounts.bootstrap import bootstrap
from accounts.service.ports import TransientError
from tests.conftest import make_settings


def test_a_database_that_is_not_there_is_a_transient_error() -> None:
    from accounts.adapters.database.engine import create_engine
    from accounts.adapters.database.unit_of_work import SqlAlchemyUnitOfWork

    dead = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    try:
        with pytest.raises(TransientError), SqlAlchemyUnitOfWork(dead) as uow:
            uow.accounts.get(uuid.uuid4())
    finally:
        dead.dispose()


def test_writers_in_one_process_take_turns_and_a_writer_kept_waiting_hears_the_database_is_busy(
    sqlite_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: write transactions queue on the process's writer turn; reads never wait for it."""
    application = bootstrap(make_settings(sqlite_database, tmp_path), run_migrations=True)
    monkeypatch.setattr(engine_module, "WRITER_WAIT_SECONDS", 0.2)
    holding, release = threading.Event(), threading.Event()

    def hold_a_write_transaction() -> None:
        with application.uow() as uow:
            holding.set()
            release.wait(10)
            uow.commit()

    holder = threading.Thread(target=hold_a_write_transaction)
    holder.start()
    try:
        assert holding.wait(10)
        with application.uow(read_only=True) as uow:  # a read goes ahead
            assert uow.target_types.get("Tenure") is not None
        with pytest.raises(TransientError, match="busy"), application.uow() as uow:
            pass
    finally:
        release.set()
        holder.join(10)
    with application.uow() as uow:  # the turn was given back
        uow.commit()
    application.close()
