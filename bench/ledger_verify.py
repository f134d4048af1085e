"""How long the ledger's check of every balance takes (`Transactions.differences`, what `accounts ledger verify` runs).

The issue's target: under 10 s over 1,000,000 transactions on SQLite. Seeds a SQLite file
(kept in var/bench/ledger/ and reused) with accounts whose balances their transactions
explain, all but a few, then times one full pass of `differences()` through the unit of
work as the service runs it, and prints the query plan SQLite chose.

    python -m bench.ledger_verify [--accounts 100000] [--transactions 1000000] [--reseed]
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from accounts.adapters.database import tables as t
from accounts.adapters.database.bulk import executemany
from accounts.adapters.database.engine import create_engine
from accounts.adapters.database.repositories import _DIFFERENCES
from accounts.adapters.database.rows import transaction_values
from accounts.adapters.database.unit_of_work import SqlAlchemyUnitOfWork
from accounts.domain.ledger import Direction, Transaction, TransactionType
from accounts.domain.rent_week import rent_week_of
from bench.seed import seed_accounts

WORK = Path("var/bench/ledger")
DIFFERING = 3  # accounts whose stored balance is then knocked off their ledger's
_INSERT = t.account_transactions.insert()
_TYPES = (
    (TransactionType.CHARGE, Direction.INCREASE_OWED),
    (TransactionType.PAYMENT, Direction.REDUCE_OWED),
    (TransactionType.HOUSING_BENEFIT, Direction.REDUCE_OWED),
)


def seed(url: str, accounts: int, transactions: int) -> None:
    """Accounts (bench.seed), then transactions that bring each one's ledger to its stored balance."""
    seed_accounts(url, accounts)
    engine = create_engine(url)
    rng = random.Random(11)
    posted_at = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    days = [date(2025, 4, 7) + timedelta(days=n) for n in range(0, 280, 7)]
    weeks = {day: rent_week_of(day) for day in days}
    per_account = max(1, transactions // accounts)
    with engine.begin() as connection:
        balances = connection.execute(sa.select(t.accounts.c.id, t.accounts.c.account_balance)).all()
        rows: list[dict[str, Any]] = []
        for account_id, balance in balances:
            owed_target = -Decimal(balance).quantize(Decimal("0.01"))  # Tenure: NegativeIsArrears
            owed = Decimal("0.00")
            for n in range(per_account - 1):
                kind, direction = _TYPES[n % len(_TYPES)]
                amount = Decimal(rng.randrange(1, 50_000)).scaleb(-2)
                owed += amount if direction is Direction.INCREASE_OWED else -amount
                rows.append(_row(account_id, kind, direction, amount, days[n % len(days)], weeks, posted_at))
            rest = owed_target - owed
            if rest:
                direction = Direction.INCREASE_OWED if rest > 0 else Direction.REDUCE_OWED
                day = days[(per_account - 1) % len(days)]
                rows.append(_row(account_id, TransactionType.ADJUSTMENT, direction, abs(rest), day, weeks, posted_at))
            if len(rows) >= 50_000:
                executemany(connection, _INSERT, rows)
                rows = []
        executemany(connection, _INSERT, rows)
        for account_id, _ in balances[:DIFFERING]:
            connection.execute(
                t.accounts.update()
                .where(t.accounts.c.id == account_id)
                .values(account_balance=t.accounts.c.account_balance + Decimal("0.01"))
            )
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.exec_driver_sql("ANALYZE")
    engine.dispose()


def _row(
    account_id: uuid.UUID,
    kind: TransactionType,
    direction: Direction,
    amount: Decimal,
    day: date,
    weeks: dict[date, Any],
    posted_at: datetime,
) -> dict[str, Any]:
    """The row the repository writes for such a transaction (`transaction_values`)."""
    week = weeks[day]
    transaction = Transaction(
        id=uuid.uuid4(),
        account_id=account_id,
        transaction_type=kind,
        amount=amount,
        direction=direction,
        transaction_date=day,
        posted_at=posted_at,
        period_no=week.period_no,
        financial_year=week.financial_year,
        description=None,
        reference=None,
        created_by="bench@localhost",
        reverses_id=None,
        balance_after=Decimal("0.00"),
    )
    return transaction_values(transaction)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    path = WORK / f"ledger_{args.accounts}_{args.transactions}.db"
    url = f"sqlite:///{path.resolve()}"
    if args.reseed or not path.exists():
        started = time.perf_counter()
        seed(url, args.accounts, args.transactions)
        print(f"seeded {path} in {time.perf_counter() - started:.1f} s")
    engine = create_engine(url)
    with engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(t.account_transactions)).scalar_one()
        sql = _DIFFERENCES.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
        plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
    print(f"{count} transactions; plan:")
    for row in plan:
        print("   ", row[-1])
    for _ in range(args.runs):
        started = time.perf_counter()
        with SqlAlchemyUnitOfWork(engine, read_only=True) as uow:
            found = list(uow.transactions.differences())
        seconds = time.perf_counter() - started
        print(f"differences(): {len(found)} accounts differ, {seconds:.2f} s")
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
