"""messages: the `queued` status; engagement events: provider-neutral delivery types

`queued`: a message planned and composed in a batch, certainly not handed over yet.
Event types `processed`, `deferred`, `dropped` and `resubscribe` for the provider webhooks.

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

MESSAGE_STATUSES = ("sending", "sent", "failed", "unknown", "skipped")
EVENT_TYPES = ("delivered", "open", "click", "bounce", "spam_complaint", "unsubscribe",
               "page_view", "form_submit", "content_download", "webinar_registered",
               "webinar_attended", "email_reply", "meeting_booked")
NEW_EVENT_TYPES = ("processed", "deferred", "dropped", "resubscribe")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return "{} IN ({})".format(column, ", ".join(f"'{value}'" for value in values))


def _check(table: str, name: str, condition: str) -> None:
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(op.f(name), type_="check")
        batch.create_check_constraint(op.f(name), condition)


def upgrade() -> None:
    _check("messages", "ck_messages_message_status",
           _one_of("status", ("queued", *MESSAGE_STATUSES)))
    _check("engagement_events", "ck_engagement_events_event_type",
           _one_of("type", (*NEW_EVENT_TYPES, *EVENT_TYPES)))


def downgrade() -> None:
    op.execute("UPDATE messages SET status = 'failed' WHERE status = 'queued'")
    _check("messages", "ck_messages_message_status", _one_of("status", MESSAGE_STATUSES))
    op.execute("DELETE FROM engagement_events WHERE type IN ({})".format(
        ", ".join(f"'{value}'" for value in NEW_EVENT_TYPES)))
    _check("engagement_events", "ck_engagement_events_event_type", _one_of("type", EVENT_TYPES))
