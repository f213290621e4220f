"""Leads, rejections, lifecycle history, users and API tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STAGES = ("lead", "mql", "nurturing", "recycled_to_sales", "accepted_by_sales", "customer",
          "disqualified")
REASONS = ("no_budget", "no_authority", "no_need", "bad_timing", "not_icp", "unresponsive",
           "chose_competitor", "other")
ROLES = ("admin", "marketer", "sales_approver", "rep")

big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
json_object = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def timestamp(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def enum(name: str, values: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True,
                   length=max(map(len, values)))


def upgrade() -> None:
    op.create_table(
        "leads",
        sa.Column("id", big_id, nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("first_name", sa.String(255)),
        sa.Column("last_name", sa.String(255)),
        sa.Column("company", sa.String(255)),
        sa.Column("title", sa.String(255)),
        sa.Column("industry", sa.String(255)),
        sa.Column("company_size", sa.Integer()),
        sa.Column("country", sa.String(2)),
        sa.Column("timezone", sa.String(64)),
        sa.Column("source", sa.String(255)),
        sa.Column("owner_email", sa.String(320)),
        sa.Column("crm_id", sa.String(255)),
        sa.Column("attributes", json_object, nullable=False),
        sa.Column("lifecycle_stage", enum("lifecycle_stage", STAGES), nullable=False),
        timestamp("created_at"),
        timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_leads"),
        sa.UniqueConstraint("email", name="uq_leads_email"),
        sa.CheckConstraint("company_size >= 0", name=op.f("ck_leads_company_size_not_negative")),
    )
    op.create_index("ix_leads_crm_id", "leads", ["crm_id"])
    op.create_index("ix_leads_lifecycle_stage", "leads", ["lifecycle_stage"])
    op.create_index("ix_leads_owner_email", "leads", ["owner_email"])

    op.create_table(
        "users",
        sa.Column("id", big_id, nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(255)),
        sa.Column("role", enum("role", ROLES), nullable=False),
        sa.Column("password_hash", sa.String(255)),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )

    op.create_table(
        "api_tokens",
        sa.Column("id", big_id, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("role", enum("role", ROLES), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("user_id", big_id),
        timestamp("created_at"),
        timestamp("last_used_at", nullable=True),
        timestamp("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_api_tokens_user_id_users",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])

    op.create_table(
        "lifecycle_changes",
        sa.Column("id", big_id, nullable=False),
        sa.Column("lead_id", big_id, nullable=False),
        sa.Column("from_stage", enum("from_stage", STAGES)),
        sa.Column("to_stage", enum("to_stage", STAGES), nullable=False),
        sa.Column("cause", sa.String(64), nullable=False),
        timestamp("changed_at"),
        sa.PrimaryKeyConstraint("id", name="pk_lifecycle_changes"),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"],
                                name="fk_lifecycle_changes_lead_id_leads", ondelete="CASCADE"),
    )
    op.create_index("ix_lifecycle_changes_lead_id_changed_at", "lifecycle_changes",
                    ["lead_id", "changed_at"])

    op.create_table(
        "rejections",
        sa.Column("id", big_id, nullable=False),
        sa.Column("lead_id", big_id, nullable=False),
        sa.Column("reason", enum("rejection_reason", REASONS), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("revisit_on", sa.Date()),
        sa.Column("rep_email", sa.String(320), nullable=False),
        sa.Column("crm_id", sa.String(255)),
        timestamp("rejected_at"),
        timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_rejections"),
        sa.UniqueConstraint("crm_id", name="uq_rejections_crm_id"),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name="fk_rejections_lead_id_leads",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_rejections_lead_id_rejected_at", "rejections", ["lead_id", "rejected_at"])
    op.create_index("ix_rejections_rep_email", "rejections", ["rep_email"])


def downgrade() -> None:
    op.drop_table("rejections")
    op.drop_table("lifecycle_changes")
    op.drop_table("api_tokens")
    op.drop_table("users")
    op.drop_table("leads")
