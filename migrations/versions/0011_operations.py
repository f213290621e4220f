"""Operations: provider webhook refusals and last receipts, suppression removals, and the
start of a CRM's answer kept with each delivery attempt (the operators' pages, issue #9).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_refusals",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("remote_addr", sa.String(64), nullable=True),
        sa.Column("received_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_refusals")),
    )
    op.create_index("ix_webhook_refusals_provider_id", "webhook_refusals", ["provider", "id"])
    op.create_table(
        "webhook_receipts",
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("last_accepted_at", WHEN, nullable=False),
        sa.Column("last_events", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_webhook_receipts")),
    )
    op.create_table(
        "suppression_removals",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("suppressed_reason", sa.String(32), nullable=False),
        sa.Column("suppressed_source", sa.String(255), nullable=True),
        sa.Column("suppressed_at", WHEN, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("removed_by", sa.String(320), nullable=False),
        sa.Column("removed_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppression_removals")),
    )
    op.create_index("ix_suppression_removals_email", "suppression_removals", ["email"])
    with op.batch_alter_table("notification_attempts") as batch:
        batch.add_column(sa.Column("response_excerpt", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notification_attempts") as batch:
        batch.drop_column("response_excerpt")
    op.drop_index("ix_suppression_removals_email", table_name="suppression_removals")
    op.drop_table("suppression_removals")
    op.drop_table("webhook_receipts")
    op.drop_index("ix_webhook_refusals_provider_id", table_name="webhook_refusals")
    op.drop_table("webhook_refusals")
