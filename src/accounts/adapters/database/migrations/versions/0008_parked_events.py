"""parked_events: tenure events that came before their tenure

An update (or a person added or removed) for a tenure the listener has not seen was retried
five times and then dead-lettered, about fifteen seconds, however late its create came. Such
events are now kept here, durably, and applied in the same transaction as the create.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "parked_events",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("tenure_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=80), nullable=False),
        sa.Column("date_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_parked_events")),
    )
    op.create_index(op.f("ix_parked_events_tenure_id"), "parked_events", ["tenure_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_parked_events_tenure_id"), table_name="parked_events")
    op.drop_table("parked_events")
