"""How long a charge run over 100,000 active accounts takes, and the memory it needs (issue 13).

The targets: <= 5 s on SQLite, <= 10 s on PostgreSQL, peak memory < 300 MB. A database is
seeded once (kept: var/bench/charge-runs/ on SQLite, `bench_charge_runs_seed_<n>` on PostgreSQL)
with `n` Active tenure Master accounts, each with a weekly Rent and its interim row (as the
listener leaves them: a charge changes no interim row), and a fresh copy of it is charged by
the real command, `accounts charges run`, in a process of its own:

* **run**: the run's own time (its `startedAt` to its `finishedAt`), and the command's wall time
  (its imports and start-up too), CPU time and peak RSS;
* **rerun**: the same week again (posts nothing; every charge is found posted);
* then `accounts ledger verify` must pass.

    python -m bench.charge_runs [--accounts 100000] [--database sqlite|postgresql|both] [--reseed] [--profile]

`--profile` records the run with py-spy (an SVG flame graph next to the database).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from accounts.adapters.database import tables as t
from accounts.adapters.database.bulk import executemany
from accounts.adapters.database.repositories import PRN_COUNTER, account_values
from accounts.adapters.database.rows import transaction_values
from accounts.domain import payment_reference
from accounts.domain.account import AccountStatus, ConsolidatedCharge
from accounts.domain.interim import ROW_FIELDS, interim_row
from accounts.domain.ledger import opening_balance
from accounts.domain.polarity import DEFAULT_TARGET_TYPES
from bench.seed import BENCH_USER, build_accounts, fresh_database
from bench.topology import POSTGRES_URL, copy_database, database_note, ensure_database, set_database_note

WORK = Path("var/bench/charge-runs")
WEEK = date(2026, 4, 6)  # 2026/27 week 1
CHUNK = 20_000
SEED_VERSION = 2
TARGETS = {"sqlite": 5.0, "postgresql": 10.0}
MEMORY_TARGET_MB = 300


def seed(url: str, size: int) -> None:
    """A fresh database holding `size` Active accounts (`fill`)."""
    fresh_database(url)
    fill(url, size)
    engine = sa.create_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            connection.exec_driver_sql("ANALYZE")
        else:
            connection.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()


def fill(url: str, size: int) -> None:
    """`size` Active accounts with a weekly Rent, their opening balances and interim rows, the PRN counter
    past them, into a migrated database (the crash test uses it too)."""
    tenure = next(target for target in DEFAULT_TARGET_TYPES if target.name == "Tenure")
    rng = random.Random(13)
    at = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for start in range(0, size, CHUNK):
            accounts, rows, openings = [], [], []
            for account in build_accounts(min(CHUNK, size - start), first=start):
                rent = Decimal(rng.randrange(8_000, 20_000)).scaleb(-2)
                account = dataclasses.replace(
                    account,
                    account_status=AccountStatus.ACTIVE,
                    end_date=None,
                    consolidated_charges=(ConsolidatedCharge("Rent", "Weekly", rent),),
                )
                accounts.append(account_values(account, tenure.amount_owed(account.account_balance)))
                opening = opening_balance(
                    account_id=account.id,
                    balance=account.account_balance,
                    polarity=tenure.polarity,
                    created_by=BENCH_USER,
                    posted_at=at,
                    transaction_date=at.date(),
                    transaction_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                )
                if opening is not None:  # the ledger explains the balance, as migration 0004 leaves it
                    openings.append(transaction_values(opening))
                row = interim_row(account, None)
                rows.append(
                    {"account_id": account.id, "version": 1, "updated_at": at}
                    | {name: getattr(row, name) for name in ROW_FIELDS}
                )
            connection.execute(t.accounts.insert(), accounts)
            connection.execute(t.interim_rows.insert(), rows)
            executemany(connection, t.account_transactions.insert(), openings)
        connection.execute(
            t.payment_reference_counter.update()
            .where(t.payment_reference_counter.c.name == PRN_COUNTER)
            .values(next_serial=payment_reference.FIRST_SERIAL + size)
        )
    engine.dispose()


def sqlite_copy(size: int, reseed: bool) -> str:
    WORK.mkdir(parents=True, exist_ok=True)
    pristine = WORK / f"seed-{size}-v{SEED_VERSION}.db"
    marker = pristine.with_suffix(".done")
    if reseed or not marker.exists():
        marker.unlink(missing_ok=True)
        started = time.perf_counter()
        seed(f"sqlite:///{pristine.resolve()}", size)
        marker.write_text("done\n", encoding="utf-8")
        print(f"seeded {pristine} in {time.perf_counter() - started:.1f} s", flush=True)
    target = WORK / f"run-{size}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(pristine) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    source.close()
    copy.close()
    shutil.copymode(pristine, target)
    return f"sqlite:///{target.resolve()}"


def postgres_copy(size: int, reseed: bool, server_url: str) -> str:
    name = f"bench_charge_runs_seed_{size}_v{SEED_VERSION}"
    done = f"bench seed: {size} active accounts, complete"
    created = ensure_database(server_url, name)
    if created or reseed or database_note(server_url, name) != done:
        started = time.perf_counter()
        set_database_note(server_url, name, "bench seed: seeding")
        seed(make_url(server_url).set(database=name).render_as_string(hide_password=False), size)
        set_database_note(server_url, name, done)
        print(f"seeded {name} in {time.perf_counter() - started:.1f} s", flush=True)
    target = f"bench_charge_runs_{size}"
    copy_database(server_url, name, target)
    return make_url(server_url).set(database=target).render_as_string(hide_password=False)


def command(url: str, *args: str, profile: Path | None = None) -> tuple[float, float, float, str]:
    """Run `accounts ...` in a process of its own: (wall s, CPU s, peak RSS MB, stdout)."""
    environment = {
        **os.environ,
        "ACCOUNTS_DATABASE_URL": url,
        "ACCOUNTS_INTERIM_SINKS": "",
        "ACCOUNTS_LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join([str(Path("src").resolve()), str(Path(".").resolve())]),
    }
    argv = [sys.executable, "-m", "accounts.entrypoints.cli", *args]
    if profile is not None:
        py_spy = Path(sys.executable).with_name("py-spy")
        argv = [str(py_spy), "record", "-o", str(profile), "-r", "200", "--", *argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=environment, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own CPU time and peak RSS
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode != 0:
        raise SystemExit(f"accounts {' '.join(args)} failed ({process.returncode}):\n{stderr[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stdout


def run_seconds(url: str) -> tuple[float, int, int]:
    """The last run's own time (started to finished), charges posted and skipped, from its row."""
    engine = sa.create_engine(url)
    runs = t.charge_runs.c
    with engine.connect() as connection:
        row = connection.execute(sa.select(t.charge_runs).order_by(runs.started_at.desc()).limit(1)).one()
    engine.dispose()
    started: Any = row.started_at
    finished: Any = row.finished_at
    return (finished - started).total_seconds(), row.charges_posted, row.charges_skipped


def measure(kind: str, url: str, size: int, profile: bool) -> None:
    print(f"\n{kind}: {size:,} active accounts, week starting {WEEK}", flush=True)
    svg = WORK / f"charge-run-{kind}-{size}.svg" if profile else None
    wall, cpu, rss, _ = command(url, "charges", "run", "--week-starting", WEEK.isoformat(), "--quiet", profile=svg)
    seconds, posted, skipped = run_seconds(url)
    verdict = "meets" if seconds <= TARGETS[kind] and rss < MEMORY_TARGET_MB else "misses"
    print(
        f"  run:    {seconds:6.2f} s the run itself ({posted:,} charges posted, {posted / seconds:,.0f}/s); "
        f"the command {wall:.2f} s wall, {cpu:.2f} s CPU, peak RSS {rss:.0f} MB "
        f"-> {verdict} the targets (<= {TARGETS[kind]:.0f} s, < {MEMORY_TARGET_MB} MB)",
        flush=True,
    )
    if svg is not None:
        print(f"  profile: {svg}")
    wall, cpu, rss, _ = command(url, "charges", "run", "--week-starting", WEEK.isoformat(), "--quiet")
    seconds, posted, skipped = run_seconds(url)
    print(
        f"  rerun:  {seconds:6.2f} s the run itself ({posted} posted, {skipped:,} found posted); "
        f"the command {wall:.2f} s wall, {cpu:.2f} s CPU, peak RSS {rss:.0f} MB",
        flush=True,
    )
    wall, _, _, out = command(url, "ledger", "verify")
    print(f"  verify: {wall:.2f} s: {out.strip()}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", POSTGRES_URL))
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--profile", action="store_true", help="record the run with py-spy")
    args = parser.parse_args(argv)
    print(f"charge run benchmark {uuid.uuid4().hex[:8]}: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    if args.database in ("sqlite", "both"):
        measure("sqlite", sqlite_copy(args.accounts, args.reseed), args.accounts, args.profile)
    if args.database in ("postgresql", "both"):
        measure("postgresql", postgres_copy(args.accounts, args.reseed, args.postgres_url), args.accounts, args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
