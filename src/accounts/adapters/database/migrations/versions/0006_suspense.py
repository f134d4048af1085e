"""suspense: payments a payment file could not post, until two people place them

One row per bank reference (unique), as one payment per bank reference, so importing a
file again sets nothing aside twice. The open items are listed oldest payment first from
a partial index.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suspense_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("payment_reference", sa.String(length=100), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("payment_date", sa.Date(), nullable=False),
        sa.Column("method", sa.String(length=100), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("proposed_account_id", sa.Uuid(), nullable=True),
        sa.Column("proposed_by", sa.String(length=320), nullable=True),
        sa.Column("approved_by", sa.String(length=320), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("transaction_id", sa.Uuid(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suspense_items")),
        sa.UniqueConstraint("reference", name=op.f("uq_suspense_items_reference")),
    )
    with op.batch_alter_table("suspense_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_suspense_items_open",
            ["payment_date", "reference"],
            unique=False,
            sqlite_where=sa.text("status <> 'Resolved'"),
            postgresql_where=sa.text("status <> 'Resolved'"),
        )
        batch_op.create_index("ix_suspense_items_listed", ["payment_date", "reference"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("suspense_items", schema=None) as batch_op:
        batch_op.drop_index("ix_suspense_items_listed")
        batch_op.drop_index("ix_suspense_items_open")
    op.drop_table("suspense_items")
