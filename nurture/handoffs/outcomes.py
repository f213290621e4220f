"""What the CRM reports happened after a handoff: an opportunity, a win, a loss.

Lifecycle: accepted → opportunity → customer. An opportunity or a win for a lead that is still
with a rep unanswered accepts its handoff on the CRM's word (the rep is clearly working it)
and stops its stall timer; a lead still in nurture leaves it. A loss returns the lead to
nurture with a rejection whose reason is the loss reason's (`LOSS_REASONS`), routed exactly
like a rejection from the CRM, so closed-lost leads get the sequence for their reason. A
customer stays a customer: a loss reported for one (an upsell) is recorded and changes
nothing else.

Each outcome is stored once under the CRM's outcome id: a repeated id, in the same batch or
a later one, is answered `duplicate` and changes nothing. An outcome for a lead Nurture does
not know is answered `unknown_lead`; the rest of its batch is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from campaigns.intake import reject_lead
from nurture import rollups
from nurture.accounts.services import Actor
from nurture.db import insert_ignoring_conflicts
from nurture.errors import InvalidInput
from nurture.fields import normalize_email
from nurture.handoffs.services import accept, exit_enrollments
from nurture.leads.services import change_stage
from nurture.models import (
    Handoff,
    HandoffStatus,
    Lead,
    LifecycleStage,
    LossReason,
    Outcome,
    OutcomeKind,
    RejectionReason,
    Role,
)

LOSS_REASONS: dict[LossReason, RejectionReason] = {
    LossReason.PRICE: RejectionReason.NO_BUDGET,
    LossReason.COMPETITOR: RejectionReason.CHOSE_COMPETITOR,
    LossReason.NO_DECISION: RejectionReason.NO_NEED,  # the status quo won: no felt need yet
    LossReason.TIMING: RejectionReason.BAD_TIMING,
    LossReason.OTHER: RejectionReason.OTHER,
}
"""The rejection reason a loss is recorded and routed with."""

MAX_FUTURE = timedelta(days=1)
"""An outcome may say it happened this far after our clock (clocks differ); further is refused."""

MAX_AMOUNT_DIGITS = 20
"""Digits of an amount (4 after the point), as the column holds them."""

CRM = Actor(email="crm:outcomes", role=Role.ADMIN)
"""Who accepts a handoff when the CRM reports an opportunity the rep never answered."""

CLOSED = (LifecycleStage.CUSTOMER,)
"""Stages an outcome does not move a lead out of."""


@dataclass(frozen=True)
class ReportedOutcome:
    """One outcome as the CRM reports it (validated: `schemas.OutcomeIn`)."""

    outcome_id: str
    kind: OutcomeKind
    occurred_at: datetime
    crm_id: str | None = None
    email: str | None = None
    loss_reason: LossReason | None = None
    amount: Decimal | None = None
    currency: str | None = None


@dataclass
class OutcomeResult:
    """The answer for one item, in the request's order."""

    id: str
    status: str
    """`recorded`, `duplicate`, `unknown_lead` or `ambiguous_lead`."""
    lead_id: int | None = None
    lifecycle_stage: str | None = None
    detail: str | None = None
    routing: dict[str, Any] | None = field(default=None)

    def as_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.lead_id is not None:
            answer["lead_id"] = self.lead_id
            answer["lifecycle_stage"] = self.lifecycle_stage
        if self.detail is not None:
            answer["detail"] = self.detail
        if self.routing is not None:
            answer["routing"] = self.routing
        return answer


def record_outcomes(session: Session, outcomes: Sequence[ReportedOutcome], *,
                    now: datetime) -> list[OutcomeResult]:
    """Record each outcome not recorded before and move its lead along; one answer per item.

    The leads are locked first, in id order (two batches about the same leads wait for each
    other rather than deadlock); outcomes apply in the order they occurred. An outcome dated
    more than `MAX_FUTURE` ahead refuses the batch (`InvalidInput`), before anything changes."""
    late = {f"outcomes[{i}].occurred_at": [f"more than {MAX_FUTURE} in the future"]
            for i, o in enumerate(outcomes) if o.occurred_at > now + MAX_FUTURE}
    if late:
        raise InvalidInput("an outcome cannot have happened yet", late)
    leads = _find_leads(session, outcomes)
    results: dict[int, OutcomeResult] = {}
    order = sorted(range(len(outcomes)), key=lambda i: outcomes[i].occurred_at)
    for index in order:
        reported = outcomes[index]
        found = leads.get(index)
        if isinstance(found, str):
            results[index] = OutcomeResult(reported.outcome_id, found, detail=_missing(reported,
                                                                                     found))
            continue
        results[index] = record_outcome(session, reported, found, now=now)
    return [results[i] for i in range(len(outcomes))]


def record_outcome(session: Session, reported: ReportedOutcome, lead: Lead, *,
                   now: datetime) -> OutcomeResult:
    """Store one outcome for a known (locked) lead, once, and apply it."""
    latest = session.execute(
        select(Handoff).where(Handoff.lead_id == lead.id)
        .order_by(Handoff.created_at.desc(), Handoff.id.desc()).limit(1)
    ).scalar_one_or_none()
    outcome_id = session.execute(
        insert_ignoring_conflicts(session, Outcome, index_elements=["crm_outcome_id"])
        .values(crm_outcome_id=reported.outcome_id, lead_id=lead.id,
                handoff_id=latest.id if latest else None, kind=reported.kind,
                loss_reason=reported.loss_reason, amount=reported.amount,
                currency=reported.currency, occurred_at=reported.occurred_at, recorded_at=now)
        .returning(Outcome.id)
    ).scalar_one_or_none()
    if outcome_id is None:
        return OutcomeResult(reported.outcome_id, "duplicate", lead.id,
                             lead.lifecycle_stage.value, "recorded before")
    outcome = session.get(Outcome, outcome_id)
    assert outcome is not None
    result = OutcomeResult(reported.outcome_id, "recorded", lead.id)
    if lead.lifecycle_stage in CLOSED:
        result.detail = f"the lead is a {lead.lifecycle_stage.value} already"
    elif reported.kind == OutcomeKind.LOST:
        result.routing = _lost(session, outcome, lead, latest, now=now)
    else:
        _won_or_opportunity(session, outcome, lead, latest, now=now)
    rollups.outcome(session, lead.id, reported.kind.value, amount=reported.amount,
                    at=reported.occurred_at)
    result.lifecycle_stage = lead.lifecycle_stage.value
    session.flush()
    return result


def _won_or_opportunity(session: Session, outcome: Outcome, lead: Lead,
                        latest: Handoff | None, *, now: datetime) -> None:
    _take_from_rep(session, lead, latest, now=now)
    stage = (LifecycleStage.CUSTOMER if outcome.kind == OutcomeKind.WON
             else LifecycleStage.OPPORTUNITY)
    exit_enrollments(session, lead.id, f"{outcome.kind.value} in the CRM", now=now)
    change_stage(session, lead, stage, cause=f"{outcome.kind.value}:outcome {outcome.id}",
                 now=now)


def _lost(session: Session, outcome: Outcome, lead: Lead, latest: Handoff | None, *,
          now: datetime) -> dict[str, Any]:
    """Back to nurture with the loss reason's rejection, routed like a CRM rejection."""
    _take_from_rep(session, lead, latest, now=now)
    assert outcome.loss_reason is not None
    reason = LOSS_REASONS[outcome.loss_reason]
    rep = (latest.rep_email if latest is not None else None) or lead.owner_email or CRM.email
    intake = reject_lead(session, lead.email, {}, rep_email=rep, reason=reason,
                         note=f"opportunity lost: {outcome.loss_reason.value}", now=now)
    assert intake.rejection is not None
    outcome.rejection_id = intake.rejection.id
    session.refresh(lead)
    return {"reason": reason.value, "enrolled": intake.enrollment is not None,
            "sequence_id": intake.enrollment["sequence_id"] if intake.enrollment else None,
            "detail": intake.routing_reason}


def _take_from_rep(session: Session, lead: Lead, latest: Handoff | None, *,
                   now: datetime) -> None:
    """The CRM's word settles the handoff: an open one is accepted, a stall timer stops."""
    if latest is None:
        return
    if latest.status == HandoffStatus.OPEN:
        accept(session, latest.id, actor=CRM, now=now)
    session.execute(update(Handoff).where(Handoff.lead_id == lead.id,
                                          Handoff.stalls_at.is_not(None))
                    .values(stalls_at=None).execution_options(synchronize_session=False))
    session.refresh(latest)
    session.refresh(lead)


def _find_leads(session: Session, outcomes: Sequence[ReportedOutcome]
                ) -> dict[int, Lead | str]:
    """Each item's lead, locked: by crm_id first, else by email; else why not."""
    crm_ids = {o.crm_id for o in outcomes if o.crm_id is not None}
    emails = {normalize_email(o.email) for o in outcomes if o.email is not None}
    by_crm: dict[str, list[int]] = {}
    for lead_id, crm_id in session.execute(
            select(Lead.id, Lead.crm_id).where(Lead.crm_id.in_(crm_ids))).all():
        by_crm.setdefault(crm_id, []).append(lead_id)
    by_email = dict(session.execute(
        select(Lead.email, Lead.id).where(Lead.email.in_(emails))).all())
    chosen: dict[int, int | str] = {}
    for index, reported in enumerate(outcomes):
        ids = by_crm.get(reported.crm_id, []) if reported.crm_id is not None else []
        if len(ids) > 1:
            chosen[index] = "ambiguous_lead"
        elif ids:
            chosen[index] = ids[0]
        elif reported.email is not None and normalize_email(reported.email) in by_email:
            chosen[index] = by_email[normalize_email(reported.email)]
        else:
            chosen[index] = "unknown_lead"
    locked = _lock(session, sorted({v for v in chosen.values() if isinstance(v, int)}))
    return {index: locked[v] if isinstance(v, int) else v for index, v in chosen.items()}


def _lock(session: Session, lead_ids: list[int]) -> dict[int, Lead]:
    if not lead_ids:
        return {}
    if session.get_bind().dialect.name == "sqlite":  # a write first takes the writer lock
        session.execute(update(Lead).where(Lead.id.in_(lead_ids)).values(updated_at=Lead.updated_at)
                        .execution_options(synchronize_session=False))
    rows = session.execute(
        select(Lead).where(Lead.id.in_(lead_ids)).order_by(Lead.id)
        .with_for_update(key_share=True)  # as recycle: events for these leads are not held up
        .execution_options(populate_existing=True)
    ).scalars()
    return {lead.id: lead for lead in rows}


def _missing(reported: ReportedOutcome, status: str) -> str:
    if status == "ambiguous_lead":
        return f"more than one lead has crm_id {reported.crm_id!r}"
    given = " or ".join(f"{name} {value!r}" for name, value in
                        (("crm_id", reported.crm_id), ("email", reported.email)) if value)
    return f"no lead with {given}"
