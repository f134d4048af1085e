"""The arrears worklist's first page at 10,000 and 1,000,000 accounts, on SQLite and PostgreSQL.

The issue's target: p50 under 20 ms at 1,000,000 accounts, and less than twice the time at
10,000. Seeds (once, then reused) accounts in bulk with `rows.account_values`, the row the
repositories write, with varied debts, charges, rent groups and last payments; then times
`WorklistService.page` (the query, the rows made accounts, each account's figures) for each
sort, each way, alone and under a rent group, and prints the plan each database chose.

    python -m bench.worklist [--sizes 10000,1000000] [--databases sqlite,postgresql] [--runs 200] [--reseed]

SQLite files go in var/bench/worklist/; PostgreSQL databases are `bench_worklist_<size>` on
BENCH_POSTGRES_URL's server (the benchmark's own: emptied and reseeded when asked).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from accounts.adapters.database import tables as t
from accounts.adapters.database.bulk import executemany
from accounts.adapters.database.engine import create_engine, is_sqlite
from accounts.adapters.database.repositories import worklist_query
from accounts.adapters.database.rows import account_values
from accounts.adapters.database.unit_of_work import SqlAlchemyUnitOfWork
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
from accounts.domain.arrears import WorklistSort
from accounts.service.arrears import WorklistQuery, WorklistService
from bench.seed import NAMES, STREETS, fresh_database
from bench.topology import POSTGRES_URL, database_note, ensure_database, set_database_note

WORK = Path("var/bench/worklist")
NOTE = "worklist seeded v1"
CHUNK = 20_000
GROUPS = (RentGroupType.TENANT, RentGroupType.HOUSING_REVENUE, RentGroupType.GARAGES, RentGroupType.LEASE_HOLDERS)
FREQUENCIES = (("Weekly", "123.45"), ("Fortnightly", "240.00"), ("Monthly", "520.00"), ("Yearly", "6000.00"))
CREATED = datetime(2024, 4, 1, 9, 0, tzinfo=UTC)
TODAY = date(2026, 6, 10)


def build(size: int, first: int) -> list[Account]:
    """Accounts: about three in four owing, of four rent groups, a few with no charge, most paid at some point."""
    rng = random.Random(first + 1)
    accounts = []
    for index in range(first, first + size):
        target = uuid.UUID(int=rng.getrandbits(128), version=4)
        balance = Decimal(rng.randrange(-500_000, 150_000)).scaleb(-2)
        frequency, amount = FREQUENCIES[index % len(FREQUENCIES)]
        charges = () if index % 25 == 0 else (ConsolidatedCharge("Rent", frequency, Decimal(amount)),)
        paid = rng.random() < 0.9
        accounts.append(
            Account(
                id=uuid.UUID(int=rng.getrandbits(128), version=4),
                target_type="Tenure",
                target_id=target,
                account_type=AccountType.MASTER,
                payment_reference=payment_reference.from_serial(payment_reference.FIRST_SERIAL + index),
                created_by="bench@localhost",
                created_at=CREATED,
                last_updated_by="bench@localhost",
                last_updated_at=CREATED + timedelta(days=rng.randrange(0, 790)),
                account_status=AccountStatus.ENDED if index % 20 == 0 else AccountStatus.ACTIVE,
                rent_group_type=GROUPS[index % len(GROUPS)],
                agreement_type="Master Account",
                account_balance=balance,
                consolidated_balance=balance,
                start_date=CREATED - timedelta(days=rng.randrange(0, 4000)),
                consolidated_charges=charges,
                tenure=AccountTenure(
                    tenure_id=target,
                    tenure_type=TenureTypeRef("SEC", "Secure"),
                    full_address=f"{rng.randrange(1, 300)} {rng.choice(STREETS)}, Hackney, London E8 1DY",
                    primary_tenants=(PrimaryTenant(uuid.UUID(int=rng.getrandbits(128), version=4), rng.choice(NAMES)),),
                ),
                last_payment_date=TODAY - timedelta(days=rng.randrange(0, 700)) if paid else None,
                last_payment_amount=Decimal(rng.randrange(100, 50_000)).scaleb(-2) if paid else None,
            )
        )
    return accounts


def database_url(kind: str, size: int) -> str:
    if kind == "sqlite":
        return f"sqlite:///{(WORK / f'worklist_{size}.db').resolve()}"
    server = make_url(os.environ.get("BENCH_POSTGRES_URL", POSTGRES_URL))
    return server.set(database=f"bench_worklist_{size}").render_as_string(hide_password=False)


def seeded(url: str, size: int, reseed: bool) -> bool:
    """Whether the database holds the seeding already (and so is reused)."""
    if is_sqlite(url):
        return not reseed and Path(make_url(url).database or "").exists()
    server = make_url(url).set(database="postgres").render_as_string(hide_password=False)
    name = make_url(url).database or ""
    ensure_database(server, name)
    return not reseed and database_note(server, name) == f"{NOTE} {size}"


def seed(url: str, size: int) -> float:
    started = time.perf_counter()
    fresh_database(url)
    engine = create_engine(url)
    insert = t.accounts.insert()
    with engine.begin() as connection:
        for start in range(0, size, CHUNK):
            rows = [account_values(a, -a.account_balance) for a in build(min(CHUNK, size - start), start)]
            executemany(connection, insert, rows)  # COPY on PostgreSQL
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if is_sqlite(url):
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            connection.exec_driver_sql("ANALYZE")
        else:
            connection.exec_driver_sql("VACUUM ANALYZE accounts")
    engine.dispose()
    if not is_sqlite(url):
        server = make_url(url).set(database="postgres").render_as_string(hide_password=False)
        set_database_note(server, make_url(url).database or "", f"{NOTE} {size}")
    return time.perf_counter() - started


CASES: list[tuple[str, WorklistQuery]] = [
    (f"{sort.value} {'desc' if descending else 'asc'}{' Garages' if group else ''}", query)
    for sort in WorklistSort
    for descending in (True, False)
    for group in (None, RentGroupType.GARAGES)
    for query in [WorklistQuery(rent_group=group, sort=sort, descending=descending)]
]


def plan(engine: sa.Engine, query: WorklistQuery) -> list[str]:
    statement = worklist_query(
        query.rent_group, query.min_weeks, query.min_owed, query.sort, query.descending, query.after, query.limit
    )
    with engine.connect() as connection:
        sql = str(statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
        if connection.dialect.name == "sqlite":
            return [row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
        return [row[0] for row in connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}")]


def measure(url: str, runs: int) -> dict[str, tuple[float, float]]:
    """p50 and p95 in ms of each case's first page, through the service as the API calls it."""
    engine = create_engine(url)
    service = WorklistService(lambda read_only=False: SqlAlchemyUnitOfWork(engine, read_only=read_only))
    found = {}
    for name, query in CASES:
        for _ in range(5):  # warm: the pool, the statement caches, the pages
            service.page(query)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            page = service.page(query)
            times.append((time.perf_counter() - started) * 1000)
        assert len(page.entries) == query.limit and page.next_page is not None
        times.sort()
        found[name] = (statistics.median(times), times[int(len(times) * 0.95) - 1])
    print("   plans (first page, no rent group, then Garages):")
    for name, query in CASES:
        if query.descending:
            print(f"     {name}:")
            for line in plan(engine, query):
                print(f"       {line}")
    engine.dispose()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--reseed", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    results: dict[tuple[str, int], dict[str, tuple[float, float]]] = {}
    for kind in args.databases.split(","):
        for size in sizes:
            url = database_url(kind, size)
            if not seeded(url, size, args.reseed):
                print(f"{kind} {size:,}: seeded in {seed(url, size):.1f} s")
            print(f"{kind} {size:,} accounts:")
            results[kind, size] = measure(url, args.runs)
    print()
    print("first page (50 accounts) through WorklistService.page, ms: p50 / p95")
    header = f"{'case':<34}" + "".join(f"{kind + ' ' + format(size, ','):>24}" for kind, size in results)
    print(header)
    for name, _ in CASES:
        cells = "".join(f"{results[key][name][0]:>15.2f} / {results[key][name][1]:>6.2f}" for key in results)
        print(f"{name:<34}{cells}")
    for kind in args.databases.split(","):
        if (kind, sizes[0]) in results and (kind, sizes[-1]) in results and len(sizes) > 1:
            small, large = results[kind, sizes[0]], results[kind, sizes[-1]]
            worst = max(large[name][0] for name, _ in CASES)
            growth = max(large[name][0] / small[name][0] for name, _ in CASES)
            print(f"{kind}: worst p50 at {sizes[-1]:,} {worst:.2f} ms; largest growth from {sizes[0]:,} {growth:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
