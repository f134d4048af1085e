"""interim_reconciliations: each reconciliation's outcome; dead letters found by event id

`accounts interim reconcile` printed its outcome and kept nothing; the /interim page shows when the
interim copies were last reconciled, by whom, and what was found, so each outcome is kept. A replayed
dead letter's later letters (dead-lettered again) are found by its event id.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "interim_reconciliations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_by", sa.String(length=200), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("expected", sa.Integer(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("missing", sa.Integer(), nullable=False),
        sa.Column("extra", sa.Integer(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("duplicate", sa.Integer(), nullable=False),
        sa.Column("unreadable", sa.Integer(), nullable=False),
        sa.Column("differences", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interim_reconciliations")),
    )
    op.create_index(op.f("ix_interim_reconciliations_finished"), "interim_reconciliations", ["finished_at"])
    op.create_index(op.f("ix_dead_letters_event_id"), "dead_letters", ["event_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_dead_letters_event_id"), table_name="dead_letters")
    op.drop_index(op.f("ix_interim_reconciliations_finished"), table_name="interim_reconciliations")
    op.drop_table("interim_reconciliations")
