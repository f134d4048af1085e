"""`accounts payments import` SIGKILLed part-way through a file, twice, then run again to the end.

Each batch of lines is one database transaction, and each payment's transaction id comes from its
bank reference, so whatever the kills interrupted: every payment is posted exactly once, every
line meant for suspense is set aside once, each posting's events are in the outbox once, and
`accounts ledger verify` is clean. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from accounts.adapters.database import tables as t
from accounts.bootstrap import bootstrap
from accounts.domain.account import Actor
from accounts.domain.payment_file import HEADER
from accounts.domain.payment_reference import from_serial
from tests.conftest import make_settings
from tests.fixtures.service import wait_until
from tests.unit.test_service_accounts import a_tenure_master

ACCOUNTS = 150
LINES = 6_000
BATCH = 200
KILLS = 2


def payment_file(path: Path, references: list[str], rng: random.Random) -> tuple[Counter[str], int]:
    """LINES payments, 1 in 20 to a reference no account has; what each account is paid, in pence, and the
    number set aside."""
    paid: Counter[str] = Counter()
    aside = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER + "\r\n")
        for n in range(LINES):
            pence = rng.randrange(100, 20_000)
            if n % 20 == 7:
                reference, aside = from_serial(999_000_000 + n), aside + 1
            else:
                reference = rng.choice(references)
                paid[reference] += pence
            out.write(f"{reference},{Decimal(pence).scaleb(-2)},2026-04-06,Paypoint,CRASH-{n:06d}\r\n")
    return paid, aside


def test_an_import_killed_part_way_and_run_again_posts_each_payment_once(
    database_url: str, tmp_path: Path, service_factory: Any
) -> None:
    service = service_factory(database_url, ACCOUNTS_PAYMENT_FILE_BATCH_LINES=BATCH)
    application = bootstrap(make_settings(database_url, tmp_path), run_migrations=True)
    officer = Actor("Finance Officer", "finance.officer@hackney.gov.uk")
    try:
        accounts = [application.accounts.create(a_tenure_master(), officer, uuid.uuid4()) for _ in range(ACCOUNTS)]
    finally:
        application.close()
    by_reference = {account.payment_reference: account for account in accounts}
    path = tmp_path / "payments.csv"
    paid, aside = payment_file(path, sorted(by_reference), random.Random(13))
    payments = LINES - aside

    def posted() -> int:
        return int(service.count("account_transactions", "transaction_type = 'Payment'"))

    for kill in range(KILLS):
        before = posted()
        importer = service.start("payments", "import", str(path), name=f"import-{kill}")
        wait_until(
            lambda b=before, i=importer: posted() >= b + 3 * BATCH // 2 or not i.alive(), 120, "a few batches to commit"
        )
        assert importer.alive(), f"the import finished before kill {kill + 1}:\n{importer.output()[-2000:]}"
        importer.kill()
        assert posted() < payments, "the import finished before it was killed"

    finished = service.cli("payments", "import", str(path), timeout=240)

    summary = finished.stdout.splitlines()[0]
    assert summary.startswith(f"{LINES} line(s): ") and "0 rejected" in summary, finished.stdout[:500]
    assert posted() == payments
    assert service.count("suspense_items") == aside
    references = service.column("SELECT reference FROM account_transactions WHERE transaction_type = 'Payment'")
    assert len(set(references)) == payments
    with service.engine.connect() as connection:
        balances = dict(
            connection.execute(sa.select(t.accounts.c.payment_reference, t.accounts.c.account_balance)).all()
        )
    assert {reference: Decimal(balances[reference]).quantize(Decimal("0.01")) for reference in by_reference} == {
        reference: Decimal(paid[reference]).scaleb(-2) for reference in by_reference
    }  # a tenure's balance rises by what it is paid
    events = Counter(service.column("SELECT event_type FROM outbox"))
    assert events["AccountTransactionPostedEvent"] == payments and events["AccountUpdatedEvent"] == payments
    verify = service.cli("ledger", "verify", check=False)
    assert verify.returncode == 0, verify.stdout[-2000:]
    assert "every account's balance is the sum of its transactions" in verify.stdout
