"""A charge run SIGKILLed mid-run, three times, then run again: each charge posted exactly once.

The real `accounts charges run` command is killed at three points of its run (after some
batches have committed, most likely mid-batch), started again each time, and finally run to
the end. Then every active account has exactly one Rent charge for the week, its balance is
its opening balance less that charge, the run counts each charge once, and `accounts ledger
verify` passes. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
import sqlalchemy as sa
from bench.charge_runs import fill

from tests.fixtures.service import Process, Service, wait_until

ACCOUNTS = 3000
BATCH = 100
WEEK = "2026-04-06"


def money(value: object) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def stored_balances(service: Service) -> dict[object, Decimal]:
    with service.engine.connect() as connection:
        return {i: money(b) for i, b in connection.execute(sa.text("SELECT id, account_balance FROM accounts"))}


def accounts_done(service: Service) -> int:
    return int(service.scalar("SELECT max(accounts_done) FROM charge_runs") or 0)


@pytest.mark.slow
def test_a_charge_run_killed_mid_run_and_run_again_posts_each_charge_once(
    database_url: str, service_factory: object
) -> None:
    service: Service = service_factory(database_url, charge_run_batch_size=BATCH)  # type: ignore[operator]
    service.migrate()
    fill(database_url, ACCOUNTS)
    balances = stored_balances(service)
    rng = random.Random(7)
    marks = sorted(rng.sample(range(BATCH, ACCOUNTS - 2 * BATCH), 3))

    for mark in marks:
        process: Process = service.start("charges", "run", "--week-starting", WEEK, name=f"run-to-{mark}")
        wait_until(
            lambda mark=mark, process=process: accounts_done(service) >= mark or not process.alive(),  # type: ignore[misc]
            120,
            f"the run to pass {mark} accounts",
        )
        assert process.alive(), f"the run ended before the kill:\n{process.output()[-2000:]}"
        process.kill()
        assert accounts_done(service) < ACCOUNTS

    finished = service.cli("charges", "run", "--week-starting", WEEK, "--quiet", timeout=300)
    assert "Finished" in finished.stdout and f"charges: {ACCOUNTS:,} posted" in finished.stdout

    charges = service.column("SELECT account_id FROM account_transactions WHERE transaction_type = 'Charge'")
    assert len(charges) == ACCOUNTS and len(set(charges)) == ACCOUNTS
    assert service.scalar("SELECT count(*) FROM charge_runs") == 1  # the same run, carried on each time
    assert service.scalar("SELECT charges_posted FROM charge_runs") == ACCOUNTS
    with service.engine.connect() as connection:
        query = "SELECT account_id, amount FROM account_transactions WHERE transaction_type = 'Charge'"
        rents = {account_id: money(amount) for account_id, amount in connection.execute(sa.text(query))}
    now = stored_balances(service)
    for account_id, before in balances.items():
        assert now[account_id] == before - rents[account_id]
    verify = service.cli("ledger", "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
