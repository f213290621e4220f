"""Messages updated in place: room on each page, and no index on a column sending changes

Sending updates every message twice (`sending`, then `sent` with its time). Indexed on
(lead_id, sent_at), the second update changed an indexed column and every index got a new
entry; with the pages full (fillfactor 100) the first did too. The index is now on lead_id
alone (a lead has few messages: the frequency cap and the lead's timeline read them all) and
PostgreSQL leaves a quarter of each page free, so both updates can be HOT (heap-only tuples:
no index entry written).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

FILLFACTOR = 75


def upgrade() -> None:
    op.drop_index("ix_messages_lead_id_sent_at", table_name="messages")
    op.create_index("ix_messages_lead_id", "messages", ["lead_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE messages SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE messages RESET (fillfactor)")
    op.drop_index("ix_messages_lead_id", table_name="messages")
    op.create_index("ix_messages_lead_id_sent_at", "messages", ["lead_id", "sent_at"])
