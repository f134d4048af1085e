"""accounts: the arrears worklist's figures, and the indexes it is served by

Every account gets the figures the worklist filters and sorts by (`domain/arrears.py`):
its weekly charge, weeks in arrears, last payment (date and amount, the latest `Payment`
in its ledger by transaction date, then posting order) and the day days-since-last-payment
count from. Accounts are filled a batch at a time, by id: there may be a million. Then six
partial indexes (accounts in arrears only): by amount owed, weeks in arrears and that day,
ties by id, and each again under a rent group.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BATCH = 5_000
MONEY = sa.Numeric(14, 2, asdecimal=True)
WEEKS = sa.Numeric(16, 1, asdecimal=True)
# Accounts in arrears; the sorts other than amount owed say it so that no planner reads it as a range of
# amount owed (see tables.IN_ARREARS): each sort's query then takes its own index.
OWED, NOT_A_RANGE = "amount_owed > 0", "+amount_owed > 0"
# Required columns and the defaults the rows already stored get before they are filled (every write sets them).
NOT_NULL_COLUMNS = (
    ("weekly_charge", MONEY, "0"),
    ("weeks_in_arrears", WEEKS, "0"),
    ("arrears_since", sa.Date(), "'1970-01-01'"),
)
INDEXES = {  # name: (columns, the accounts it holds)
    "ix_accounts_worklist_owed": (["amount_owed", "id"], OWED),
    "ix_accounts_worklist_group_owed": (["rent_group_type", "amount_owed", "id"], OWED),
    "ix_accounts_worklist_weeks": (["weeks_in_arrears", "id"], NOT_A_RANGE),
    "ix_accounts_worklist_group_weeks": (["rent_group_type", "weeks_in_arrears", "id"], NOT_A_RANGE),
    "ix_accounts_worklist_since": (["arrears_since", "id"], NOT_A_RANGE),
    "ix_accounts_worklist_group_since": (["rent_group_type", "arrears_since", "id"], NOT_A_RANGE),
}

# The tables as this revision knows them, so a later revision changing `tables` does not break this one.
_accounts = sa.table(
    "accounts",
    sa.column("id", sa.Uuid()),
    sa.column("amount_owed", MONEY),
    sa.column("consolidated_charges", sa.JSON()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("last_updated_at", sa.DateTime(timezone=True)),
    sa.column("start_date", sa.DateTime(timezone=True)),
    sa.column("weekly_charge", MONEY),
    sa.column("weeks_in_arrears", WEEKS),
    sa.column("last_payment_date", sa.Date()),
    sa.column("last_payment_amount", MONEY),
    sa.column("arrears_since", sa.Date()),
)
_transactions = sa.table(
    "account_transactions",
    sa.column("position", sa.BigInteger()),
    sa.column("account_id", sa.Uuid()),
    sa.column("transaction_type", sa.String()),
    sa.column("amount", MONEY),
    sa.column("transaction_date", sa.Date()),
)


def upgrade() -> None:
    # NOT NULL from the start, with a default for the rows already there (filled below): SQLite adds such a
    # column in place, where making one NOT NULL later would rebuild the table under the ledger's foreign key.
    for name, kind, default in NOT_NULL_COLUMNS:
        op.add_column("accounts", sa.Column(name, kind, nullable=False, server_default=sa.text(default)))
    op.add_column("accounts", sa.Column("last_payment_date", sa.Date(), nullable=True))
    op.add_column("accounts", sa.Column("last_payment_amount", MONEY, nullable=True))
    _fill()
    for name, (columns, held) in INDEXES.items():
        where = sa.text(held)
        op.create_index(name, "accounts", columns, unique=False, sqlite_where=where, postgresql_where=where)


def _fill() -> None:
    """Each account's figures, from its charges, its amount owed and its ledger's latest payment."""
    # Imported here: the module-level import would tie every older revision to today's code.
    from accounts.adapters.database.bulk import executemany
    from accounts.adapters.database.rows import aware
    from accounts.domain.account import ConsolidatedCharge
    from accounts.domain.arrears import arrears_since, weekly_charge, weeks_for_sorting, weeks_in_arrears

    connection = op.get_bind()
    a, ledger = _accounts.c, _transactions.c
    read = sa.select(
        a.id, a.amount_owed, a.consolidated_charges, a.created_at, a.last_updated_at, a.start_date
    ).order_by(a.id)
    payments = (
        sa.select(ledger.account_id, ledger.transaction_date, ledger.amount)
        .where(
            ledger.account_id.in_(sa.bindparam("ids", expanding=True)),
            ledger.transaction_type == "Payment",
        )
        .order_by(ledger.account_id, ledger.transaction_date, ledger.position)
    )
    fill = (
        _accounts.update()
        .where(a.id == sa.bindparam("b_id"))
        .values(
            weekly_charge=sa.bindparam("b_weekly"),
            weeks_in_arrears=sa.bindparam("b_weeks"),
            last_payment_date=sa.bindparam("b_paid_on"),
            last_payment_amount=sa.bindparam("b_paid"),
            arrears_since=sa.bindparam("b_since"),
        )
    )
    last: Any = None
    while True:
        rows = connection.execute((read if last is None else read.where(a.id > last)).limit(BATCH)).all()
        if not rows:
            break
        latest: dict[Any, tuple[date, Decimal]] = {}
        for account_id, paid_on, amount in connection.execute(payments, {"ids": [row.id for row in rows]}):
            latest[account_id] = (paid_on, Decimal(amount).quantize(Decimal("0.01")))  # the last in order wins
        values = []
        for row in rows:
            owed = Decimal(row.amount_owed).quantize(Decimal("0.01"))
            charges = [
                ConsolidatedCharge(c["type"], c["frequency"], Decimal(c["amount"])) for c in row.consolidated_charges
            ]
            weekly = weekly_charge(charges, aware(row.last_updated_at).date())  # type: ignore[union-attr]
            paid_on, paid = latest.get(row.id, (None, None))
            values.append(
                {
                    "b_id": row.id,
                    "b_weekly": weekly,
                    "b_weeks": weeks_for_sorting(weeks_in_arrears(owed, weekly)),
                    "b_paid_on": paid_on,
                    "b_paid": paid,
                    "b_since": arrears_since(paid_on, aware(row.start_date), aware(row.created_at)),  # type: ignore[arg-type]
                }
            )
        executemany(connection, fill, values)
        last = rows[-1].id


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, "accounts")
    for name in ("last_payment_amount", "last_payment_date", *(name for name, _, _ in NOT_NULL_COLUMNS)):
        op.drop_column("accounts", name)
