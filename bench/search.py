"""The search box (`AccountService.search`) at 1,000,000 accounts, on SQLite and PostgreSQL.

A payment reference, whole or its first digits, is a range of the reference's unique index: the same
few rows read at any size. Part of an address or a name is a scan of the accounts' tenure JSON, which
stops at the page's end (51 matches): fast when many accounts match, and at its slowest when none does
(every row read). Reuses the arrears worklist benchmark's databases (`bench.worklist`: seeded once,
six streets and six names among 1,000,000 accounts), and prints each database's plans.

    python -m bench.search [--sizes 1000000] [--databases sqlite,postgresql] [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import sqlalchemy as sa

from accounts.adapters.database.engine import create_engine
from accounts.adapters.database.repositories import search_query
from accounts.adapters.database.unit_of_work import SqlAlchemyUnitOfWork
from accounts.domain import payment_reference
from accounts.service.accounts import AccountService, search_text
from bench.worklist import database_url, seed, seeded

NAMES = [
    "a whole payment reference",
    "its first 7 digits",
    "a common name (1 in 6)",
    "a house and street (about 1 in 1,800)",
    "text no account has (worst: every row)",
]


def cases(size: int) -> list[tuple[str, str]]:
    """Each search, with a payment reference from the middle of the seeded ones."""
    middle = payment_reference.from_serial(payment_reference.FIRST_SERIAL + size // 2)
    return list(zip(NAMES, [middle, middle[:7], "okafor", "17 Mare Street", "Nowhere Close"], strict=True))


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
    args = parser.parse_args(argv)
    results: dict[tuple[str, int], dict[str, tuple[float, float, int]]] = {}
    for kind in args.databases.split(","):
        for size in (int(size) for size in args.sizes.split(",")):
            url = database_url(kind, size)
            if not seeded(url, size, reseed=False):
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
