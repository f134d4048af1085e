"""Databases for the benchmarks: migrated, then filled fast with valid accounts.

Accounts are built as domain `Account` values (so every rule holds) and stored with
SQLAlchemy Core bulk inserts of `account_values`, the row shape the repositories
read. Each size is seeded once and reused by later runs: on SQLite a file in
var/bench/seed/, on PostgreSQL a database of the benchmark's own
(`bench_accounts_<size>_v<SEED_VERSION>`, marked complete by a comment on it).
Only databases whose name contains "bench" are ever emptied.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from accounts.adapters.database import tables as t
from accounts.adapters.database.engine import is_sqlite
from accounts.adapters.database.migrate import migrate
from accounts.adapters.database.repositories import PRN_COUNTER, account_values
from accounts.domain import payment_reference
from accounts.domain.account import (
    Account,
    AccountStatus,
    AccountTenure,
    AccountType,
    ConsolidatedCharge,
    PrimaryTenant,
    RentGroupType,
    TenureTypeRef,
)
from accounts.domain.polarity import DEFAULT_TARGET_TYPES
from bench.topology import Topology, copy_database, database_note, ensure_database, set_database_note

SEED_VERSION = 2  # bump when the seeded rows change shape, so cached databases are rebuilt
CHUNK = 20_000
SAMPLE = 5_000
STREETS = ("Hillman Street", "Mare Street", "Amhurst Road", "Dalston Lane", "Pembury Road", "Well Street")
NAMES = ("Mrs Jane Smith", "Mr Amir Okafor", "Ms Grace Nowak", "Mr Tomasz Begum", "Dr Li Chen", "Miss Fatima Hughes")
TENURE_TYPES = (("SEC", "Secure"), ("INT", "Introductory"), ("LEA", "Leasehold (RTB)"), ("TGA", "Temp Hostel"))
BENCH_USER = "bench@localhost"


@dataclass(frozen=True)
class Seeded:
    """A seeded database and a random sample of what it holds, for the load generators."""

    url: str
    size: int
    sample: list[tuple[str, str]]  # (account id, target id)
    seconds: float  # time spent seeding in this run (0 when reused)
    server_url: str | None = None  # PostgreSQL: the server's maintenance database (for copies)
    database: str | None = None  # PostgreSQL: the database's name


def wipe_postgres(url: str) -> None:
    """Empty a PostgreSQL database whose name says it is for benchmarks."""
    name = make_url(url).database or ""
    if "bench" not in name:
        raise SystemExit(
            f"refusing to empty PostgreSQL database {name!r}: the benchmarks wipe and reseed their database, "
            "so give one whose name contains 'bench' (CREATE DATABASE bench_accounts)"
        )
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text("DROP SCHEMA public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def fresh_database(url: str) -> None:
    """An empty, migrated database at `url` (a SQLite file is deleted first)."""
    if is_sqlite(url):
        path = Path(make_url(url).database or "")
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        wipe_postgres(url)
    migrate(url)


def build_accounts(size: int, first: int = 0) -> list[Account]:
    """`size` valid tenure Master accounts, the `first`-th onwards: mostly in arrears, some in credit, a few ended."""
    rng = random.Random(first + 1)
    created = datetime(2024, 4, 1, 9, 0, tzinfo=UTC)
    accounts = []
    for index in range(first, first + size):
        target = uuid.UUID(int=rng.getrandbits(128), version=4)
        code, description = TENURE_TYPES[index % len(TENURE_TYPES)]
        balance = Decimal(rng.randrange(-250_000, 50_000)).scaleb(-2)
        start = created - timedelta(days=rng.randrange(0, 4000))
        ended = index % 20 == 0
        accounts.append(
            Account(
                id=uuid.UUID(int=rng.getrandbits(128), version=4),
                target_type="Tenure",
                target_id=target,
                account_type=AccountType.MASTER,
                payment_reference=payment_reference.from_serial(payment_reference.FIRST_SERIAL + index),
                created_by=BENCH_USER,
                created_at=created,
                last_updated_by=BENCH_USER,
                last_updated_at=created,
                account_status=AccountStatus.ENDED if ended else AccountStatus.ACTIVE,
                rent_group_type=RentGroupType.HOUSING_REVENUE,
                agreement_type="Master Account",
                account_balance=balance,
                consolidated_balance=balance,
                start_date=start,
                end_date=created if ended else None,
                consolidated_charges=(ConsolidatedCharge("Rent", "Weekly", Decimal("123.45")),),
                tenure=AccountTenure(
                    tenure_id=target,
                    tenure_type=TenureTypeRef(code, description),
                    full_address=f"{rng.randrange(1, 300)} {rng.choice(STREETS)}, Hackney, London E8 1DY",
                    primary_tenants=(PrimaryTenant(uuid.UUID(int=rng.getrandbits(128), version=4), rng.choice(NAMES)),),
                ),
            )
        )
    return accounts


def seed_accounts(url: str, size: int) -> None:
    """Bulk-insert `size` accounts into a fresh, migrated database and move the PRN counter past them."""
    fresh_database(url)
    polarity = {target.name: target for target in DEFAULT_TARGET_TYPES}
    engine = sa.create_engine(url)
    if is_sqlite(url):

        @sa.event.listens_for(engine, "connect")
        def _fast(dbapi_connection: sqlite3.Connection, _record: object) -> None:
            # Seeding only: a crash here just means seeding again.
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA synchronous=OFF")
            dbapi_connection.execute("PRAGMA cache_size=-400000")

    with engine.begin() as connection:
        for start in range(0, size, CHUNK):
            chunk = build_accounts(min(CHUNK, size - start), first=start)
            rows = [
                account_values(account, polarity[account.target_type].amount_owed(account.account_balance))
                for account in chunk
            ]
            connection.execute(t.accounts.insert(), rows)
        connection.execute(
            t.payment_reference_counter.update()
            .where(t.payment_reference_counter.c.name == PRN_COUNTER)
            .values(next_serial=payment_reference.FIRST_SERIAL + size)
        )
    settle(engine, url)
    engine.dispose()


def settle(engine: sa.Engine, url: str) -> None:
    """After a bulk seed: SQLite's WAL folded into the file, and the planner's statistics fresh on both,
    so that what is measured next reads the database as it would stand, not as it was loaded."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if is_sqlite(url):
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            connection.exec_driver_sql("ANALYZE")
        else:
            connection.exec_driver_sql("VACUUM ANALYZE accounts")


def sample(url: str, count: int = SAMPLE, seed: int = 7) -> list[tuple[str, str]]:
    """Random (account id, target id) pairs from the database."""
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        total = int(connection.execute(sa.select(sa.func.count()).select_from(t.accounts)).scalar_one())
        if is_sqlite(url):
            rng = random.Random(seed)
            rowids = rng.sample(range(1, total + 1), min(count, total))
            rows = []
            for start in range(0, len(rowids), 500):
                part = rowids[start : start + 500]
                query = sa.select(t.accounts.c.id, t.accounts.c.target_id).where(
                    sa.text(f"rowid IN ({','.join(map(str, part))})")
                )
                rows.extend(connection.execute(query).all())
        else:
            query = sa.select(t.accounts.c.id, t.accounts.c.target_id).order_by(sa.func.random()).limit(count)
            rows = list(connection.execute(query).all())
    engine.dispose()
    return [(str(row.id), str(row.target_id)) for row in rows]


def seeded_database(size: int, work: Path, topology: Topology, *, reuse: bool = True) -> Seeded:
    """A database holding `size` accounts, seeded once and reused: a SQLite file, or a PostgreSQL database."""
    started = time.perf_counter()
    if topology.server_url is not None:
        name = f"bench_accounts_{size}_v{SEED_VERSION}"
        url = topology.database_url(name)
        assert url is not None
        done = f"bench seed: {size} accounts, version {SEED_VERSION}, complete"
        created = ensure_database(topology.server_url, name)
        seconds = 0.0
        if created or not reuse or database_note(topology.server_url, name) != done:
            set_database_note(topology.server_url, name, "bench seed: seeding")
            seed_accounts(url, size)
            set_database_note(topology.server_url, name, done)
            seconds = time.perf_counter() - started
        else:
            migrate(url)  # the schema may have moved on since it was seeded; `accounts serve` would do the same
        return Seeded(url, size, sample(url), seconds, topology.server_url, name)
    cache = work / "seed"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"accounts-{size}-v{SEED_VERSION}.db"
    marker = path.with_suffix(".done")
    url = f"sqlite:///{path}"
    seconds = 0.0
    if not (reuse and marker.exists() and path.exists()):
        marker.unlink(missing_ok=True)
        seed_accounts(url, size)
        marker.write_text(f"{size}\n", encoding="utf-8")
        seconds = time.perf_counter() - started
    return Seeded(url, size, sample(url), seconds)


def scratch_copy(seeded: Seeded, work: Path, name: str) -> str:
    """A throw-away copy of a seeded database, for benchmarks that write (the seeded one stays as it was)."""
    if seeded.server_url is not None and seeded.database is not None:
        target = f"bench_{name.replace('-', '_')}"
        copy_database(seeded.server_url, seeded.database, target)
        return make_url(seeded.url).set(database=target).render_as_string(hide_password=False)
    source = Path(make_url(seeded.url).database or "")
    target_path = work / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target_path}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target_path) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    shutil.copymode(source, target_path)
    return f"sqlite:///{target_path}"


def seed_tenure_accounts(url: str, creates: list[dict[str, Any]]) -> None:
    """What the listener leaves after these TenureCreatedEvents, written in bulk into a fresh database.

    Each tenure gets its tenure copy, its Master account (built by the domain from the
    copy, as the listener builds it) and its interim row; the sinks are not registered,
    so a worker starting on it queues every row for them, as for a newly enabled sink.
    """
    from accounts.domain.interim import ROW_FIELDS, interim_row
    from accounts.domain.tenure import RentGroupMap, TenureRecord

    fresh_database(url)
    tenure_type = next(target for target in DEFAULT_TARGET_TYPES if target.name == "Tenure")
    rent_groups = RentGroupMap.default()
    at = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for start in range(0, len(creates), CHUNK):
            copies, accounts_, rows = [], [], []
            for index, envelope in enumerate(creates[start : start + CHUNK], start=start):
                moment = datetime.fromisoformat(envelope["dateTime"].replace("Z", "+00:00"))
                record = TenureRecord(uuid.UUID(envelope["entityId"]))
                record.merge(envelope["eventData"]["newData"], moment, whole=True)
                account = Account(
                    id=uuid.UUID(int=random.Random(index).getrandbits(128), version=4),
                    target_type="Tenure",
                    target_id=record.tenure_id,
                    account_type=AccountType.MASTER,
                    payment_reference=payment_reference.from_serial(payment_reference.FIRST_SERIAL + index),
                    created_by=BENCH_USER,
                    created_at=at,
                    last_updated_by=BENCH_USER,
                    last_updated_at=at,
                    agreement_type="Master Account",
                    **record.account_fields(rent_groups, at.date()),
                )
                copies.append(
                    {
                        "tenure_id": record.tenure_id,
                        "data": record.data,
                        "stamps": record.stamps,
                        "complete": record.complete,
                        "updated_at": at,
                    }
                )
                accounts_.append(account_values(account, tenure_type.amount_owed(account.account_balance)))
                row = interim_row(account, record)
                rows.append(
                    {
                        "account_id": account.id,
                        "version": 1,
                        "updated_at": at,
                        **{name: getattr(row, name) for name in ROW_FIELDS},
                    }
                )
            connection.execute(t.tenure_copies.insert(), copies)
            connection.execute(t.accounts.insert(), accounts_)
            connection.execute(t.interim_rows.insert(), rows)
        connection.execute(
            t.payment_reference_counter.update()
            .where(t.payment_reference_counter.c.name == PRN_COUNTER)
            .values(next_serial=payment_reference.FIRST_SERIAL + len(creates))
        )
    engine.dispose()
