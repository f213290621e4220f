"""Lead tasks and the lead search's indexes

`lead_tasks`: a CSV import from the browser or a bulk action, run by a worker, its progress
and result on the row. Indexes for the admin's lead search at a million leads
(nurture.leads.search): email and company prefixes, stage and last update keysets, leads by
rejection reason, live enrollments by sequence, the score's undecayed ceiling.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC_DATETIME = sa.DateTime(timezone=True)
LIVE = "status IN ('scheduled', 'active', 'held')"


def upgrade() -> None:
    op.create_table(
        "lead_tasks",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("kind", sa.Enum("import", "enroll", "remove", name="lead_task_kind",
                                  native_enum=False, create_constraint=True, length=6),
                  nullable=False),
        sa.Column("status", sa.Enum("queued", "running", "done", "failed",
                                    name="lead_task_status", native_enum=False,
                                    create_constraint=True, length=7), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("result", JSON, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("upload", sa.LargeBinary(), nullable=True),
        sa.Column("report", sa.Text(), nullable=True),
        sa.Column("file_name", sa.String(255), nullable=True),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=True),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_lead_tasks"),
    )
    op.create_index("ix_lead_tasks_created_at", "lead_tasks", ["created_at"])
    op.create_index("ix_leads_email_prefix", "leads", ["email"],
                    postgresql_ops={"email": "text_pattern_ops"})
    op.create_index("ix_leads_company_prefix", "leads",
                    [sa.text("lower(company) text_pattern_ops")
                     if op.get_bind().dialect.name == "postgresql"
                     else sa.text("lower(company)")])
    op.create_index("ix_leads_stage_id", "leads", ["lifecycle_stage", "id"])
    op.create_index("ix_leads_updated_at_id", "leads", ["updated_at", "id"])
    op.create_index("ix_rejections_reason_lead_id", "rejections", ["reason", "lead_id"])
    op.create_index("ix_enrollments_live_sequence_lead", "enrollments",
                    ["sequence_id", "lead_id"], postgresql_where=sa.text(LIVE),
                    sqlite_where=sa.text(LIVE))
    op.create_index("ix_lead_scores_ceiling", "lead_scores",
                    [sa.text("(fit + steady + decayed)")])


def downgrade() -> None:
    op.drop_index("ix_lead_scores_ceiling", table_name="lead_scores")
    op.drop_index("ix_enrollments_live_sequence_lead", table_name="enrollments")
    op.drop_index("ix_rejections_reason_lead_id", table_name="rejections")
    op.drop_index("ix_leads_updated_at_id", table_name="leads")
    op.drop_index("ix_leads_stage_id", table_name="leads")
    op.drop_index("ix_leads_company_prefix", table_name="leads")
    op.drop_index("ix_leads_email_prefix", table_name="leads")
    op.drop_index("ix_lead_tasks_created_at", table_name="lead_tasks")
    op.drop_table("lead_tasks")
