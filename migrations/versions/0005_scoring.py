"""scoring models, scores, the score ledger, backtests

`scoring_models` (versioned documents; at most one active) and `scoring_approvals`;
`lead_scores` and `lead_score_rules` (a decayed sum with its reference time, per lead and per
rule); `score_ledger` (append-only, an event once per rule and model); `scoring_backtests`;
`engagement_events.scored_at` with a partial index of the unscored events.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True)


def upgrade() -> None:
    op.create_table(
        "scoring_models",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("document", JSON, nullable=False),
        sa.Column("status", _enum("scoring_model_status", "draft", "approved", "active",
                                  "retired"), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("activated_by", sa.String(length=320), nullable=True),
        sa.Column("activated_at", TS, nullable=True),
        sa.Column("retired_by", sa.String(length=320), nullable=True),
        sa.Column("retired_at", TS, nullable=True),
        sa.Column("rescore_total", sa.Integer(), nullable=True),
        sa.Column("rescore_done", sa.Integer(), nullable=False),
        sa.Column("rescore_after_lead_id", BIG_ID, nullable=True),
        sa.Column("rescore_finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scoring_models")),
        sa.UniqueConstraint("version", name=op.f("uq_scoring_models_version")),
    )
    op.create_index("ix_scoring_models_one_active", "scoring_models", ["status"], unique=True,
                    postgresql_where=sa.text("status = 'active'"),
                    sqlite_where=sa.text("status = 'active'"))

    op.create_table(
        "scoring_approvals",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("model_id", BIG_ID, nullable=False),
        sa.Column("role", _enum("approval_role", "marketer", "sales_approver"), nullable=False),
        sa.Column("approved_by", sa.String(length=320), nullable=False),
        sa.Column("approved_at", TS, nullable=False),
        sa.Column("withdrawn_by", sa.String(length=320), nullable=True),
        sa.Column("withdrawn_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["model_id"], ["scoring_models.id"], ondelete="CASCADE",
                                name=op.f("fk_scoring_approvals_model_id_scoring_models")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scoring_approvals")),
    )
    op.create_index(op.f("ix_scoring_approvals_model_id"), "scoring_approvals", ["model_id"])
    op.create_index("ix_scoring_approvals_live", "scoring_approvals", ["model_id", "role"],
                    unique=True, postgresql_where=sa.text("withdrawn_at IS NULL"),
                    sqlite_where=sa.text("withdrawn_at IS NULL"))

    op.create_table(
        "lead_scores",
        sa.Column("lead_id", BIG_ID, nullable=False),
        sa.Column("model_id", BIG_ID, nullable=True),
        sa.Column("fit", sa.Float(), nullable=False),
        sa.Column("decayed", sa.Float(), nullable=False),
        sa.Column("decayed_at", TS, nullable=True),
        sa.Column("steady", sa.Float(), nullable=False),
        sa.Column("fit_checked_at", TS, nullable=True),
        sa.Column("qualified_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE",
                                name=op.f("fk_lead_scores_lead_id_leads")),
        sa.ForeignKeyConstraint(["model_id"], ["scoring_models.id"], ondelete="SET NULL",
                                name=op.f("fk_lead_scores_model_id_scoring_models")),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_lead_scores")),
    )
    op.create_index(op.f("ix_lead_scores_model_id"), "lead_scores", ["model_id"])

    op.create_table(
        "lead_score_rules",
        sa.Column("lead_id", BIG_ID, nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("decays", sa.Boolean(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("ref_at", TS, nullable=True),
        sa.Column("last_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["lead_scores.lead_id"], ondelete="CASCADE",
                                name=op.f("fk_lead_score_rules_lead_id_lead_scores")),
        sa.PrimaryKeyConstraint("lead_id", "rule", name=op.f("pk_lead_score_rules")),
    )

    op.create_table(
        "score_ledger",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("lead_id", BIG_ID, nullable=False),
        sa.Column("model_id", BIG_ID, nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("points", sa.Float(), nullable=False),
        sa.Column("event_id", BIG_ID, nullable=True),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE",
                                name=op.f("fk_score_ledger_lead_id_leads")),
        sa.ForeignKeyConstraint(["model_id"], ["scoring_models.id"], ondelete="CASCADE",
                                name=op.f("fk_score_ledger_model_id_scoring_models")),
        sa.ForeignKeyConstraint(["event_id"], ["engagement_events.id"], ondelete="SET NULL",
                                name=op.f("fk_score_ledger_event_id_engagement_events")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_score_ledger")),
        sa.UniqueConstraint("model_id", "event_id", "rule", name="uq_score_ledger_event_rule"),
    )
    op.create_index(op.f("ix_score_ledger_event_id"), "score_ledger", ["event_id"])
    op.create_index("ix_score_ledger_lead_id_rule_occurred_at", "score_ledger",
                    ["lead_id", "model_id", "rule", "occurred_at"])

    op.create_table(
        "scoring_backtests",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("model_id", BIG_ID, nullable=False),
        sa.Column("compared_model_id", BIG_ID, nullable=True),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("status", _enum("backtest_status", "queued", "running", "done", "failed"),
                  nullable=False),
        sa.Column("requested_by", sa.String(length=320), nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("result", JSON, nullable=True),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(["model_id"], ["scoring_models.id"], ondelete="CASCADE",
                                name=op.f("fk_scoring_backtests_model_id_scoring_models")),
        sa.ForeignKeyConstraint(["compared_model_id"], ["scoring_models.id"],
                                ondelete="SET NULL",
                                name=op.f("fk_scoring_backtests_compared_model_id_scoring_models")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scoring_backtests")),
    )
    op.create_index(op.f("ix_scoring_backtests_model_id"), "scoring_backtests", ["model_id"])

    with op.batch_alter_table("engagement_events") as batch:
        batch.add_column(sa.Column("scored_at", TS, nullable=True))
        batch.create_index(
            "ix_engagement_events_unscored", ["id"], unique=False,
            postgresql_where=sa.text("scored_at IS NULL"),
            sqlite_where=sa.text("scored_at IS NULL"),
        )
    # events stored before scoring existed count as seen: activating a model replays them
    op.execute("UPDATE engagement_events SET scored_at = received_at")


def downgrade() -> None:
    with op.batch_alter_table("engagement_events") as batch:
        batch.drop_index("ix_engagement_events_unscored")
        batch.drop_column("scored_at")
    op.drop_index(op.f("ix_scoring_backtests_model_id"), table_name="scoring_backtests")
    op.drop_table("scoring_backtests")
    op.drop_index("ix_score_ledger_lead_id_rule_occurred_at", table_name="score_ledger")
    op.drop_index(op.f("ix_score_ledger_event_id"), table_name="score_ledger")
    op.drop_table("score_ledger")
    op.drop_table("lead_score_rules")
    op.drop_index(op.f("ix_lead_scores_model_id"), table_name="lead_scores")
    op.drop_table("lead_scores")
    op.drop_index("ix_scoring_approvals_live", table_name="scoring_approvals")
    op.drop_index(op.f("ix_scoring_approvals_model_id"), table_name="scoring_approvals")
    op.drop_table("scoring_approvals")
    op.drop_index("ix_scoring_models_one_active", table_name="scoring_models")
    op.drop_table("scoring_models")
