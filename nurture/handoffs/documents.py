"""Handoffs as the API shows them (the rep's inbox, the lead's `handoffs`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.clock import iso
from nurture.models import Handoff, HandoffEvent, HandoffNotification, Lead, NotificationAttempt


def handoff_document(handoff: Handoff, lead: Lead | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": handoff.id,
        "lead_id": handoff.lead_id,
        "status": handoff.status.value,
        "rep_email": handoff.rep_email,
        "score": handoff.score,
        "model_version_id": handoff.model_version_id,
        "qualifying_event_id": handoff.qualifying_event_id,
        "qualified_at": iso(handoff.qualified_at),
        "created_at": iso(handoff.created_at),
        "sla_due_at": iso(handoff.sla_due_at),
        "sla_id": handoff.sla_id,
        "stalls_at": iso(handoff.stalls_at),
        "escalations": handoff.escalations,
        "reassignments": handoff.reassignments,
        "handoff_ms": handoff.handoff_ms,
        "response_ms": handoff.response_ms,
        "first_action_at": iso(handoff.first_action_at),
        "closed_at": iso(handoff.closed_at),
        "closed_by": handoff.closed_by,
        "prior_rejection_id": handoff.prior_rejection_id,
        "rejection_id": handoff.rejection_id,
    }
    if lead is not None:
        document["lead"] = {
            "id": lead.id, "email": lead.email, "first_name": lead.first_name,
            "last_name": lead.last_name, "company": lead.company, "title": lead.title,
            "lifecycle_stage": lead.lifecycle_stage.value,
        }
    return document


def handoff_history(session: Session, handoff: Handoff) -> dict[str, Any]:
    """Every step of the handoff, and every notification with each attempt to deliver it."""
    events = session.execute(
        select(HandoffEvent).where(HandoffEvent.handoff_id == handoff.id)
        .order_by(HandoffEvent.at, HandoffEvent.id)
    ).scalars().all()
    notifications = session.execute(
        select(HandoffNotification).where(HandoffNotification.handoff_id == handoff.id)
        .order_by(HandoffNotification.id)
    ).scalars().all()
    attempts: dict[int, list[dict[str, Any]]] = {}
    if notifications:
        for attempt in session.execute(
            select(NotificationAttempt)
            .where(NotificationAttempt.notification_id.in_([n.id for n in notifications]))
            .order_by(NotificationAttempt.attempted_at, NotificationAttempt.id)
        ).scalars():
            attempts.setdefault(attempt.notification_id, []).append({
                "attempted_at": iso(attempt.attempted_at), "ok": attempt.ok,
                "status_code": attempt.status_code, "duration_ms": attempt.duration_ms,
                "error": attempt.error,
            })
    return {
        "events": [{"kind": e.kind, "rep_email": e.rep_email, "detail": e.detail,
                    "at": iso(e.at)} for e in events],
        "notifications": [{
            "id": n.public_id, "channel": n.channel.value, "purpose": n.purpose,
            "recipient": n.recipient, "status": n.status.value, "attempts": n.attempts,
            "next_attempt_at": iso(n.next_attempt_at), "last_error": n.last_error,
            "created_at": iso(n.created_at), "delivered_at": iso(n.delivered_at),
            "tries": attempts.get(n.id, []),
        } for n in notifications],
    }
