"""Scoring: versioned models and their approvals, each lead's score, the score ledger, backtests.

A lead's score is kept so that an event is an O(1) update: fit points, a decayed engagement
sum with its reference time, and points that do not decay; per rule the same, for the
explanation. The ledger is append-only: every change, with its rule, event and model.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.approvals import ApprovalRole, DocumentStatus
from nurture.models.base import Base, BigId, email_str, id_pk, json_object, short_str, str_enum

ScoringModelStatus = DocumentStatus
"""A scoring model's states (the ones every approved document goes through)."""


class ScoringModel(Base):
    """One version of the scoring model document; versions are immutable once stored."""

    __tablename__ = "scoring_models"
    __table_args__ = (
        # exactly one model is active (at most one row; activation swaps in one transaction)
        Index("ix_scoring_models_one_active", "status", unique=True,
              postgresql_where=text("status = 'active'"), sqlite_where=text("status = 'active'")),
    )

    id: Mapped[id_pk]
    version: Mapped[int] = mapped_column(Integer, unique=True)
    name: Mapped[short_str]
    document: Mapped[json_object]
    status: Mapped[ScoringModelStatus] = mapped_column(
        str_enum(ScoringModelStatus, "scoring_model_status"), default=ScoringModelStatus.DRAFT
    )
    created_by: Mapped[email_str]
    created_at: Mapped[datetime]
    activated_by: Mapped[email_str | None]
    activated_at: Mapped[datetime | None]
    retired_by: Mapped[email_str | None]
    retired_at: Mapped[datetime | None]
    rescore_total: Mapped[int | None]
    """Leads to re-score after activation (None: not started)."""
    rescore_done: Mapped[int] = mapped_column(Integer, default=0)
    rescore_after_lead_id: Mapped[int | None] = mapped_column(BigId)
    """The re-score's position: every lead up to this id is done (resumed from here)."""
    rescore_finished_at: Mapped[datetime | None]


class RescoreRange(Base):
    """A range of lead ids to re-score under a newly active model: the re-score's unit of work.

    Jobs take ranges (SKIP LOCKED) in parallel, each in its own transaction, and mark them
    done in it; a range whose job died is taken again."""

    __tablename__ = "scoring_rescore_ranges"

    model_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("scoring_models.id", ondelete="CASCADE"), primary_key=True
    )
    first_lead_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    last_lead_id: Mapped[int] = mapped_column(BigId)
    done_at: Mapped[datetime | None]


class ScoringApproval(Base):
    """A marketer's or a sales approver's approval of a model version; withdrawn, it stays."""

    __tablename__ = "scoring_approvals"
    __table_args__ = (
        Index("ix_scoring_approvals_live", "model_id", "role", unique=True,
              postgresql_where=text("withdrawn_at IS NULL"),
              sqlite_where=text("withdrawn_at IS NULL")),
    )

    id: Mapped[id_pk]
    model_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("scoring_models.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[ApprovalRole] = mapped_column(str_enum(ApprovalRole, "approval_role"))
    approved_by: Mapped[email_str]
    approved_at: Mapped[datetime]
    withdrawn_by: Mapped[email_str | None]
    withdrawn_at: Mapped[datetime | None]


class LeadScore(Base):
    """A lead's score under one model: total at time T = fit + steady + decayed·2^-(T-ref)/h."""

    __tablename__ = "lead_scores"

    lead_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True
    )
    model_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("scoring_models.id", ondelete="SET NULL"), index=True
    )
    fit: Mapped[float] = mapped_column(Float, default=0.0)
    decayed: Mapped[float] = mapped_column(Float, default=0.0)
    decayed_at: Mapped[datetime | None]
    """Reference time of `decayed` (None: no decaying points yet)."""
    steady: Mapped[float] = mapped_column(Float, default=0.0)
    """Engagement points that do not decay (negative rules such as a spam complaint)."""
    fit_checked_at: Mapped[datetime | None]
    """When fit was last evaluated; a profile updated after it is evaluated again."""
    qualified_at: Mapped[datetime | None]
    """Last time the score was found at or over the model's thresholds after a rise."""
    updated_at: Mapped[datetime]


class LeadScoreRule(Base):
    """One rule's share of a lead's score (what the explanation lists), kept like the score."""

    __tablename__ = "lead_score_rules"

    lead_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("lead_scores.lead_id", ondelete="CASCADE"), primary_key=True
    )
    rule: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    """`fit`, `engagement` or `negative`."""
    decays: Mapped[bool] = mapped_column(Boolean)
    value: Mapped[float] = mapped_column(Float)
    ref_at: Mapped[datetime | None]
    last_at: Mapped[datetime | None]
    """When the rule last gave points (the event's time, or when fit was evaluated)."""


class ScoreLedgerEntry(Base):
    """One change of a lead's score: a rule gave (or took back) points, for an event or not."""

    __tablename__ = "score_ledger"
    __table_args__ = (
        # an event scores once per rule and model version (redelivery, a retried job)
        UniqueConstraint("model_id", "event_id", "rule", name="uq_score_ledger_event_rule"),
        Index("ix_score_ledger_lead_id_rule_occurred_at",
              "lead_id", "model_id", "rule", "occurred_at"),
    )

    id: Mapped[id_pk]
    lead_id: Mapped[int] = mapped_column(BigId, ForeignKey("leads.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("scoring_models.id", ondelete="CASCADE")
    )
    rule: Mapped[str] = mapped_column(String(100))
    points: Mapped[float] = mapped_column(Float)
    """Points as given at `occurred_at` (before decay)."""
    event_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("engagement_events.id", ondelete="SET NULL"), index=True
    )
    occurred_at: Mapped[datetime]
    """When the points count from: the event's time, or when fit was evaluated."""
    recorded_at: Mapped[datetime]


class BacktestStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Backtest(Base):
    """A model run over stored history without touching live scores, and what it found."""

    __tablename__ = "scoring_backtests"

    id: Mapped[id_pk]
    model_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("scoring_models.id", ondelete="CASCADE"), index=True
    )
    compared_model_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("scoring_models.id", ondelete="SET NULL")
    )
    days: Mapped[int] = mapped_column(Integer)
    status: Mapped[BacktestStatus] = mapped_column(
        str_enum(BacktestStatus, "backtest_status"), default=BacktestStatus.QUEUED
    )
    requested_by: Mapped[email_str]
    requested_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(String(1000))
