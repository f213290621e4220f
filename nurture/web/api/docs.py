"""Models of what the API answers: used only to write the OpenAPI document (tests hold them true)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from nurture.models import LifecycleStage, RejectionReason


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExplanationItem(Closed):
    rule: str
    points: float
    at: datetime | None


class Score(Closed):
    total: float
    fit: float
    engagement: float
    model_version: int | None
    explanation: list[ExplanationItem]


class Rejection(Closed):
    id: int
    lead_id: int
    reason: RejectionReason
    note: str | None
    revisit_on: date | None
    rep_email: str
    crm_id: str | None
    rejected_at: datetime


class LeadEvent(Closed):
    id: int
    type: str
    occurred_at: datetime
    source: str
    message_id: str | None
    url: str | None
    collateral_version_id: int | None
    bounce_class: str | None
    is_machine: bool
    machine_reason: str | None
    properties: dict[str, Any]


class Lead(Closed):
    id: int
    email: str
    first_name: str | None
    last_name: str | None
    company: str | None
    title: str | None
    industry: str | None
    company_size: int | None
    country: str | None
    timezone: str | None
    source: str | None
    owner_email: str | None
    crm_id: str | None
    attributes: dict[str, Any]
    lifecycle_stage: LifecycleStage
    created_at: datetime
    updated_at: datetime
    score: Score
    enrollments: list[Enrollment]
    messages: list[MessageReceived]
    handoffs: list[Handoff]
    rejections: list[Rejection]
    events: list[LeadEvent]


class Enrollment(Closed):
    id: int
    sequence_id: int
    sequence_key: str
    sequence_name: str
    version_id: int
    status: Literal["scheduled", "active", "held", "completed", "exited"]
    step_id: str | None
    next_due_at: datetime | None
    enrolled_at: datetime
    finished_at: datetime | None
    exit_reason: str | None


class HandoffLead(Closed):
    id: int
    email: str
    first_name: str | None
    last_name: str | None
    company: str | None
    title: str | None
    lifecycle_stage: LifecycleStage


class Handoff(Closed):
    """A lead recycled to sales (nurture.handoffs.documents)."""

    id: int
    lead_id: int
    status: Literal["open", "accepted", "rejected", "expired", "stalled"]
    rep_email: str | None
    score: dict[str, Any]
    model_version_id: int | None
    qualifying_event_id: int | None
    qualified_at: datetime
    created_at: datetime
    sla_due_at: datetime
    sla_id: int | None
    """The SLA version the handoff runs under (null: the settings' default)."""
    stalls_at: datetime | None
    """Accepted with no opportunity yet: when the lead returns to nurture."""
    escalations: int
    reassignments: int
    handoff_ms: int
    """Measured: from the qualifying moment to the handoff being stored."""
    response_ms: int | None
    """Measured: from the handoff to the rep's first action."""
    first_action_at: datetime | None
    closed_at: datetime | None
    closed_by: str | None
    prior_rejection_id: int | None
    rejection_id: int | None
    lead: HandoffLead | None = None


class HandoffStep(Closed):
    kind: str
    rep_email: str | None
    detail: str | None
    at: datetime


class DeliveryTry(Closed):
    attempted_at: datetime
    ok: bool
    status_code: int | None
    duration_ms: int
    error: str | None


class HandoffNotification(Closed):
    id: str
    """Stable: the CRM webhook's `id`."""
    channel: Literal["crm_webhook", "rep_email"]
    purpose: str
    recipient: str | None
    status: Literal["pending", "delivered", "failed", "unknown", "skipped"]
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    tries: list[DeliveryTry]


class HandoffDetail(Handoff):
    events: list[HandoffStep]
    notifications: list[HandoffNotification]


class HandoffList(Closed):
    handoffs: list[Handoff]


class HandoffAnswer(Closed):
    handoff: Handoff


class HandoffRejectionResult(Closed):
    handoff: Handoff
    rejection: Rejection
    enrollment: Enrollment | None
    routing: Routing


class FeaturedCollateral(Closed):
    key: str
    version: int
    title: str


class MessageReceived(Closed):
    message_id: str
    sequence_id: int
    enrollment_id: int
    step_id: str
    subject: str
    status: Literal["queued", "sending", "sent", "failed", "unknown", "skipped"]
    sent_at: datetime | None
    collateral: list[FeaturedCollateral]


class Routing(Closed):
    enrolled: bool
    reason: str | None


class RejectionResult(Closed):
    rejection: Rejection
    lead: Lead
    enrollment: Enrollment | None
    routing: Routing


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    errors: dict[str, list[str]] | None = None


class Health(BaseModel):
    status: Literal["ok"]


class SequenceSummary(Closed):
    id: int
    key: str
    name: str
    status: Literal["draft", "active", "paused"]
    priority: int
    latest_version: int | None
    active_version: int | None
    updated_at: datetime
    paused_steps: dict[str, list[str]]


class ImportedSequence(SequenceSummary):
    version: int


class SequenceList(Closed):
    sequences: list[SequenceSummary]


class Transition(Closed):
    from_: str | None = None
    to: str
    by: str
    comment: str | None
    at: datetime

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CollateralVersion(Closed):
    id: int
    key: str
    version: int
    title: str
    url: str | None
    file_name: str | None
    content_type: str | None
    funnel_stage: Literal["awareness", "consideration", "decision"]
    personas: list[str]
    industries: list[str]
    expires_on: date | None
    status: Literal["draft", "submitted", "approved", "changes_requested", "retired"]
    created_at: datetime


class CollateralVersionWithHistory(CollateralVersion):
    history: list[dict[str, Any]]


class CollateralDetail(Closed):
    key: str
    versions: list[CollateralVersionWithHistory]


class MigrationResult(Closed):
    from_version: int
    to_version: int
    moved: int
    stayed: list[dict[str, Any]]


class NurtureResult(Closed):
    lead: Lead
    enrollment: Enrollment | None
    routing: Routing


class SnsSubscription(Closed):
    id: int
    topic_arn: str
    kind: Literal["SubscriptionConfirmation", "UnsubscribeConfirmation"]
    status: Literal["pending", "confirmed", "unsubscribed"]
    subscribe_url: str | None
    """Open it by hand to confirm a subscription still pending."""
    last_error: str | None
    """Why calling the SubscribeURL failed."""
    received_at: datetime
    confirmed_at: datetime | None


class SnsSubscriptionList(Closed):
    subscriptions: list[SnsSubscription]


class EventsAccepted(Closed):
    accepted: int
    """Events stored now."""
    duplicates: int
    """Events whose `id` was stored before (or repeated in this request): nothing changed."""


class ScoringApproval(Closed):
    role: Literal["marketer", "sales_approver"]
    approved_by: str
    approved_at: datetime
    withdrawn_by: str | None
    withdrawn_at: datetime | None


class RescoreProgress(Closed):
    total: int | None
    """Leads to re-score after activation (null: not started)."""
    done: int
    finished_at: datetime | None


class ScoringModelSummary(Closed):
    id: int
    version: int
    name: str
    status: Literal["draft", "approved", "active", "retired"]
    created_by: str
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None
    approvals: list[ScoringApproval]
    rescore: RescoreProgress


class ScoringModelDetail(ScoringModelSummary):
    document: dict[str, Any]


class ScoringModelList(Closed):
    models: list[ScoringModelSummary]


class BacktestRun(Closed):
    id: int
    model_id: int
    compared_model_id: int | None
    days: int
    status: Literal["queued", "running", "done", "failed"]
    requested_by: str
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: dict[str, Any] | None
    error: str | None


class OutcomeRouting(Closed):
    reason: str
    """The rejection reason the loss was recorded with."""
    enrolled: bool
    sequence_id: int | None
    detail: str | None


class OutcomeAnswer(Closed):
    id: str
    status: Literal["recorded", "duplicate", "unknown_lead", "ambiguous_lead"]
    lead_id: int | None = None
    lifecycle_stage: LifecycleStage | None = None
    detail: str | None = None
    routing: OutcomeRouting | None = None


class OutcomesRecorded(Closed):
    recorded: int
    duplicates: int
    """Outcome ids recorded before (or repeated in this request): nothing changed."""
    unknown_leads: int
    """Items whose lead Nurture does not know (or whose crm_id names several leads)."""
    results: list[OutcomeAnswer]
    """One per item, in the request's order."""


class SlaSummary(Closed):
    id: int
    version: int
    name: str
    status: Literal["draft", "approved", "active", "retired"]
    created_by: str
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None
    approvals: list[ScoringApproval]


class SlaDetail(SlaSummary):
    document: dict[str, Any]


class SlaList(Closed):
    slas: list[SlaSummary]
    active_id: int | None
    """The version in force (null: the settings' default)."""
