"""Funnel months: each cohort month's stored funnel figures, and the marks of changes since

`report_funnel_months` (cohort, grouping, figures) and `report_funnel_touched` (a journey of
a cohort changed since its figures were stored). docs/REPORTS.md, "The funnel's months".

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "report_funnel_months",
        sa.Column("cohort", sa.Date(), nullable=False),
        sa.Column("grouping", sa.String(16), nullable=False),
        sa.Column("figures", JSON, nullable=False),
        sa.PrimaryKeyConstraint("cohort", "grouping", name=op.f("pk_report_funnel_months")),
    )
    op.create_table(
        "report_funnel_touched",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("cohort", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_funnel_touched")),
    )
    op.create_index("ix_report_funnel_touched_cohort", "report_funnel_touched", ["cohort"])
    # Every month already in the journeys is to be stored by the dispatcher's next refresh.
    op.execute("INSERT INTO report_funnel_touched (cohort) "
               "SELECT DISTINCT cohort FROM report_journeys ORDER BY cohort")


def downgrade() -> None:
    op.drop_index("ix_report_funnel_touched_cohort", table_name="report_funnel_touched")
    op.drop_table("report_funnel_touched")
    op.drop_table("report_funnel_months")
