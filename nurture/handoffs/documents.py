"""Handoffs as the API shows them (the rep's inbox, the lead's `handoffs`)."""

from __future__ import annotations

from typing import Any

from nurture.handoffs.notifications import iso
from nurture.models import Handoff, Lead


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
