"""report rollups, the alignment digest, users' team

`report_journeys` (one row per pass of a lead through nurture, with the moment it reached
each funnel stage), `report_counts` (daily counters by metric and dimensions; '' or 0 for a
dimension that does not apply, so the primary key holds), `digests` (one per period, claimed
before sending) and `users.team` (reports group reps by team).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)
MONEY = sa.Numeric(18, 2)


def upgrade() -> None:
    op.add_column("users", sa.Column("team", sa.String(100), nullable=True))
    op.create_table(
        "report_journeys",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("lead_id", BIG_ID, nullable=False),
        sa.Column("rejection_id", BIG_ID, nullable=True),
        sa.Column("entered_at", WHEN, nullable=False),
        sa.Column("cohort", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("rep_email", sa.String(320), nullable=False),
        sa.Column("team", sa.String(100), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("sequence_id", BIG_ID, nullable=False),
        sa.Column("nurtured_at", WHEN, nullable=True),
        sa.Column("engaged_at", WHEN, nullable=True),
        sa.Column("delivered", sa.Integer(), nullable=False),
        sa.Column("engagements", sa.Integer(), nullable=False),
        sa.Column("qualified_at", WHEN, nullable=True),
        sa.Column("recycled_at", WHEN, nullable=True),
        sa.Column("handoff_id", BIG_ID, nullable=True),
        sa.Column("handoff_rep", sa.String(320), nullable=False),
        sa.Column("accepted_at", WHEN, nullable=True),
        sa.Column("rerejected_at", WHEN, nullable=True),
        sa.Column("rereject_reason", sa.String(32), nullable=True),
        sa.Column("opportunity_at", WHEN, nullable=True),
        sa.Column("won_at", WHEN, nullable=True),
        sa.Column("revenue", MONEY, nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE",
                                name="fk_report_journeys_lead_id_leads"),
        sa.ForeignKeyConstraint(["rejection_id"], ["rejections.id"], ondelete="SET NULL",
                                name="fk_report_journeys_rejection_id_rejections"),
        sa.PrimaryKeyConstraint("id", name="pk_report_journeys"),
        sa.UniqueConstraint("rejection_id", name="uq_report_journeys_rejection_id"),
    )
    op.create_index("ix_report_journeys_lead_id_entered_at", "report_journeys",
                    ["lead_id", "entered_at"])
    op.create_index("ix_report_journeys_cohort", "report_journeys", ["cohort"])
    op.create_index("ix_report_journeys_recycled_at", "report_journeys", ["recycled_at"])
    op.create_index("ix_report_journeys_won_at", "report_journeys", ["won_at"])
    op.create_table(
        "report_counts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("sequence_id", sa.BigInteger(), nullable=False),
        sa.Column("step_id", sa.String(100), nullable=False),
        sa.Column("rep_email", sa.String(320), nullable=False),
        sa.Column("team", sa.String(100), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("collateral_id", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.PrimaryKeyConstraint("day", "metric", "reason", "sequence_id", "step_id",
                                "rep_email", "team", "source", "collateral_id",
                                name="pk_report_counts"),
    )
    op.create_table(
        "digests",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("status", sa.Enum("sending", "sent", "failed", name="digest_status",
                                    native_enum=False, create_constraint=True, length=7),
                  nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("claimed_at", WHEN, nullable=False),
        sa.Column("sent_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_digests"),
        sa.UniqueConstraint("period_start", name="uq_digests_period_start"),
    )


def downgrade() -> None:
    op.drop_table("digests")
    op.drop_table("report_counts")
    op.drop_index("ix_report_journeys_won_at", table_name="report_journeys")
    op.drop_index("ix_report_journeys_recycled_at", table_name="report_journeys")
    op.drop_index("ix_report_journeys_cohort", table_name="report_journeys")
    op.drop_index("ix_report_journeys_lead_id_entered_at", table_name="report_journeys")
    op.drop_table("report_journeys")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("team")
