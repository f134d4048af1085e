"""The arrears worklist's first page at 10,000 and 1,000,000 accounts, on SQLite and PostgreSQL.

The issue's target: p50 under 20 ms at 1,000,000 accounts, and less than twice the time at
10,000. Seeds (once, then reused) accounts in bulk with `rows.account_values`, the row the
repositories write, with varied debts, charges, rent groups and last payments; then times
`WorklistService.page` (the query, the rows made accounts, each account's figures) for each
sort, each way, alone and under a rent group, and prints the plan each database chose.

Then the same pages over HTTP, in-process through the ASGI app (middleware, authorisation, the
route, the threadpool hop, the answer written): `GET /api/v1/arrears-worklist` (JSON) beside the
`/arrears` page (HTML, signed in by the auth cookie), both calling `WorklistService.page` with the
same query. Timed on the server's side of the ASGI interface, from the request handed to the app
to the last byte of the answer handed back (issue 14: a page under 50 ms at 1,000,000 accounts).

    python -m bench.worklist [--sizes 10000,1000000] [--databases sqlite,postgresql] [--runs 200] [--reseed]
                             [--measure service,http]

SQLite files go in var/bench/worklist/; PostgreSQL databases are `bench_worklist_<size>` on
BENCH_POSTGRES_URL's server (the benchmark's own: emptied and reseeded when asked).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from accounts.adapters.database import tables as t
from accounts.adapters.database.bulk import executemany
from accounts.adapters.database.engine import create_engine, is_sqlite
from accounts.adapters.database.repositories import worklist_query
from accounts.adapters.database.rows import account_values
from accounts.adapters.database.unit_of_work import SqlAlchemyUnitOfWork
from accounts.bootstrap import bootstrap
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
from accounts.entrypoints.http.app import create_app
from accounts.entrypoints.http.auth import mint_token
from accounts.entrypoints.http.worklist import encode_cursor
from accounts.service.arrears import WorklistQuery, WorklistService
from accounts.service.unit_of_work import WorklistCursor
from accounts.settings import Settings
from bench.seed import NAMES, STREETS, fresh_database, settle
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
    settle(engine, url)
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


# The same views over HTTP: the JSON route's parameters, which the /arrears page takes too. "next page"
# follows the first page's nextCursor; "previous page" (the page's own, `before`) comes back from the second.
DEEP_DOWN = encode_cursor(WorklistSort.AMOUNT_OWED, True, WorklistCursor(Decimal("100.00"), uuid.UUID(int=0)))
DEEP_UP = encode_cursor(WorklistSort.AMOUNT_OWED, False, WorklistCursor(Decimal("1000.00"), uuid.UUID(int=0)))
HTTP_CASES: list[tuple[str, dict[str, str]]] = [
    ("amountOwed desc", {}),
    ("weeksInArrears desc Garages", {"sortBy": "weeksInArrears", "rentGroupType": "Garages"}),
    (
        "daysSinceLastPayment asc, min 4 weeks",
        {"sortBy": "daysSinceLastPayment", "direction": "asc", "minWeeksInArrears": "4"},
    ),
    ("amountOwed desc, min £500", {"minAmountOwed": "500"}),
    ("amountOwed desc, page 2", {"cursor": "(the first page's nextCursor)"}),
    ("amountOwed desc, page 1 from page 2", {"before": "(page 2's Previous)"}),
    ("amountOwed desc, deep: under £100", {"cursor": DEEP_DOWN}),
    ("amountOwed desc, deep, the page before", {"before": DEEP_DOWN}),
    ("amountOwed asc, deep: over £1,000", {"direction": "asc", "cursor": DEEP_UP}),
]
PAGE_TARGET_MS = 50.0


class ServerClock:
    """ASGI middleware timing the app's own work: the request handed in to the answer's last byte handed out."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.times: list[float] = []
        self.cpu: list[float] = []  # the process's CPU time over the same span: the work, whatever else runs

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, cpu = time.perf_counter(), time.process_time()

        async def timed(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.times.append((time.perf_counter() - started) * 1000)
                self.cpu.append((time.process_time() - cpu) * 1000)

        await self.app(scope, receive, timed)


def _percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times), times[max(int(len(times) * 0.95) - 1, 0)]


async def _measure_http(url: str, runs: int) -> dict[str, dict[str, tuple[float, float, float]]]:
    settings = Settings(
        _env_file=None, environment="development", database_url=url, interim_sinks=[], log_level="WARNING"
    )
    application = bootstrap(settings)
    app = create_app(application)
    clock = ServerClock(app)
    token = mint_token(settings, name="Bench Caseworker", email="bench@localhost", groups=["housing-finance-read"])
    found: dict[str, dict[str, tuple[float, float, float]]] = {}
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=clock),
                base_url="http://bench",
                headers={"Authorization": f"Bearer {token}"},
                cookies={settings.auth_cookie: token},
            ) as client,
        ):
            first = (await client.get("/api/v1/arrears-worklist")).json()
            second = await client.get("/arrears", params={"cursor": first["nextCursor"]})
            previous = re.findall(r'href="([^"]+)" rel="prev"', second.text)[0].replace("&amp;", "&")
            followed = {"cursor": first["nextCursor"], "before": httpx.URL(previous).params["before"]}
            for name, params in HTTP_CASES:
                params = {key: followed[key] if value.startswith("(") else value for key, value in params.items()}
                found[name] = {}
                for route in ("/api/v1/arrears-worklist", "/arrears"):
                    if route != "/arrears" and "before" in params:
                        continue  # the JSON route pages forward only
                    for _ in range(5):  # warm
                        response = await client.get(route, params=params)
                        assert response.status_code == 200, (route, params, response.text[:500])
                    clock.times.clear()
                    clock.cpu.clear()
                    for _ in range(runs):
                        response = await client.get(route, params=params)
                    assert response.status_code == 200 and len(clock.times) == runs
                    if route == "/arrears":
                        assert response.text.count('<tr class="govuk-table__row">') == 51, "a full page and its header"
                    found[name][route] = (*_percentiles(clock.times), statistics.median(clock.cpu))
    finally:
        application.close()
    return found


def measure_http(url: str, runs: int) -> dict[str, dict[str, tuple[float, float, float]]]:
    """p50 and p95 in ms of each HTTP case, the JSON route's and the page's, timed at the server."""
    return asyncio.run(_measure_http(url, runs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--measure", default="service,http", help="service (WorklistService.page), http, or both")
    args = parser.parse_args(argv)
    measuring = set(args.measure.split(","))
    sizes = [int(size) for size in args.sizes.split(",")]
    results: dict[tuple[str, int], dict[str, tuple[float, float]]] = {}
    http: dict[tuple[str, int], dict[str, dict[str, tuple[float, float, float]]]] = {}
    for kind in args.databases.split(","):
        for size in sizes:
            url = database_url(kind, size)
            if not seeded(url, size, args.reseed):
                print(f"{kind} {size:,}: seeded in {seed(url, size):.1f} s")
            print(f"{kind} {size:,} accounts:")
            if "service" in measuring:
                results[kind, size] = measure(url, args.runs)
            if "http" in measuring:
                http[kind, size] = measure_http(url, args.runs)
    if http:
        report_http(http)
    if not results:
        return 0
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


def report_http(http: dict[tuple[str, int], dict[str, dict[str, tuple[float, float, float]]]]) -> None:
    print()
    print("over HTTP, in-process, 50 accounts a page: server-side ms p50 / p95 (CPU p50), JSON route | /arrears page")
    print(f"{'case':<40}" + "".join(f"{kind + ' ' + format(size, ','):>48}" for kind, size in http))
    for name, _ in HTTP_CASES:
        cells = ""
        for key in http:
            figures = http[key][name]
            json = figures.get("/api/v1/arrears-worklist")
            json_cell = "{:.2f} / {:.2f} ({:.2f})".format(*json) if json else "-"
            cells += f"{json_cell:>23} | {'{:.2f} / {:.2f} ({:.2f})'.format(*figures['/arrears']):<22}"
        print(f"{name:<40}{cells}")
    for (kind, size), cases in http.items():
        p50 = max(figures["/arrears"][0] for figures in cases.values())
        p95 = max(figures["/arrears"][1] for figures in cases.values())
        verdict = "under" if p50 < PAGE_TARGET_MS else "OVER"
        print(
            f"{kind} {size:,}: the page's worst p50 {p50:.2f} ms ({verdict} the {PAGE_TARGET_MS:.0f} ms target), p95 {p95:.2f}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
