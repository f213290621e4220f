"""What a handoff tells the world: the CRM webhook's body and the rep's emails, as rows.

Notifications are rows first (the database is the truth) and are delivered by a job after
the transaction that made them commits. `new_notifications(session)` lists the ids made in
the session's transaction, for the caller to enqueue once it has committed; the
dispatcher's sweep finds any that Redis lost.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from nurture.clock import iso
from nurture.models import (
    Handoff,
    HandoffNotification,
    Lead,
    NotificationChannel,
    NotificationStatus,
    Rejection,
)

WEBHOOK_TYPE = "lead.recycled"

_NEW = "nurture.handoffs.new_notifications"
"""Key of `Session.info` listing the notifications made in the session's transaction."""


def new_notifications(session: Session) -> list[int]:
    """Ids of the notifications made through this session since it was last asked; enqueue
    them after the commit (before it, a worker might not see the rows yet)."""
    return session.info.pop(_NEW, [])




def jsonable(value: Any) -> Any:
    """`value` with datetimes as RFC 3339 strings (a score may carry datetimes)."""
    return json.loads(json.dumps(value, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def lead_summary(lead: Lead) -> dict[str, Any]:
    return {
        "id": lead.id,
        "email": lead.email,
        **{name: getattr(lead, name) for name in Lead.PROFILE_FIELDS if name != "attributes"},
        "attributes": lead.attributes or {},
        "lifecycle_stage": lead.lifecycle_stage.value,
    }


def webhook_body(handoff: Handoff, lead: Lead, prior: Rejection | None, public_id: str) -> str:
    """The `lead.recycled` body of CONTRACT.md, as the exact text every attempt sends."""
    payload = {
        "id": public_id,
        "type": WEBHOOK_TYPE,
        "occurred_at": iso(handoff.created_at),
        "handoff_id": handoff.id,
        "lead": lead_summary(lead),
        "score": handoff.score,
        "model_version_id": handoff.model_version_id,
        "rep_email": handoff.rep_email,
        "rejection": None if prior is None else {
            "reason": prior.reason.value, "note": prior.note, "rejected_at": iso(prior.rejected_at),
        },
        "qualified_at": iso(handoff.qualified_at),
        "sla_due_at": iso(handoff.sla_due_at),
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def notify_crm(session: Session, handoff: Handoff, lead: Lead, prior: Rejection | None, *,
               now: datetime) -> HandoffNotification:
    public_id = f"evt_{uuid.uuid4().hex}"
    return _add(session, HandoffNotification(
        public_id=public_id, handoff_id=handoff.id, channel=NotificationChannel.CRM_WEBHOOK,
        purpose="handoff", body=webhook_body(handoff, lead, prior, public_id),
        status=NotificationStatus.PENDING, attempts=0, next_attempt_at=now, created_at=now,
    ))


def notify_rep(session: Session, handoff: Handoff, purpose: str, *,
               now: datetime, to: str | None = None) -> HandoffNotification | None:
    """An email to the handoff's rep (`handoff`, `reminder` or `reassigned`), or to `to` (a
    manager the SLA's escalation names); none without a recipient."""
    recipient = to or handoff.rep_email
    if recipient is None:
        return None
    return _add(session, HandoffNotification(
        public_id=f"eml_{uuid.uuid4().hex}", handoff_id=handoff.id,
        channel=NotificationChannel.REP_EMAIL, purpose=purpose, recipient=recipient,
        status=NotificationStatus.PENDING, attempts=0, next_attempt_at=now, created_at=now,
    ))


def _add(session: Session, notification: HandoffNotification) -> HandoffNotification:
    session.add(notification)
    session.flush()
    session.info.setdefault(_NEW, []).append(notification.id)
    return notification
