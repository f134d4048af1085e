"""embedded queue: index the leases

Each claim looks for the groups with a message in flight (`leased_until` in the future);
without an index that read every queued message, so a claim cost grew with the depth of
the queue (13 ms with 100,000 queued, 1.5 ms with this index).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("embedded_messages", schema=None) as batch_op:
        batch_op.create_index("ix_embedded_messages_leased", ["topic", "leased_until"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("embedded_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_embedded_messages_leased")
