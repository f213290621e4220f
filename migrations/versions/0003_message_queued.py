"""messages: the `queued` status (composed in a batch, certainly not handed over yet)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BEFORE = ("sending", "sent", "failed", "unknown", "skipped")
AFTER = ("queued", *BEFORE)


def _statuses(values: tuple[str, ...]) -> str:
    return "status IN ({})".format(", ".join(f"'{value}'" for value in values))


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint(op.f("ck_messages_message_status"), type_="check")
        batch.create_check_constraint(op.f("ck_messages_message_status"), _statuses(AFTER))


def downgrade() -> None:
    op.execute("UPDATE messages SET status = 'failed' WHERE status = 'queued'")
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint(op.f("ck_messages_message_status"), type_="check")
        batch.create_check_constraint(op.f("ck_messages_message_status"), _statuses(BEFORE))
