"""How long a payment file of 100,000 rows takes to import, and the memory it takes (`accounts payments import`).

The issue's targets: <= 10 s on SQLite, <= 15 s on PostgreSQL, peak memory < 300 MB, with 5% of the
rows going to suspense. The database holds 100,000 tenure accounts (bench.seed: 1 in 20 ended), a
scratch copy per run; the file pays 95% of its rows to active accounts (some accounts twice) and
sets 5% aside: references no account has, mistyped check digits, ended accounts. The real command
runs as a child process; its wall time and peak resident memory (sampled) are reported, with the
import's own time as it prints it, then the same file again (everything already imported) and
`accounts ledger verify`.

    python -m bench.payment_files [--rows 100000] [--accounts 100000] [--database sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import random
import re
import resource
import subprocess
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from accounts.adapters.database import tables as t
from accounts.adapters.database.bulk import executemany
from accounts.adapters.database.engine import create_engine
from accounts.adapters.database.rows import transaction_values
from accounts.domain.ledger import opening_balance
from accounts.domain.payment_file import HEADER
from accounts.domain.payment_reference import FIRST_SERIAL, from_serial
from accounts.domain.polarity import DEFAULT_TARGET_TYPES
from bench.seed import scratch_copy, seeded_database
from bench.servers import MemoryWatch, accounts_command, free_port, service_env
from bench.topology import EMBEDDED, POSTGRES_URL, production

WORK = Path("var/bench/payment_files")
MB = 1024 * 1024
TARGET_SECONDS = {"sqlite": 10.0, "postgresql": 15.0}
TARGET_MB = 300
METHODS = ("Paypoint", "Bank transfer", "Direct debit", "Post Office", "Card")


def write_file(path: Path, rows: int, accounts: int, suspense_share: float = 0.05, seed: int = 5) -> dict[str, int]:
    """The payment file: what bench.seed's accounts would pay in a busy week; returns how many of each kind."""
    rng = random.Random(seed)
    first_day = date(2026, 4, 6)
    kinds = {"active": 0, "unknown": 0, "mistyped": 0, "ended": 0}
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER + "\r\n")
        for n in range(rows):
            index = rng.randrange(accounts)
            if rng.random() < suspense_share:
                kind = rng.choice(("unknown", "mistyped", "ended"))
                if kind == "unknown":
                    reference = from_serial(FIRST_SERIAL + accounts + rng.randrange(1, 10**6))
                elif kind == "mistyped":
                    good = from_serial(FIRST_SERIAL + index)
                    reference = good[:-1] + str((int(good[-1]) + rng.randrange(1, 10)) % 10)
                else:
                    reference = from_serial(FIRST_SERIAL + index - index % 20)  # bench.seed ends every 20th
            else:
                kind = "active"
                index = index if index % 20 else index + 1
                reference = from_serial(FIRST_SERIAL + min(index, accounts - 1))
            kinds[kind] += 1
            amount = Decimal(rng.randrange(100, 50_000)).scaleb(-2)
            day = first_day + timedelta(days=rng.randrange(7))
            out.write(f"{reference},{amount},{day.isoformat()},{rng.choice(METHODS)},BENCH-{seed}-{n:08d}\r\n")
    return kinds


def open_balances(url: str) -> None:
    """bench.seed writes balances without their ledger: open each in it, as migration 0004 does, so that
    `accounts ledger verify` checks what the import changed (a database seeded before 0004 had them opened
    by the migration: those accounts are left as they are)."""
    engine = create_engine(url)
    polarity = {target.name: target.polarity for target in DEFAULT_TARGET_TYPES}
    posted_at = datetime(2026, 4, 1, tzinfo=UTC)
    with engine.begin() as connection:
        a, ledger = t.accounts.c, t.account_transactions.c
        opened = sa.exists().where(ledger.account_id == a.id)
        rows = connection.execute(sa.select(a.id, a.target_type, a.account_balance).where(~opened))
        values = []
        for account_id, target_type, balance in rows:
            opening = opening_balance(
                account_id=account_id,
                balance=Decimal(balance).quantize(Decimal("0.01")),
                polarity=polarity[target_type],
                created_by="bench",
                posted_at=posted_at,
                transaction_date=posted_at.date(),
                transaction_id=uuid.uuid4(),
            )
            if opening is not None:
                values.append(transaction_values(opening))
        executemany(connection, t.account_transactions.insert(), values)
    engine.dispose()


def run(command: list[str], env: dict[str, str]) -> tuple[float, int, str, str]:
    """Wall seconds, peak RSS (bytes) and the output of one command (its CPU seconds on stderr's last line)."""
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watch = MemoryWatch(process.pid, interval=0.05).start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    peak = watch.stop()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{stdout[-2000:]}{stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    return seconds, peak, stdout, f"{stderr}\ncpu {used:.1f} s"


def measure(name: str, url: str, path: Path) -> bool:
    env = service_env(url, WORK, free_port())
    command = [*accounts_command(), "payments", "import", str(path), "--quiet"]
    seconds, peak, stdout, stderr = run(command, env)
    inner = re.search(r"in ([0-9.]+) s", stderr)
    cpu = stderr.rsplit("\n", 1)[-1]
    print(f"{name}: {stdout.splitlines()[0]}")
    print(
        f"{name}: import {float(inner.group(1)) if inner else float('nan'):.1f} s "
        f"(command {seconds:.1f} s wall, start-up included; {cpu} of the command's own), peak RSS {peak / MB:.0f} MB"
    )
    again, again_peak, again_out, _ = run(command, env)
    print(f"{name}: the same file again: {again:.1f} s, peak RSS {again_peak / MB:.0f} MB: {again_out.splitlines()[0]}")
    verified, _, verify_out, _ = run([*accounts_command(), "ledger", "verify"], env)
    print(f"{name}: ledger verify {verified:.1f} s: {verify_out.strip()}")
    import_seconds = float(inner.group(1)) if inner else seconds
    ok = import_seconds <= TARGET_SECONDS[name] and peak < TARGET_MB * MB
    print(
        f"{name}: target <= {TARGET_SECONDS[name]:.0f} s and < {TARGET_MB} MB: {'met' if ok else 'NOT met'}",
        flush=True,
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--postgres-url", default=POSTGRES_URL, help="a maintenance database on the server")
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"payments-{args.rows}.csv"
    kinds = write_file(path, args.rows, args.accounts)
    print(f"{path}: {args.rows:,} rows, {path.stat().st_size / MB:.1f} MB, {kinds}")
    met = True
    names = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    for name in names:
        topology = EMBEDDED if name == "sqlite" else production(args.postgres_url)
        seeded = seeded_database(args.accounts, WORK, topology)
        url = scratch_copy(seeded, WORK, f"payments-{name}")
        open_balances(url)
        met = measure(name, url, path) and met
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
