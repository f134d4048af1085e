"""ledger: the account_transactions table, and every balance opened in it

An account's balance becomes the sum of its transactions. Each account stored with a
non-zero balance gets one `OpeningBalance` transaction of that balance (its sign from
the target type's polarity), so the ledger explains every balance from the start and
`accounts ledger verify` passes. Accounts are read a batch at a time, by id: there may
be a million of them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BATCH = 5_000
CREATED_BY = "migration"

# The tables as this revision knows them, so a later revision changing `tables` does not break this one.
_accounts = sa.table(
    "accounts",
    sa.column("id", sa.Uuid()),
    sa.column("target_type", sa.String()),
    sa.column("account_balance", sa.Numeric(14, 2, asdecimal=True)),
)
_target_types = sa.table("target_types", sa.column("name", sa.String()), sa.column("polarity", sa.String()))
_transactions = sa.table(
    "account_transactions",
    sa.column("id", sa.Uuid()),
    sa.column("account_id", sa.Uuid()),
    sa.column("transaction_type", sa.String()),
    sa.column("amount", sa.Numeric(14, 2, asdecimal=True)),
    sa.column("direction", sa.String()),
    sa.column("transaction_date", sa.Date()),
    sa.column("posted_at", sa.DateTime(timezone=True)),
    sa.column("period_no", sa.SmallInteger()),
    sa.column("financial_year", sa.SmallInteger()),
    sa.column("description", sa.String()),
    sa.column("reference", sa.String()),
    sa.column("created_by", sa.String()),
    sa.column("reverses_id", sa.Uuid()),
    sa.column("balance_after", sa.Numeric(14, 2, asdecimal=True)),
)


def upgrade() -> None:
    op.create_table(
        "account_transactions",
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("transaction_type", sa.String(length=20), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("direction", sa.String(length=20), nullable=False),
        sa.Column("transaction_date", sa.Date(), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_no", sa.SmallInteger(), nullable=False),
        sa.Column("financial_year", sa.SmallInteger(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("reverses_id", sa.Uuid(), nullable=True),
        sa.Column("balance_after", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_transactions_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_account_transactions")),
        sa.UniqueConstraint("id", name=op.f("uq_account_transactions_id")),
        sa.UniqueConstraint("reverses_id", name=op.f("uq_account_transactions_reverses_id")),
    )
    with op.batch_alter_table("account_transactions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_account_transactions_statement", ["account_id", "transaction_date", "position"], unique=False
        )
    _open_balances()


def _open_balances() -> None:
    """One OpeningBalance for every account with a non-zero balance, a batch of accounts at a time."""
    # Imported here: the module-level import would tie every older revision to today's code.
    from accounts.adapters.database.bulk import executemany
    from accounts.domain.ledger import opening_balance
    from accounts.domain.polarity import Polarity

    connection = op.get_bind()
    posted_at = datetime.now(UTC)
    today = posted_at.date()
    insert = _transactions.insert()
    a, types = _accounts.c, _target_types.c
    read = (
        sa.select(a.id, a.account_balance, types.polarity)
        .select_from(_accounts.join(_target_types, types.name == a.target_type))
        .where(a.account_balance != 0)
        .order_by(a.id)
        .limit(BATCH)
    )
    last: Any = None
    while True:
        rows = connection.execute(read if last is None else read.where(a.id > last)).all()
        if not rows:
            break
        values = []
        for account_id, balance, polarity in rows:
            opening = opening_balance(
                account_id=account_id,
                balance=Decimal(balance).quantize(Decimal("0.01")),
                polarity=Polarity(polarity),
                created_by=CREATED_BY,
                posted_at=posted_at,
                transaction_date=today,
                transaction_id=uuid.uuid4(),
            )
            if opening is not None:  # a balance of less than a penny as stored: nothing to open
                values.append(
                    {
                        "id": opening.id,
                        "account_id": opening.account_id,
                        "transaction_type": opening.transaction_type.value,
                        "amount": opening.amount,
                        "direction": opening.direction.value,
                        "transaction_date": opening.transaction_date,
                        "posted_at": opening.posted_at,
                        "period_no": opening.period_no,
                        "financial_year": opening.financial_year,
                        "description": opening.description,
                        "reference": opening.reference,
                        "created_by": opening.created_by,
                        "reverses_id": opening.reverses_id,
                        "balance_after": opening.balance_after,
                    }
                )
        executemany(connection, insert, values)  # straight to the driver (COPY on PostgreSQL)
        last = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table("account_transactions", schema=None) as batch_op:
        batch_op.drop_index("ix_account_transactions_statement")
    op.drop_table("account_transactions")
