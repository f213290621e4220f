"""Report rollups and the alignment digest.

Reports never read the raw engagement table. They read two rollups that the services which
write the facts keep up to date in the same transaction (`nurture.rollups`), and that
`nurture reports rebuild` recomputes from the facts:

- `ReportJourney`: one row per time a lead entered nurture (a rejection, or not ready), with
  the moments it reached each stage of the funnel and its touches before it qualified. The
  funnel's medians and 90th percentiles are computed exactly over these rows.
- `ReportCount`: daily counters by metric and by the dimensions reports group on. A
  dimension that does not apply is stored as '' or 0 (not NULL), so the primary key holds
  and an increment is one INSERT … ON CONFLICT DO UPDATE.

`Digest`: one row per digest period, claimed before the email is sent (unique period), so
several dispatchers and a restart send it once.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base, BigId, JsonObject, id_pk, short_str, str_enum

Money = Numeric(18, 2)


class ReportJourney(Base):
    """A lead's one pass through nurture, from the moment it entered to its outcome."""

    __tablename__ = "report_journeys"
    __table_args__ = (
        Index("ix_report_journeys_lead_id_entered_at", "lead_id", "entered_at"),
        Index("ix_report_journeys_cohort", "cohort"),
        Index("ix_report_journeys_recycled_at", "recycled_at"),
        Index("ix_report_journeys_won_at", "won_at"),
    )

    id: Mapped[id_pk]
    lead_id: Mapped[int] = mapped_column(BigId, ForeignKey("leads.id", ondelete="CASCADE"))
    rejection_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("rejections.id", ondelete="SET NULL"), unique=True
    )
    entered_at: Mapped[datetime]
    cohort: Mapped[date] = mapped_column(Date)
    """The first day of the month (UTC) the lead entered nurture."""
    reason: Mapped[str] = mapped_column(String(32), default="")
    """The rejection reason; `not_ready` for a lead nurtured without a rejection."""
    rep_email: Mapped[str] = mapped_column(String(320), default="")
    """The rep who rejected it ('' when not ready)."""
    team: Mapped[str] = mapped_column(String(100), default="")
    source: Mapped[str] = mapped_column(String(255), default="")
    sequence_id: Mapped[int] = mapped_column(BigId, default=0)
    """The first sequence it was enrolled in on this pass (0: none)."""
    nurtured_at: Mapped[datetime | None]
    engaged_at: Mapped[datetime | None]
    """Its first human engagement (machine opens and clicks do not count)."""
    delivered: Mapped[int] = mapped_column(Integer, default=0)
    """Nurture emails handed over to it before it qualified."""
    engagements: Mapped[int] = mapped_column(Integer, default=0)
    """Human engagement events before it qualified."""
    qualified_at: Mapped[datetime | None]
    recycled_at: Mapped[datetime | None]
    handoff_id: Mapped[int | None] = mapped_column(BigId)
    handoff_rep: Mapped[str] = mapped_column(String(320), default="")
    accepted_at: Mapped[datetime | None]
    rerejected_at: Mapped[datetime | None]
    rereject_reason: Mapped[str | None] = mapped_column(String(32))
    opportunity_at: Mapped[datetime | None]
    won_at: Mapped[datetime | None]
    revenue: Mapped[Decimal | None] = mapped_column(Money)


class ReportFunnelMonth(Base):
    """One cohort month's funnel figures for one grouping ('' for none), as computed from
    the journeys in one snapshot (`nurture.reports.funnel_months`). Valid only while no
    `ReportFunnelTouched` row names its cohort: a journey of the cohort changed since."""

    __tablename__ = "report_funnel_months"

    cohort: Mapped[date] = mapped_column(Date, primary_key=True)
    grouping: Mapped[str] = mapped_column(String(16), primary_key=True, default="")
    figures: Mapped[dict] = mapped_column(JsonObject)
    """{"rows": [[group value or null, [[count, median, p90] per stage]], ...]}."""


class ReportFunnelTouched(Base):
    """A journey of `cohort` changed in a way the funnel sees. Plain inserts (no unique key,
    so writers never wait on each other for it); the refresh deletes the rows it saw."""

    __tablename__ = "report_funnel_touched"
    __table_args__ = (Index("ix_report_funnel_touched_cohort", "cohort"),)

    id: Mapped[id_pk]
    cohort: Mapped[date] = mapped_column(Date)


class ReportCount(Base):
    """How many times `metric` happened on `day` for one combination of dimensions."""

    __tablename__ = "report_counts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    sequence_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, default=0)
    step_id: Mapped[str] = mapped_column(String(100), primary_key=True, default="")
    rep_email: Mapped[str] = mapped_column(String(320), primary_key=True, default="")
    team: Mapped[str] = mapped_column(String(100), primary_key=True, default="")
    source: Mapped[str] = mapped_column(String(255), primary_key=True, default="")
    collateral_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, default=0)
    n: Mapped[int] = mapped_column(BigInteger, default=0)
    amount: Mapped[Decimal] = mapped_column(Money, default=0)


class DigestStatus(enum.StrEnum):
    """`sending` is committed before the SMTP call; a crash leaves it so, never re-sent."""

    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class Digest(Base):
    """The alignment digest of one period: at most one, ever (the period is unique)."""

    __tablename__ = "digests"

    id: Mapped[id_pk]
    period_start: Mapped[date] = mapped_column(Date, unique=True)
    period_end: Mapped[date] = mapped_column(Date)
    """Exclusive: the period is [start, end)."""
    status: Mapped[DigestStatus] = mapped_column(str_enum(DigestStatus, "digest_status"))
    recipients: Mapped[str] = mapped_column(Text)
    subject: Mapped[short_str | None]
    error: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
