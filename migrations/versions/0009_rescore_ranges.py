"""Re-score ranges: the units of work of a model's re-score after activation

`scoring_rescore_ranges` (model, first and last lead id, when done): jobs take the ranges in
parallel (SKIP LOCKED) instead of following one position on the model, which stays as it was.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "scoring_rescore_ranges",
        sa.Column("model_id", BIG_ID, nullable=False),
        sa.Column("first_lead_id", BIG_ID, nullable=False),
        sa.Column("last_lead_id", BIG_ID, nullable=False),
        sa.Column("done_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(["model_id"], ["scoring_models.id"], ondelete="CASCADE",
                                name=op.f("fk_scoring_rescore_ranges_model_id_scoring_models")),
        sa.PrimaryKeyConstraint("model_id", "first_lead_id",
                                name=op.f("pk_scoring_rescore_ranges")),
    )


def downgrade() -> None:
    op.drop_table("scoring_rescore_ranges")
