"""The schema comes up once however many processes start together (two workers and the API)."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from accounts.adapters.database.migrate import migrate


def test_four_processes_migrating_a_new_database_at_once_all_succeed(postgres_database: str) -> None:
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def migrate_together() -> None:
        start.wait()
        try:
            migrate(postgres_database)
        except BaseException as error:  # collected: the test names what a process died of
            failures.append(error)

    threads = [threading.Thread(target=migrate_together, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a migration is stuck waiting on another"
    assert failures == []
    engine = sa.create_engine(postgres_database)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM target_types")).scalar_one() == 3
        assert connection.execute(sa.text("SELECT count(*) FROM payment_reference_counter")).scalar_one() == 1
    engine.dispose()


def test_migrating_twice_changes_nothing(sqlite_database: str) -> None:
    migrate(sqlite_database)
    migrate(sqlite_database)
    engine = sa.create_engine(sqlite_database)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM target_types")).scalar_one() == 3
    engine.dispose()
