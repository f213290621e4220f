"""One item of the approvers' queue as the approver reads it: what it is, who asked, its
preview, its readable diff against the version now approved (and for a scoring model, its
backtests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns import collateral as collateral_service
from nurture.approvals import lifecycle
from nurture.errors import NotFound
from nurture.models import (
    Backtest,
    Collateral,
    CollateralStatus,
    CollateralVersion,
    DocumentStatus,
)
from nurture.reviews import describe
from nurture.reviews.queue import KINDS, expiring, submissions, submitted_by

COLLATERAL_FIELDS = (
    ("title", "Title"), ("url", "Link"), ("file_name", "File"), ("content_type", "File type"),
    ("funnel_stage", "Funnel stage"), ("personas", "Personas"), ("industries", "Industries"),
    ("expires_on", "Expires on"),
)


def _shown(value: Any) -> str | None:
    if value is None or value == []:
        return None
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, date):
        return value.isoformat()
    return str(getattr(value, "value", value))


@dataclass
class CollateralReview:
    version: CollateralVersion
    key: str
    approved: CollateralVersion | None
    """The version in use now: the newest approved one, if any."""
    changes: list[describe.Change]
    history: list[Any]
    asked_by: str | None
    expiring: bool
    waiting: bool


def collateral_review(session: Session, version_id: int, *, today: date) -> CollateralReview:
    version = session.get(CollateralVersion, version_id) if 0 < version_id < 2**63 else None
    if version is None:
        raise NotFound(f"no collateral version {version_id}")
    collateral = session.get(Collateral, version.collateral_id)
    assert collateral is not None
    approved = session.execute(
        select(CollateralVersion)
        .where(CollateralVersion.collateral_id == version.collateral_id,
               CollateralVersion.status == CollateralStatus.APPROVED,
               CollateralVersion.id != version.id)
        .order_by(CollateralVersion.version.desc()).limit(1)
    ).scalar_one_or_none()
    changes = []
    for attribute, label in COLLATERAL_FIELDS:
        now = _shown(getattr(version, attribute))
        was = _shown(getattr(approved, attribute)) if approved is not None else None
        if approved is None:
            if now is not None:
                changes.append(describe.Change("added", label, None, now))
        elif was != now:
            change = "changed" if was is not None and now is not None else (
                "added" if now is not None else "removed")
            changes.append(describe.Change(change, label, was, now))
    if (approved is not None and version.file_path and approved.file_path
            and version.file_path != approved.file_path
            and not any(c.what == "File" for c in changes)):
        changes.append(describe.Change("changed", "File", "the file approved before",
                                       "a new upload of the same name"))
    asked = submissions(session, [version.id]).get(version.id)
    return CollateralReview(
        version=version, key=collateral.key, approved=approved, changes=changes,
        history=collateral_service.history(session, version.id),
        asked_by=asked[0] if asked else None,
        expiring=expiring(version.expires_on, today=today),
        waiting=version.status == CollateralStatus.SUBMITTED,
    )


@dataclass
class DocumentReview:
    key: str
    label: str
    row: Any
    summary: dict[str, Any]
    active: Any | None
    changes: list[describe.Change]
    text_diff: list[tuple[str, str]]
    asked_by: str | None
    change_requests: list[Any]
    waiting: bool
    rules: list[tuple[str, str, list[dict[str, Any]]]] = field(default_factory=list)
    """A scoring model's rules by kind: (kind, label, [{rule, text, description}])."""
    terms: list[tuple[str, str]] = field(default_factory=list)
    """An SLA's terms as `path: value` lines."""
    backtests: list[Backtest] = field(default_factory=list)


def scoring_rules(document: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    return [(kind, label, [{"rule": r.get("rule"), "text": describe.rule_text(kind, r),
                            "points": describe.points_text(r.get("points")),
                            "description": r.get("description")}
                           for r in document.get(kind, []) or []])
            for kind, label in describe.RULE_KINDS]


def document_review(session: Session, key: str, row_id: int) -> DocumentReview:
    kind = KINDS[key]
    row = lifecycle.get(session, kind, row_id)
    active = lifecycle.active(session, kind)
    compared = active if active is not None and active.id != row.id else None
    before = compared.document if compared is not None else None
    if key == "scoring_model":
        changes = describe.scoring_changes(before, row.document)
    else:
        changes = describe.term_changes(before, row.document)
    asked = submitted_by(session, kind, row.id)
    waiting = asked is not None and row.status == DocumentStatus.DRAFT
    review = DocumentReview(
        key=key, label=kind.label, row=row, summary=lifecycle.summary(session, kind, row),
        active=compared, changes=changes, text_diff=describe.text_diff(before, row.document),
        asked_by=asked[0] if asked else None,
        change_requests=lifecycle.change_requests(session, kind, [row.id])[row.id],
        waiting=waiting,
    )
    if key == "scoring_model":
        review.rules = scoring_rules(row.document)
        review.backtests = latest_backtests(session, row.id)
    else:
        review.terms = list(describe.flatten(row.document).items())
    return review


def latest_backtests(session: Session, model_id: int, limit: int = 5) -> list[Backtest]:
    return list(session.execute(
        select(Backtest).where(Backtest.model_id == model_id)
        .order_by(Backtest.requested_at.desc(), Backtest.id.desc()).limit(limit)
    ).scalars())
