"""Change requests: a sales approver's comment on a scoring model or SLA version

`change_requests` (the document's kind and id, its version, its author, who asked, the
comment, when): what the approvers' queue sends back to the author of a draft. Collateral
keeps its comments in `collateral_transitions`.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "change_requests",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("document_kind", sa.String(20), nullable=False),
        sa.Column("document_id", BIG_ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(320), nullable=False),
        sa.Column("requested_by", sa.String(320), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("requested_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_requests")),
    )
    op.create_index("ix_change_requests_document", "change_requests",
                    ["document_kind", "document_id"])


def downgrade() -> None:
    op.drop_index("ix_change_requests_document", table_name="change_requests")
    op.drop_table("change_requests")
