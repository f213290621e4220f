"""What the sequence builder offers and shows besides the document: the collateral a step may
feature (and why the rest may not), the leads on each version, and a readable diff."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.collateral import collateral_problems, sendable_versions
from campaigns.documents import dump_document
from nurture.models import (
    LIVE_ENROLLMENT,
    Collateral,
    CollateralStatus,
    CollateralVersion,
    Enrollment,
    SequenceVersion,
)


@dataclass(frozen=True)
class CollateralChoice:
    key: str
    title: str
    status: str
    """The newest version's status (approved, submitted, draft…)."""
    pickable: bool
    note: str | None
    """Why it cannot be picked, or what picking it means (awaiting approval)."""
    expires_on: date | None = None


def collateral_choices(session: Session, *, today: date) -> list[CollateralChoice]:
    """Every collateral: approved, unexpired ones may be featured; one awaiting sales approval
    may be featured too, but the sequence cannot be activated until it is approved (activation
    says so on the step); the rest are listed with why not (draft, changes requested, retired,
    expired)."""
    newest = {key: version for key, version in session.execute(
        select(Collateral.key, CollateralVersion)
        .join(CollateralVersion, CollateralVersion.collateral_id == Collateral.id)
        .order_by(Collateral.key, CollateralVersion.version)
    ).tuples()}
    sendable = sendable_versions(session, newest, today=today)
    problems = collateral_problems(session, set(newest) - set(sendable), today=today)
    choices = []
    for key, latest in sorted(newest.items()):
        version = sendable.get(key, latest)
        if key in sendable:
            choices.append(CollateralChoice(key, version.title, "approved", True, None,
                                            version.expires_on))
        elif latest.status == CollateralStatus.SUBMITTED:
            choices.append(CollateralChoice(
                key, latest.title, "awaiting approval", True,
                "awaiting sales approval: the sequence cannot be activated until it is approved",
                latest.expires_on))
        else:
            choices.append(CollateralChoice(key, latest.title, latest.status.value, False,
                                            problems.get(key), latest.expires_on))
    return choices


@dataclass(frozen=True)
class VersionRow:
    number: int
    created_by: str | None
    created_at: object
    live: bool
    enrolled: int
    in_progress: int


def version_rows(session: Session, sequence_id: int,
                 active_version_id: int | None) -> list[VersionRow]:
    """Each version, newest first, with the leads enrolled on it (editing never moves them)."""
    counts: dict[int, tuple[int, int]] = {}
    for version_id, status, n in session.execute(
        select(Enrollment.version_id, Enrollment.status, func.count())
        .where(Enrollment.sequence_id == sequence_id)
        .group_by(Enrollment.version_id, Enrollment.status)
    ).tuples():
        total, live = counts.get(version_id, (0, 0))
        counts[version_id] = (total + n, live + (n if status in LIVE_ENROLLMENT else 0))
    versions = session.execute(
        select(SequenceVersion).where(SequenceVersion.sequence_id == sequence_id)
        .order_by(SequenceVersion.version.desc())
    ).scalars()
    return [VersionRow(v.version, v.created_by, v.created_at, v.id == active_version_id,
                       *counts.get(v.id, (0, 0))) for v in versions]


@dataclass(frozen=True)
class DiffLine:
    kind: str
    """`same`, `added`, `removed` or `gap` (unchanged lines left out)."""
    old: int | None
    new: int | None
    text: str


def document_diff(old: dict[str, object], new: dict[str, object],
                  *, context: int = 3) -> list[DiffLine]:
    """The two documents' YAML compared line by line, with a few unchanged lines around each
    change (the rest folded into a `gap`)."""
    a = dump_document(old, yaml_format=True).splitlines()
    b = dump_document(new, yaml_format=True).splitlines()
    lines: list[DiffLine] = []
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(context):
        if lines:
            lines.append(DiffLine("gap", None, None, ""))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines += [DiffLine("same", i1 + k + 1, j1 + k + 1, a[i1 + k]) for k in range(i2 - i1)]
                continue
            if tag in ("replace", "delete"):
                lines += [DiffLine("removed", i + 1, None, a[i]) for i in range(i1, i2)]
            if tag in ("replace", "insert"):
                lines += [DiffLine("added", None, j + 1, b[j]) for j in range(j1, j2)]
    return lines
