"""Workers starting together all come up: registering the interim sinks is not a race anyone loses."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa

from accounts.adapters.database import tables as t
from accounts.bootstrap import Application, bootstrap
from tests.conftest import make_settings


def test_eight_workers_starting_at_once_register_each_sink_once(postgres_database: str, tmp_path: Path) -> None:
    settings = make_settings(postgres_database, tmp_path, interim_sinks=["spreadsheet"])
    bootstrap(settings, run_migrations=True).close()
    apps = [bootstrap(settings) for _ in range(8)]
    start = threading.Barrier(len(apps))
    failures: list[BaseException] = []

    def start_worker(app: Application) -> None:
        start.wait()
        try:
            app.interim.enable_sinks()
        except BaseException as error:  # collected: the test names what a worker died of
            failures.append(error)

    threads = [threading.Thread(target=start_worker, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert failures == []
        with apps[0].engine.connect() as connection:
            registered = connection.execute(sa.select(t.interim_sinks.c.sink)).scalars().all()
        assert registered == ["spreadsheet"]
    finally:
        for app in apps:
            app.close()
