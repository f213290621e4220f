"""CRM outcomes; the SLA as approved, versioned documents; the handoff's SLA timers

`outcomes` (one per CRM outcome id); `slas` and `sla_approvals` (the scoring models' lifecycle);
`handoffs.sla_id` (the SLA version a handoff runs under) and `handoffs.stalls_at` (an accepted
lead with no opportunity returns to nurture then; a partial index for the dispatcher); the
lifecycle stage `opportunity`; handoff statuses `expired` and `stalled`; the rejection reasons
Nurture records itself, `sla_expired` and `stalled_in_sales`.

SQLite alters a table by copying it and dropping the old one, and dropping a table with
foreign keys on would cascade to the rows that refer to it; foreign keys are off meanwhile.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
WHEN = sa.DateTime(timezone=True)

STAGES = ("lead", "mql", "nurturing", "recycled_to_sales", "accepted_by_sales", "customer",
          "disqualified")
REASONS = ("no_budget", "no_authority", "no_need", "bad_timing", "not_icp", "unresponsive",
           "chose_competitor", "other")
HANDOFF_STATUSES = ("open", "accepted", "rejected")


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True,
                   length=max(len(v) for v in values))


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return "{} IN ({})".format(column, ", ".join(f"'{value}'" for value in values))


def _checks(table: str, *checks: tuple[str, str, tuple[str, ...]]) -> None:
    """Replace CHECK constraints (name, column, allowed values); the lengths do not change."""
    with op.batch_alter_table(table) as batch:
        for name, column, values in checks:
            batch.drop_constraint(op.f(name), type_="check")
            batch.create_check_constraint(op.f(name), _one_of(column, values))


def _foreign_keys(on: bool) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def upgrade() -> None:
    _foreign_keys(False)
    stages = (*STAGES, "opportunity")
    _checks("leads", ("ck_leads_lifecycle_stage", "lifecycle_stage", stages))
    _checks("lifecycle_changes",
            ("ck_lifecycle_changes_from_stage", "from_stage", stages),
            ("ck_lifecycle_changes_to_stage", "to_stage", stages))
    _checks("rejections", ("ck_rejections_rejection_reason", "reason",
                           (*REASONS, "sla_expired", "stalled_in_sales")))

    op.create_table(
        "slas",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("document", JSON, nullable=False),
        sa.Column("status", _enum("sla_status", "draft", "approved", "active", "retired"),
                  nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("activated_by", sa.String(length=320), nullable=True),
        sa.Column("activated_at", WHEN, nullable=True),
        sa.Column("retired_by", sa.String(length=320), nullable=True),
        sa.Column("retired_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slas")),
        sa.UniqueConstraint("version", name=op.f("uq_slas_version")),
    )
    op.create_index("ix_slas_one_active", "slas", ["status"], unique=True,
                    postgresql_where=sa.text("status = 'active'"),
                    sqlite_where=sa.text("status = 'active'"))
    op.create_table(
        "sla_approvals",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("sla_id", BIG_ID, nullable=False),
        sa.Column("role", _enum("approval_role", "marketer", "sales_approver"), nullable=False),
        sa.Column("approved_by", sa.String(length=320), nullable=False),
        sa.Column("approved_at", WHEN, nullable=False),
        sa.Column("withdrawn_by", sa.String(length=320), nullable=True),
        sa.Column("withdrawn_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(["sla_id"], ["slas.id"], ondelete="CASCADE",
                                name=op.f("fk_sla_approvals_sla_id_slas")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_approvals")),
    )
    op.create_index(op.f("ix_sla_approvals_sla_id"), "sla_approvals", ["sla_id"])
    op.create_index("ix_sla_approvals_live", "sla_approvals", ["sla_id", "role"], unique=True,
                    postgresql_where=sa.text("withdrawn_at IS NULL"),
                    sqlite_where=sa.text("withdrawn_at IS NULL"))

    with op.batch_alter_table("handoffs") as batch:
        batch.drop_constraint(op.f("ck_handoffs_handoff_status"), type_="check")
        batch.create_check_constraint(
            op.f("ck_handoffs_handoff_status"),
            _one_of("status", (*HANDOFF_STATUSES, "expired", "stalled")))
        batch.add_column(sa.Column("sla_id", BIG_ID, nullable=True))
        batch.add_column(sa.Column("stalls_at", WHEN, nullable=True))
        batch.create_foreign_key(op.f("fk_handoffs_sla_id_slas"), "slas", ["sla_id"], ["id"],
                                 ondelete="SET NULL")
        batch.create_index(op.f("ix_handoffs_sla_id"), ["sla_id"])
        batch.create_index("ix_handoffs_stalls_at", ["stalls_at"],
                           postgresql_where=sa.text("status = 'accepted'"),
                           sqlite_where=sa.text("status = 'accepted'"))

    op.create_table(
        "outcomes",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("crm_outcome_id", sa.String(length=255), nullable=False),
        sa.Column("lead_id", BIG_ID, nullable=False),
        sa.Column("handoff_id", BIG_ID, nullable=True),
        sa.Column("kind", _enum("outcome_kind", "opportunity_created", "won", "lost"),
                  nullable=False),
        sa.Column("loss_reason", _enum("loss_reason", "price", "competitor", "no_decision",
                                       "timing", "other"), nullable=True),
        sa.Column("amount", sa.Numeric(20, 4), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("occurred_at", WHEN, nullable=False),
        sa.Column("recorded_at", WHEN, nullable=False),
        sa.Column("rejection_id", BIG_ID, nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE",
                                name=op.f("fk_outcomes_lead_id_leads")),
        sa.ForeignKeyConstraint(["handoff_id"], ["handoffs.id"], ondelete="SET NULL",
                                name=op.f("fk_outcomes_handoff_id_handoffs")),
        sa.ForeignKeyConstraint(["rejection_id"], ["rejections.id"], ondelete="SET NULL",
                                name=op.f("fk_outcomes_rejection_id_rejections")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outcomes")),
        sa.UniqueConstraint("crm_outcome_id", name=op.f("uq_outcomes_crm_outcome_id")),
    )
    op.create_index(op.f("ix_outcomes_handoff_id"), "outcomes", ["handoff_id"])
    op.create_index("ix_outcomes_lead_id_occurred_at", "outcomes", ["lead_id", "occurred_at"])
    op.create_index("ix_outcomes_kind_occurred_at", "outcomes", ["kind", "occurred_at"])
    _foreign_keys(True)


def downgrade() -> None:
    _foreign_keys(False)
    op.drop_table("outcomes")
    op.execute("UPDATE handoffs SET status = 'accepted' WHERE status = 'stalled'")
    op.execute("UPDATE handoffs SET status = 'rejected' WHERE status = 'expired'")
    with op.batch_alter_table("handoffs") as batch:
        batch.drop_index("ix_handoffs_stalls_at")
        batch.drop_index(op.f("ix_handoffs_sla_id"))
        batch.drop_constraint(op.f("fk_handoffs_sla_id_slas"), type_="foreignkey")
        batch.drop_column("stalls_at")
        batch.drop_column("sla_id")
        batch.drop_constraint(op.f("ck_handoffs_handoff_status"), type_="check")
        batch.create_check_constraint(op.f("ck_handoffs_handoff_status"),
                                      _one_of("status", HANDOFF_STATUSES))
    op.drop_table("sla_approvals")
    op.drop_table("slas")
    op.execute("UPDATE rejections SET reason = 'other' "
               "WHERE reason IN ('sla_expired', 'stalled_in_sales')")
    _checks("rejections", ("ck_rejections_rejection_reason", "reason", REASONS))
    op.execute("UPDATE leads SET lifecycle_stage = 'accepted_by_sales' "
               "WHERE lifecycle_stage = 'opportunity'")
    op.execute("UPDATE lifecycle_changes SET to_stage = 'accepted_by_sales' "
               "WHERE to_stage = 'opportunity'")
    op.execute("UPDATE lifecycle_changes SET from_stage = 'accepted_by_sales' "
               "WHERE from_stage = 'opportunity'")
    _checks("leads", ("ck_leads_lifecycle_stage", "lifecycle_stage", STAGES))
    _checks("lifecycle_changes",
            ("ck_lifecycle_changes_from_stage", "from_stage", STAGES),
            ("ck_lifecycle_changes_to_stage", "to_stage", STAGES))
    _foreign_keys(True)
