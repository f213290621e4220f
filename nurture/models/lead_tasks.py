"""Work on many leads that runs in the background: a CSV import from the browser, a bulk
enroll or removal. The row is the truth (DESIGN.md): the job reads its parameters from it and
writes its progress and result back; the page that started it reads the row."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base, email_str, id_pk, json_object, str_enum


class LeadTaskKind(enum.StrEnum):
    IMPORT = "import"
    """A CSV file of leads (`upload`), imported as `nurture import-leads` does."""
    ENROLL = "enroll"
    """The leads of `params.lead_ids` enrolled in `params.sequence_id`."""
    REMOVE = "remove"
    """The leads of `params.lead_ids` taken out of `params.sequence_id`."""


class LeadTaskStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    """The work stopped: `error` says why (an import rejected whole changed nothing)."""


class LeadTask(Base):
    __tablename__ = "lead_tasks"
    __table_args__ = (Index("ix_lead_tasks_created_at", "created_at"),)

    id: Mapped[id_pk]
    kind: Mapped[LeadTaskKind] = mapped_column(str_enum(LeadTaskKind, "lead_task_kind"))
    status: Mapped[LeadTaskStatus] = mapped_column(
        str_enum(LeadTaskStatus, "lead_task_status"), default=LeadTaskStatus.QUEUED
    )
    params: Mapped[json_object] = mapped_column(default=dict)
    total: Mapped[int] = mapped_column(Integer, default=0)
    """Units of work: leads for a bulk action, bytes for an import."""
    done: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[json_object] = mapped_column(default=dict)
    """Counts when done: enrolled, skipped by reason… or created, updated, invalid rows."""
    error: Mapped[str | None] = mapped_column(Text)
    upload: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The imported file, kept until the import ends (a worker on another host reads it here)."""
    report: Mapped[str | None] = mapped_column(Text)
    """The per-row error report of an import (CSV: line, field, message)."""
    file_name: Mapped[str | None] = mapped_column(String(255))
    created_by: Mapped[email_str]
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    @property
    def finished(self) -> bool:
        return self.status in (LeadTaskStatus.DONE, LeadTaskStatus.FAILED)

    def percent(self) -> int:
        if self.status == LeadTaskStatus.DONE:
            return 100
        return min(99, int(100 * self.done / self.total)) if self.total else 0

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind.value, "status": self.status.value,
                "done": self.done, "total": self.total, "percent": self.percent(),
                "result": self.result or {}, "error": self.error}


# The admin's lead search (nurture.leads.search) at a million leads: each filter is served by
# an index, and each order is a keyset on (key, id). Declared here, with the search they serve,
# on the tables of the models they index.
from sqlalchemy import func, text  # noqa: E402

from nurture.models.campaigns import Enrollment  # noqa: E402
from nurture.models.leads import Lead, Rejection  # noqa: E402
from nurture.models.scoring import LeadScore  # noqa: E402

SEARCH_INDEXES = (
    # email prefix (LIKE 'jane%' uses a pattern index on PostgreSQL whatever the collation)
    Index("ix_leads_email_prefix", Lead.email, postgresql_ops={"email": "text_pattern_ops"}),
    Index("ix_leads_company_prefix", func.lower(Lead.company).label("company_lower"),
          postgresql_ops={"company_lower": "text_pattern_ops"}),
    Index("ix_leads_stage_id", Lead.lifecycle_stage, Lead.id),
    Index("ix_leads_updated_at_id", Lead.updated_at, Lead.id),
    Index("ix_rejections_reason_lead_id", Rejection.reason, Rejection.lead_id),
    Index("ix_enrollments_live_sequence_lead", Enrollment.sequence_id, Enrollment.lead_id,
          postgresql_where=text("status IN ('scheduled', 'active', 'held')"),
          sqlite_where=text("status IN ('scheduled', 'active', 'held')")),
    Index("ix_lead_scores_ceiling", (LeadScore.fit + LeadScore.steady + LeadScore.decayed)
          .label("ceiling")),
)
