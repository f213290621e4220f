"""Intake into nurture: a rejection is recorded, then routed to a sequence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.routing import route_lead
from nurture import rollups
from nurture.errors import Conflict
from nurture.leads import services as leads
from nurture.models import Enrollment, LifecycleStage, Rejection, RejectionReason, Sequence


@dataclass(frozen=True)
class Intake:
    rejection: Rejection | None
    lead_id: int
    created: bool
    enrollment: dict[str, Any] | None
    routing_reason: str | None


def reject_lead(
    session: Session,
    email: str,
    lead_fields: dict[str, Any],
    *,
    rep_email: str,
    reason: RejectionReason,
    note: str | None = None,
    revisit_on: date | None = None,
    crm_id: str | None = None,
    rejected_at: datetime | None = None,
    now: datetime,
) -> Intake:
    """Record the rejection and enroll the lead in the first sequence that takes it.

    A retried rejection (same `crm_id`) answers with what the first one got, changing nothing.
    """
    outcome = leads.record_rejection(
        session, email, lead_fields, rep_email=rep_email, reason=reason, note=note,
        revisit_on=revisit_on, crm_id=crm_id, rejected_at=rejected_at, now=now,
    )
    if not outcome.created:
        row = session.execute(
            select(Enrollment, Sequence)
            .join(Sequence, Sequence.id == Enrollment.sequence_id)
            .where(Enrollment.rejection_id == outcome.rejection.id)
        ).first()
        document = leads.enrollment_document(*row) if row else None
        return Intake(outcome.rejection, outcome.lead.id, False, document,
                      None if row else "no sequence took this rejection when it was recorded")
    routed = route_lead(session, outcome.lead, rejection=outcome.rejection, now=now)
    document = None
    if routed.enrollment is not None:
        sequence = session.get(Sequence, routed.enrollment.sequence_id)
        assert sequence is not None
        document = leads.enrollment_document(routed.enrollment, sequence)
    return Intake(outcome.rejection, outcome.lead.id, True, document, routed.reason)


NOT_READY_FROM = (LifecycleStage.LEAD, LifecycleStage.MQL, LifecycleStage.NURTURING)
"""Stages from which a lead may be put into nurture as not ready (not while sales holds it)."""


def nurture_not_ready(session: Session, lead_id: int, *, now: datetime) -> Intake:
    """A lead that is not ready for sales: into nurture, routed to a sequence for not-ready leads."""
    lead = leads.get_lead(session, lead_id)
    if lead.lifecycle_stage not in NOT_READY_FROM:
        raise Conflict(f"lead {lead.id} is {lead.lifecycle_stage.value}; sales holds it")
    entering = lead.lifecycle_stage != LifecycleStage.NURTURING
    leads.change_stage(session, lead, LifecycleStage.NURTURING, cause="not_ready", now=now)
    if entering:
        rollups.entered_nurture(session, lead, rejection=None, at=now)
    routed = route_lead(session, lead, rejection=None, now=now)
    document = None
    if routed.enrollment is not None:
        sequence = session.get(Sequence, routed.enrollment.sequence_id)
        assert sequence is not None
        document = leads.enrollment_document(routed.enrollment, sequence)
    return Intake(None, lead.id, routed.enrollment is not None, document, routed.reason)
