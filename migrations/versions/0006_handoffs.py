"""handoffs, their events, CRM webhook deliveries, rep routing

`handoffs` (one open per lead: a partial unique index; the SLA timer's partial index),
`handoff_events` (every step of the SLA loop), `handoff_notifications` (the signed CRM
webhook and the rep's emails, each with a stable id) with `notification_attempts`, and
`long_term_nurture` (leads recycled as often as the cap allows). `model_version_id` is a
plain integer: the scoring models table was not there when this was written.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
WHEN = sa.DateTime(timezone=True)
OPEN = sa.text("status = 'open'")
PENDING = sa.text("status = 'pending'")


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True,
                   length=max(len(v) for v in values))


def upgrade() -> None:
    op.create_table(
        "handoffs",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("lead_id", BIG_ID, nullable=False),
        sa.Column("status", _enum("handoff_status", "open", "accepted", "rejected"),
                  nullable=False),
        sa.Column("rep_email", sa.String(length=320), nullable=True),
        sa.Column("score", JSON, nullable=False),
        sa.Column("model_version_id", BIG_ID, nullable=True),
        sa.Column("qualifying_event_id", BIG_ID, nullable=True),
        sa.Column("qualified_at", WHEN, nullable=False),
        sa.Column("prior_rejection_id", BIG_ID, nullable=True),
        sa.Column("rejection_id", BIG_ID, nullable=True),
        sa.Column("sla_due_at", WHEN, nullable=False),
        sa.Column("next_sla_at", WHEN, nullable=True),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column("reassignments", sa.Integer(), nullable=False),
        sa.Column("handoff_ms", sa.Integer(), nullable=False),
        sa.Column("response_ms", sa.Integer(), nullable=True),
        sa.Column("first_action_at", WHEN, nullable=True),
        sa.Column("closed_by", sa.String(length=255), nullable=True),
        sa.Column("closed_at", WHEN, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE",
                                name=op.f("fk_handoffs_lead_id_leads")),
        sa.ForeignKeyConstraint(["qualifying_event_id"], ["engagement_events.id"],
                                ondelete="SET NULL",
                                name=op.f("fk_handoffs_qualifying_event_id_engagement_events")),
        sa.ForeignKeyConstraint(["prior_rejection_id"], ["rejections.id"], ondelete="SET NULL",
                                name=op.f("fk_handoffs_prior_rejection_id_rejections")),
        sa.ForeignKeyConstraint(["rejection_id"], ["rejections.id"], ondelete="SET NULL",
                                name=op.f("fk_handoffs_rejection_id_rejections")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoffs")),
    )
    op.create_index("uq_handoffs_open_lead", "handoffs", ["lead_id"], unique=True,
                    postgresql_where=OPEN, sqlite_where=OPEN)
    op.create_index("ix_handoffs_lead_id_created_at", "handoffs", ["lead_id", "created_at"])
    op.create_index("ix_handoffs_rep_email_status", "handoffs", ["rep_email", "status"])
    op.create_index("ix_handoffs_sla_due", "handoffs", ["next_sla_at"],
                    postgresql_where=OPEN, sqlite_where=OPEN)

    op.create_table(
        "handoff_events",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("handoff_id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("rep_email", sa.String(length=320), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["handoff_id"], ["handoffs.id"], ondelete="CASCADE",
                                name=op.f("fk_handoff_events_handoff_id_handoffs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoff_events")),
    )
    op.create_index("ix_handoff_events_handoff_id_at", "handoff_events", ["handoff_id", "at"])

    op.create_table(
        "handoff_notifications",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("public_id", sa.String(length=64), nullable=False),
        sa.Column("handoff_id", BIG_ID, nullable=False),
        sa.Column("channel", _enum("notification_channel", "crm_webhook", "rep_email"),
                  nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("status", _enum("notification_status", "pending", "delivered", "failed",
                                  "unknown", "skipped"), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", WHEN, nullable=True),
        sa.Column("claimed_until", WHEN, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("delivered_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(["handoff_id"], ["handoffs.id"], ondelete="CASCADE",
                                name=op.f("fk_handoff_notifications_handoff_id_handoffs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoff_notifications")),
        sa.UniqueConstraint("public_id", name=op.f("uq_handoff_notifications_public_id")),
    )
    op.create_index(op.f("ix_handoff_notifications_handoff_id"), "handoff_notifications",
                    ["handoff_id"])
    op.create_index("ix_handoff_notifications_due", "handoff_notifications", ["next_attempt_at"],
                    postgresql_where=PENDING, sqlite_where=PENDING)

    op.create_table(
        "notification_attempts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("notification_id", BIG_ID, nullable=False),
        sa.Column("attempted_at", WHEN, nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["notification_id"], ["handoff_notifications.id"], ondelete="CASCADE",
            name=op.f("fk_notification_attempts_notification_id_handoff_notifications"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_attempts")),
    )
    op.create_index("ix_notification_attempts_notification_id_at", "notification_attempts",
                    ["notification_id", "attempted_at"])

    op.create_table(
        "long_term_nurture",
        sa.Column("lead_id", BIG_ID, nullable=False),
        sa.Column("recycles", sa.Integer(), nullable=False),
        sa.Column("marked_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE",
                                name=op.f("fk_long_term_nurture_lead_id_leads")),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_long_term_nurture")),
    )


def downgrade() -> None:
    op.drop_table("long_term_nurture")
    op.drop_index("ix_notification_attempts_notification_id_at",
                  table_name="notification_attempts")
    op.drop_table("notification_attempts")
    op.drop_index("ix_handoff_notifications_due", table_name="handoff_notifications")
    op.drop_index(op.f("ix_handoff_notifications_handoff_id"),
                  table_name="handoff_notifications")
    op.drop_table("handoff_notifications")
    op.drop_index("ix_handoff_events_handoff_id_at", table_name="handoff_events")
    op.drop_table("handoff_events")
    op.drop_index("ix_handoffs_sla_due", table_name="handoffs")
    op.drop_index("ix_handoffs_rep_email_status", table_name="handoffs")
    op.drop_index("ix_handoffs_lead_id_created_at", table_name="handoffs")
    op.drop_index("uq_handoffs_open_lead", table_name="handoffs")
    op.drop_table("handoffs")
