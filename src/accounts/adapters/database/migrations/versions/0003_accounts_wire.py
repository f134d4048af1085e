"""accounts: keep each account's wire JSON

The API's reads built an `Account` from its row and serialised it on every request:
about 180 µs of a GET's CPU, most of it. Every change now also writes the account as
the API answers it, and the reads serve that text as it is. Existing accounts are
filled in here, a batch at a time.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BATCH = 5_000
# The columns an account is read from (all but amount_owed and wire), named so that a later
# revision adding a column to `tables` does not break this one.
READ_COLUMNS = (
    "id",
    "target_type",
    "target_id",
    "account_type",
    "rent_group_type",
    "agreement_type",
    "account_balance",
    "consolidated_balance",
    "payment_reference",
    "parent_account_id",
    "created_by",
    "created_at",
    "last_updated_by",
    "last_updated_at",
    "start_date",
    "end_date",
    "end_reason_code",
    "account_status",
    "consolidated_charges",
    "tenure",
    "version",
)


def upgrade() -> None:
    # Imported here: the module-level import would tie every older revision to today's code.
    from accounts.adapters.database import tables as t
    from accounts.adapters.database.rows import account_from_row, account_json

    op.add_column("accounts", sa.Column("wire", sa.Text(), nullable=True))
    connection = op.get_bind()
    fill = t.accounts.update().where(t.accounts.c.id == sa.bindparam("b_id")).values(wire=sa.bindparam("b_wire"))
    last: object = None
    while True:
        query = sa.select(*(t.accounts.c[name] for name in READ_COLUMNS)).order_by(t.accounts.c.id).limit(BATCH)
        if last is not None:
            query = query.where(t.accounts.c.id > last)
        rows = connection.execute(query).all()
        if not rows:
            break
        accounts = [account_from_row(row) for row in rows]
        connection.execute(fill, [{"b_id": a.id, "b_wire": account_json(a).decode()} for a in accounts])
        last = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("wire")
