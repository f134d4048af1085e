"""One delivery at a time to each sink, across processes sharing the service's database
(`accounts serve` beside `accounts worker`, or `accounts interim rebuild` while a worker runs)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import sqlalchemy as sa

from accounts.adapters.database.engine import create_engine
from accounts.adapters.sinks.delivery_lock import DeliveryLocks

HOLDER = textwrap.dedent(
    """
    import sys
    from accounts.adapters.database.engine import create_engine
    from accounts.adapters.sinks.delivery_lock import DeliveryLocks

    with DeliveryLocks(create_engine(sys.argv[1])).hold("spreadsheet") as held:
        print("held" if held else "busy", flush=True)
        sys.stdin.readline()  # hold until told to let go
    """
)


def test_another_process_delivering_to_a_sink_keeps_this_one_out_until_it_is_done(database_url: str) -> None:
    engine = create_engine(database_url)
    locks = DeliveryLocks(engine)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, database_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "held"
        with locks.hold("spreadsheet") as held:
            assert held is False
        with locks.hold("spreadsheet", wait=0.3) as held:
            assert held is False
        with locks.hold("database") as held:  # another sink: no waiting
            assert held is True
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.wait(10) == 0
        with locks.hold("spreadsheet", wait=5) as held:
            assert held is True
    finally:
        if holder.poll() is None:
            holder.kill()
        engine.dispose()


def test_two_threads_of_one_process_take_turns(database_url: str) -> None:
    engine = create_engine(database_url)
    locks = DeliveryLocks(engine)
    inside, release = threading.Event(), threading.Event()
    outcomes: list[bool] = []

    def deliver() -> None:
        with locks.hold("spreadsheet") as held:
            outcomes.append(held)
            inside.set()
            release.wait(10)

    first = threading.Thread(target=deliver)
    first.start()
    try:
        assert inside.wait(10)
        with locks.hold("spreadsheet") as held:
            assert held is False
    finally:
        release.set()
        first.join()
    with locks.hold("spreadsheet") as held:
        assert held is True
    assert outcomes == [True]
    if database_url.startswith("postgresql"):
        with engine.connect() as connection:  # nothing left behind: every advisory lock was let go
            mine = "SELECT oid FROM pg_database WHERE datname = current_database()"
            query = f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = ({mine})"
            assert connection.scalar(sa.text(query)) == 0
    engine.dispose()
