"""The search box (`AccountService.search`) at 1,000,000 accounts, on SQLite and PostgreSQL.

A payment reference, whole or its first digits, is a range of the reference's unique index: the same
few rows read at any size. Part of an address or a name is a scan of the accounts' tenure JSON, which
stops at the page's end (51 matches): fast when many accounts match, and at its slowest when none does
(every row read). Prints each database's plans.

Its databases (`bench_search_<size>`, var/bench/search/) are seeded once in SQL, in a minute where
building each account in Python takes ten: tenure accounts whose tenure JSON is as the service writes
it (an address on one of six streets, one of six tenants' names, as `bench.worklist`'s) and a wire
column as wide as the service's; the search reads nothing else.

    python -m bench.search [--sizes 1000000] [--databases sqlite,postgresql] [--runs 20] [--reseed]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from accounts.adapters.database.engine import create_engine, is_sqlite
from accounts.adapters.database.repositories import search_query
from accounts.adapters.database.unit_of_work import SqlAlchemyUnitOfWork
from accounts.service.accounts import AccountService, search_text
from bench.seed import NAMES as TENANTS
from bench.seed import STREETS, fresh_database, settle
from bench.topology import POSTGRES_URL, database_note, ensure_database, set_database_note

WORK = Path("var/bench/search")
NOTE = "search seeded v1"
FIRST_REFERENCE = 1_000_000_000
WIRE = 1_200  # characters: about an account's wire JSON, which every row carries

NAMES = [
    "a whole payment reference",
    "its first 7 digits",
    "a common name (1 in 6)",
    "a house and street (1 in 900)",
    "text no account has (worst: every row)",
]


def cases(size: int) -> list[tuple[str, str]]:
    """Each search, with a payment reference from the middle of the seeded ones (`seed` numbers them from
    1000000000: the shape of a reference, no check digit, which no search looks at)."""
    middle = str(FIRST_REFERENCE + size // 2)
    return list(zip(NAMES, [middle, middle[:7], "okafor", "17 Mare Street", "Nowhere Close"], strict=True))


def database_url(kind: str, size: int) -> str:
    if kind == "sqlite":
        return f"sqlite:///{(WORK / f'search_{size}.db').resolve()}"
    server = make_url(os.environ.get("BENCH_POSTGRES_URL", POSTGRES_URL))
    return server.set(database=f"bench_search_{size}").render_as_string(hide_password=False)


def seeded(url: str, size: int, reseed: bool) -> bool:
    """Whether the database holds the seeding already (and so is reused); the database exists after it."""
    if is_sqlite(url):
        return not reseed and Path(make_url(url).database or "").exists()
    server = make_url(url).set(database="postgres").render_as_string(hide_password=False)
    ensure_database(server, make_url(url).database or "")
    return not reseed and database_note(server, make_url(url).database or "") == f"{NOTE} {size}"


def _choice(values: tuple[str, ...], number: str) -> str:
    """SQL picking one of `values` by a number expression."""
    cases = " ".join(f"WHEN {i} THEN '{value}'" for i, value in enumerate(values))
    return f"CASE {number} % {len(values)} {cases} END"


def seed(url: str, size: int) -> float:
    """`size` tenure accounts, written by the database itself (a series of numbers made rows)."""
    started = time.perf_counter()
    fresh_database(url)
    engine = create_engine(url)
    street, name = _choice(STREETS, "(n * 7 + n / 6)"), _choice(TENANTS, "(n / 6 + n * 5 / 11)")
    house = "(1 + (n * 37) % 300)"
    columns = (
        "id, target_type, target_id, account_type, rent_group_type, agreement_type, account_balance,"
        " consolidated_balance, amount_owed, payment_reference, created_by, created_at, last_updated_by,"
        " last_updated_at, account_status, consolidated_charges, tenure, version, wire"
    )
    if is_sqlite(url):
        sql = f"""
            WITH RECURSIVE numbers(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM numbers WHERE n < {size - 1})
            INSERT INTO accounts ({columns})
            SELECT lower(hex(randomblob(16))), 'Tenure', target, 'Master', 'Tenant', 'Master Account', 0, 0, 0,
                   CAST({FIRST_REFERENCE} + n AS TEXT), 'bench@localhost', '2024-04-01 09:00:00.000000', 'bench@localhost',
                   '2024-04-01 09:00:00.000000', 'Active', '[]',
                   json_object('tenureId', target, 'tenureType', json_object('code', 'SEC', 'description', 'Secure'),
                               'fullAddress', {house} || ' ' || {street} || ', Hackney, London E8 1DY',
                               'primaryTenants', json_array(json_object('id', lower(hex(randomblob(16))),
                                                                        'fullName', {name}))),
                   1, substr(hex(zeroblob({WIRE // 2})), 1, {WIRE})
            FROM (SELECT n, lower(hex(randomblob(16))) AS target FROM numbers)
        """
    else:
        sql = f"""
            INSERT INTO accounts ({columns})
            SELECT gen_random_uuid(), 'Tenure', target, 'Master', 'Tenant', 'Master Account', 0, 0, 0,
                   ({FIRST_REFERENCE} + n)::text, 'bench@localhost', '2024-04-01 09:00:00+00', 'bench@localhost',
                   '2024-04-01 09:00:00+00', 'Active', '[]',
                   json_build_object('tenureId', target, 'tenureType',
                                     json_build_object('code', 'SEC', 'description', 'Secure'),
                                     'fullAddress', {house} || ' ' || {street} || ', Hackney, London E8 1DY',
                                     'primaryTenants', json_build_array(json_build_object('id', gen_random_uuid(),
                                                                                          'fullName', {name}))),
                   1, repeat('x', {WIRE})
            FROM (SELECT n, gen_random_uuid() AS target FROM generate_series(0, {size - 1}) AS n) AS numbered
        """
    with engine.begin() as connection:
        connection.execute(sa.text(sql))
    settle(engine, url)
    engine.dispose()
    if not is_sqlite(url):
        server = make_url(url).set(database="postgres").render_as_string(hide_password=False)
        set_database_note(server, make_url(url).database or "", f"{NOTE} {size}")
    return time.perf_counter() - started


def measure(url: str, size: int, runs: int) -> dict[str, tuple[float, float, int]]:
    """p50 and p95 in ms of each search through the service, and how many accounts it listed."""
    engine = create_engine(url)
    service = AccountService(lambda read_only=False: SqlAlchemyUnitOfWork(engine, read_only=read_only))
    found = {}
    for name, text in cases(size):
        service.search(text)  # warm: the pool, the statement caches, the pages
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            result = service.search(text)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        found[name] = (statistics.median(times), times[max(int(len(times) * 0.95) - 1, 0)], len(result.accounts))
    print("   plans:")
    for name, text in cases(size):
        print(f"     {name} ({text!r}):")
        for line in plan(engine, search_text(text)):
            print(f"       {line}")
    engine.dispose()
    return found


def plan(engine: sa.Engine, text: str) -> list[str]:
    with engine.connect() as connection:
        query, parameters = search_query(connection.dialect.name, text, 51)
        bound = query.params({k: v for k, v in parameters.items() if v is not None})
        sql = str(bound.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
        if connection.dialect.name == "sqlite":
            return [row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
        return [row[0] for row in connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--reseed", action="store_true")
    args = parser.parse_args(argv)
    results: dict[tuple[str, int], dict[str, tuple[float, float, int]]] = {}
    for kind in args.databases.split(","):
        for size in (int(size) for size in args.sizes.split(",")):
            url = database_url(kind, size)
            if not seeded(url, size, args.reseed):
                print(f"{kind} {size:,}: seeded in {seed(url, size):.1f} s")
            print(f"{kind} {size:,} accounts:")
            results[kind, size] = measure(url, size, args.runs)
    print()
    print("a search through AccountService.search (at most 50 listed), ms: p50 / p95 (accounts listed)")
    print(f"{'search':<42}" + "".join(f"{kind + ' ' + format(size, ','):>28}" for kind, size in results))
    for name in NAMES:
        cells = "".join(
            f"{results[key][name][0]:>14.1f} / {results[key][name][1]:>7.1f} ({results[key][name][2]:>2})"
            for key in results
        )
        print(f"{name:<42}{cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
