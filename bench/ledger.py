"""The ledger's figures (issue 12): posting over HTTP, a statement page, and `accounts ledger verify`.

- Posting: `POST /accounts/{id}/transactions` at 20 connections on a scratch copy of a
  seeded database, each request a posting with an id of its own (wrk's Lua makes a uuid4
  per request; a repeated id would be a retry, answered 200 without posting), to one of
  a few thousand active accounts, so that no one account's lock is the figure. Measured in
  rounds alternating with the ceiling (bare Starlette, a GET at the same 20 connections):
  no posting can be quicker than the server answering a constant. Then the same load on
  one account, every posting queueing for its lock: reported, no target.
- The statement: one account given 1,000 transactions (written as the repository writes
  them), then its pages of 100 (the first and each next by cursor) read by one
  connection: the p50 is the time one page takes.
- `accounts ledger verify` over 1,000,000 transactions on SQLite (bench.ledger_verify's
  seed, cached in the work directory like the other seeds): the CLI timed from its
  start to its exit, which includes importing and starting up. The seed knocks three
  balances off their ledgers, so a run that finds exactly those three checked them all.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from accounts.adapters.database import tables as t
from accounts.adapters.database.bulk import executemany
from accounts.adapters.database.migrate import migrate
from accounts.adapters.database.rows import transaction_values
from accounts.domain.account import AccountStatus
from accounts.domain.ledger import Direction, Transaction, TransactionType
from accounts.domain.rent_week import rent_week_of
from bench import ledger_verify, servers
from bench.cpu import SERVICE, CpuUse, watching
from bench.http_items import Durations, combined
from bench.loadgen import Load, LoadResult, run_load
from bench.seed import Seeded, scratch_copy

STATEMENT_TRANSACTIONS = 1_000
PAGE = 100
VERIFY_ACCOUNTS = 100_000
VERIFY_TRANSACTIONS = 1_000_000
VERIFY_SEED_VERSION = 1  # bump when bench.ledger_verify's rows change, so cached seeds are rebuilt
SPREAD = 5_000  # accounts the spread postings go to (at most: the active ones of the seed's sample)


@dataclass
class LedgerRun:
    size: int  # accounts in the database
    spread: int  # accounts the spread postings went to
    post: LoadResult  # spread over the accounts
    hot: LoadResult  # one account
    ceiling: LoadResult  # bare Starlette GET, the same connections, alternating rounds with `post`
    statement: LoadResult
    statement_lines: int  # transactions in the statement's account (its opening balance included)
    posted: int  # transactions the posting loads added, warm-ups included
    peak_rss: int
    cpu: dict[str, CpuUse] = field(default_factory=dict)  # ceiling, post, hot, statement


@dataclass
class VerifyRun:
    accounts: int
    transactions: int
    seconds: float  # `accounts ledger verify`, from its start to its exit
    exit_code: int
    differing: int  # accounts it reported (the seed knocks DIFFERING off)
    seed_seconds: float  # 0 when the cached seed was reused
    cpu: CpuUse = field(default_factory=CpuUse)


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url)


def active_accounts(url: str, candidates: list[str], count: int) -> list[str]:
    """Up to `count` of the candidates whose account is Active (an Ended account refuses charges)."""
    engine = _engine(url)
    found: list[str] = []
    try:
        with engine.connect() as connection:
            for start in range(0, len(candidates), 500):
                ids = [uuid.UUID(value) for value in candidates[start : start + 500]]
                query = sa.select(t.accounts.c.id).where(
                    t.accounts.c.id.in_(ids), t.accounts.c.account_status == AccountStatus.ACTIVE.value
                )
                active = {str(value) for value in connection.execute(query).scalars()}
                found += [value for value in candidates[start : start + 500] if value in active]
    finally:
        engine.dispose()
    return found[:count]


def seed_statement(url: str, account_id: str, count: int) -> None:
    """`count` transactions for one account, a day apart, charges and payments of one amount in turn:
    they add up to nothing, so the account's stored balance stays the sum of its ledger."""
    at = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    rows = []
    for n in range(count):
        day = date(2023, 4, 3) + timedelta(days=n)
        week = rent_week_of(day)
        charge = n % 2 == 0
        amount = Decimal(10_000 + (n // 2) * 7).scaleb(-2)
        transaction = Transaction(
            id=uuid.uuid4(),
            account_id=uuid.UUID(account_id),
            transaction_type=TransactionType.CHARGE if charge else TransactionType.PAYMENT,
            amount=amount,
            direction=Direction.INCREASE_OWED if charge else Direction.REDUCE_OWED,
            transaction_date=day,
            posted_at=at,
            period_no=week.period_no,
            financial_year=week.financial_year,
            description="Rent" if charge else None,
            reference=None if charge else f"BACS-{n}",
            created_by="bench@localhost",
            reverses_id=None,
            balance_after=Decimal("0.00"),
        )
        rows.append(transaction_values(transaction))
    engine = _engine(url)
    try:
        with engine.begin() as connection:
            executemany(connection, t.account_transactions.insert(), rows)
    finally:
        engine.dispose()


def transactions_in(url: str, account_id: str | None = None) -> int:
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            query = sa.select(sa.func.count()).select_from(t.account_transactions)
            if account_id is not None:
                query = query.where(t.account_transactions.c.account_id == uuid.UUID(account_id))
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


def _request(port: int, method: str, path: str, token: str, body: bytes | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", body, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _check_posting(port: int, token: str, account_id: str) -> None:
    """Before timing: a posting is a 201, the same again a 200 (what the load must never send)."""
    body = json.dumps(
        {"id": str(uuid.uuid4()), "transactionType": "Payment", "amount": 1.25, "transactionDate": "2026-04-06"}
    ).encode()
    path = f"/api/v1/accounts/{account_id}/transactions"
    first, again = _request(port, "POST", path, token, body), _request(port, "POST", path, token, body)
    if (first[0], again[0]) != (201, 200):
        raise RuntimeError(f"POST {path} answered {first[0]} then {again[0]}: {first[1][:300]!r}")


def statement_pages(port: int, token: str, account_id: str) -> list[str]:
    """The paths of every page of 100 of the account's statement: the first, then each by its cursor."""
    path = f"/api/v1/accounts/{account_id}/transactions?limit={PAGE}"
    paths = [path]
    while True:
        status, body = _request(port, "GET", paths[-1], token)
        page = json.loads(body)
        if status != 200 or len(page["transactions"]) == 0:
            raise RuntimeError(f"GET {paths[-1]} answered {status}: {body[:300]!r}")
        if page["nextCursor"] is None:
            return paths
        paths.append(f"{path}&cursor={page['nextCursor']}")


def postings(seeded: Seeded, work: Path, token: str, durations: Durations) -> LedgerRun:
    """Posting (spread, then one hot account) and the statement, on a scratch copy of a seeded database."""
    url = scratch_copy(seeded, work, f"ledger-{seeded.size}")
    migrate(url)  # a cached seed may be older than the ledger's tables
    database = make_url(url).database if seeded.database else None
    accounts = active_accounts(url, [account_id for account_id, _ in seeded.sample], SPREAD + 2)
    statement_account, hot_account, spread = accounts[0], accounts[1], accounts[2:]
    seed_statement(url, statement_account, STATEMENT_TRANSACTIONS)
    before = transactions_in(url)
    c, rounds = durations.write_connections, durations.rounds
    with servers.ceiling(work) as ceiling, servers.service(url, work, name=f"service-ledger-{seeded.size}") as server:
        _check_posting(server.port, token, hot_account)
        spread_paths = [f"/api/v1/accounts/{account_id}/transactions" for account_id in spread]
        ceiling_paths = [f"/api/v1/accounts/{account_id}" for account_id in spread]
        measured: dict[str, list[LoadResult]] = {"ceiling": [], "post": []}
        cpu = {name: CpuUse() for name in ("ceiling", "post", "hot", "statement")}
        for number in range(rounds):
            warm = durations.warmup if number == 0 else min(durations.warmup, 0.5)
            for name, pid, port, kind, paths in (
                ("ceiling", ceiling.process.pid, ceiling.port, "get", ceiling_paths),
                ("post", server.process.pid, server.port, "posting", spread_paths),
            ):
                with watching([pid], database) as use:
                    load = Load(kind, port, token, c, durations.writes / rounds, warm, paths=paths)
                    measured[name].append(run_load(load))
                cpu[name] = cpu[name] + use
        hot_path = [f"/api/v1/accounts/{hot_account}/transactions"]
        with watching([server.process.pid], database) as cpu["hot"]:
            hot = run_load(Load("posting", server.port, token, c, durations.writes, durations.warmup, paths=hot_path))
        pages = statement_pages(server.port, token, statement_account)
        with watching([server.process.pid], database) as cpu["statement"]:
            statement = run_load(Load("get", server.port, token, 1, durations.arrears, durations.warmup, paths=pages))
        server.memory.sample()
        peak = server.memory.peak
    return LedgerRun(
        size=seeded.size,
        spread=len(spread),
        post=combined(measured["post"]),
        hot=hot,
        ceiling=combined(measured["ceiling"]),
        statement=statement,
        statement_lines=transactions_in(url, statement_account),
        posted=transactions_in(url) - before,
        peak_rss=peak,
        cpu=cpu,
    )


def verify_database(cache: Path, accounts: int, transactions: int) -> tuple[str, float]:
    """A SQLite file of `accounts` accounts and about `transactions` transactions, seeded once and reused."""
    folder = cache / "seed"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"ledger-{accounts}-{transactions}-v{VERIFY_SEED_VERSION}.db"
    marker = path.with_suffix(".done")
    url = f"sqlite:///{path.resolve()}"
    if marker.exists() and path.exists():
        return url, 0.0
    marker.unlink(missing_ok=True)
    started = time.perf_counter()
    ledger_verify.seed(url, accounts, transactions)
    marker.write_text(f"{accounts} {transactions}\n", encoding="utf-8")
    return url, time.perf_counter() - started


def verify(cache: Path, work: Path, accounts: int, transactions: int) -> VerifyRun:
    """`accounts ledger verify` as an operator runs it, over the cached seed."""
    url, seed_seconds = verify_database(cache, accounts, transactions)
    migrate(url)  # as `accounts serve` would, should the schema have moved on since the seed
    count = transactions_in(url)
    env = servers.service_env(url, work, 0)
    machine = psutil.cpu_times()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [*servers.accounts_command(), "ledger", "verify", "--limit", "10"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    after, now = resource.getrusage(resource.RUSAGE_CHILDREN), psutil.cpu_times()
    used = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    total, idle = sum(now) - sum(machine), now.idle - machine.idle
    iowait = getattr(now, "iowait", 0.0) - getattr(machine, "iowait", 0.0)
    cpu = CpuUse(seconds, {SERVICE: used}, max(0.0, total - idle - iowait), iowait, os.cpu_count() or 1)
    differing = 0
    for line in done.stdout.splitlines():
        if line.endswith("account(s) whose balance is not the sum of their transactions"):
            differing = int(line.split()[0])
    if done.returncode not in (0, 1):
        raise RuntimeError(f"accounts ledger verify exited {done.returncode}: {done.stderr[-2000:]}")
    return VerifyRun(accounts, count, seconds, done.returncode, differing, seed_seconds, cpu)
