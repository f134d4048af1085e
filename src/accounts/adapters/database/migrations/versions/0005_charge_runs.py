"""charge runs: the charge_runs table (a run's progress, one unfinished run per week)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "charge_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("week_starting", sa.Date(), nullable=False),
        sa.Column("financial_year", sa.SmallInteger(), nullable=False),
        sa.Column("period_no", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("started_by_name", sa.String(length=320), nullable=False),
        sa.Column("started_by_email", sa.String(length=320), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accounts_total", sa.Integer(), nullable=False),
        sa.Column("last_account_id", sa.Uuid(), nullable=True),
        sa.Column("accounts_done", sa.Integer(), nullable=False),
        sa.Column("accounts_charged", sa.Integer(), nullable=False),
        sa.Column("accounts_not_charged", sa.Integer(), nullable=False),
        sa.Column("charges_posted", sa.Integer(), nullable=False),
        sa.Column("amount_posted", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("charges_skipped", sa.Integer(), nullable=False),
        sa.Column("charges_refused", sa.Integer(), nullable=False),
        sa.Column("refusals", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charge_runs")),
    )
    with op.batch_alter_table("charge_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ux_charge_runs_unfinished_week",
            ["week_starting"],
            unique=True,
            sqlite_where=sa.text("finished_at IS NULL"),
            postgresql_where=sa.text("finished_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("charge_runs", schema=None) as batch_op:
        batch_op.drop_index("ux_charge_runs_unfinished_week")
    op.drop_table("charge_runs")
