"""engagement ingest: events handed to scoring, Mailgun tokens seen, SNS subscriptions

`engagement_events.handled_at` (and a partial index of the unhandled ones); `mailgun_tokens`
(a token reused with other event-data is a forgery); `sns_subscriptions` (for the admin).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("engagement_events") as batch:
        batch.add_column(sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index(
            "ix_engagement_events_unhandled", ["id"], unique=False,
            postgresql_where=sa.text("handled_at IS NULL"),
            sqlite_where=sa.text("handled_at IS NULL"),
        )
    # events stored before this revision were handled as they arrived (tracking woke at once)
    op.execute("UPDATE engagement_events SET handled_at = received_at")

    op.create_table(
        "mailgun_tokens",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("token", sa.String(length=255), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_digest", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailgun_tokens")),
        sa.UniqueConstraint("token", name=op.f("uq_mailgun_tokens_token")),
    )
    op.create_index(op.f("ix_mailgun_tokens_received_at"), "mailgun_tokens", ["received_at"])

    op.create_table(
        "sns_subscriptions",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("topic_arn", sa.String(length=512), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subscribe_url", sa.Text(), nullable=True),
        sa.Column("token", sa.Text(), nullable=True),
        sa.Column(
            "status",
            sa.Enum("pending", "confirmed", "unsubscribed", name="sns_subscription_status",
                    native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sns_subscriptions")),
        sa.UniqueConstraint("message_id", name=op.f("uq_sns_subscriptions_message_id")),
    )
    op.create_index(op.f("ix_sns_subscriptions_topic_arn"), "sns_subscriptions", ["topic_arn"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sns_subscriptions_topic_arn"), table_name="sns_subscriptions")
    op.drop_table("sns_subscriptions")
    op.drop_index(op.f("ix_mailgun_tokens_received_at"), table_name="mailgun_tokens")
    op.drop_table("mailgun_tokens")
    with op.batch_alter_table("engagement_events") as batch:
        batch.drop_index("ix_engagement_events_unhandled")
        batch.drop_column("handled_at")
