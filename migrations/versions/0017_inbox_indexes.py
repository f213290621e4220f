"""The rep's inbox: its two lists read through indexes

`ix_handoffs_rep_open_due` (rep_email, sla_due_at) of open handoffs: a rep's open leads, soonest
due first, the first page read straight from the index however many are open;
`ix_handoffs_rep_email_created_at` (rep_email, created_at): a rep's closed ones, latest first.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    op.create_index("ix_handoffs_rep_open_due", "handoffs", ["rep_email", "sla_due_at"],
                    postgresql_where=OPEN, sqlite_where=OPEN)
    op.create_index("ix_handoffs_rep_email_created_at", "handoffs", ["rep_email", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_handoffs_rep_email_created_at", table_name="handoffs")
    op.drop_index("ix_handoffs_rep_open_due", table_name="handoffs")
