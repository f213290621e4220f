"""Team leads and collateral feedback: the rep's inbox (issue #9)

`users.team_lead`: a rep who leads their team sees the team's inbox and may reassign its open
handoffs. `collateral_feedback`: a rep's useful / not useful (and note) on a collateral version a
recycled lead saw; the collateral's numbers count it and its author is told.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("team_lead", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.create_table(
        "collateral_feedback",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("version_id", BIG_ID, nullable=False),
        sa.Column("lead_id", BIG_ID, nullable=False),
        sa.Column("handoff_id", BIG_ID, nullable=False),
        sa.Column("rep_email", sa.String(320), nullable=False),
        sa.Column("useful", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["collateral_versions.id"], ondelete="CASCADE",
                                name=op.f("fk_collateral_feedback_version_id_collateral_versions")),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE",
                                name=op.f("fk_collateral_feedback_lead_id_leads")),
        sa.ForeignKeyConstraint(["handoff_id"], ["handoffs.id"], ondelete="CASCADE",
                                name=op.f("fk_collateral_feedback_handoff_id_handoffs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collateral_feedback")),
        sa.UniqueConstraint("version_id", "handoff_id", "rep_email",
                            name="uq_collateral_feedback_version_handoff_rep"),
    )
    op.create_index("ix_collateral_feedback_version_id_at", "collateral_feedback",
                    ["version_id", "at"])
    op.create_index("ix_collateral_feedback_handoff_id", "collateral_feedback", ["handoff_id"])


def downgrade() -> None:
    op.drop_table("collateral_feedback")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("team_lead")
