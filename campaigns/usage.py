"""Where email templates and collateral are used: the sequences whose live or newest version
sends a template or features a piece of collateral, and at which steps."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.documents import EmailStep, version_document
from nurture.models import Sequence, SequenceVersion


@dataclass(frozen=True)
class Usage:
    """A sequence whose live or newest version uses a template or a piece of collateral."""

    sequence_id: int
    sequence_key: str
    sequence_name: str
    status: str
    versions: tuple[int, ...]
    """The versions (live and newest) that use it."""
    live: bool
    """The live version uses it: a change reaches leads from their next email on."""
    steps: tuple[str, ...]


def _documents(session: Session) -> Iterable[tuple[Sequence, int, bool, Any]]:
    """Each sequence's live and newest versions: (sequence, number, live, document)."""
    newest = dict(session.execute(
        select(SequenceVersion.sequence_id, func.max(SequenceVersion.version))
        .group_by(SequenceVersion.sequence_id)).tuples().all())
    for sequence in session.execute(select(Sequence).order_by(Sequence.priority, Sequence.id)
                                    ).scalars():
        versions = session.execute(
            select(SequenceVersion).where(
                SequenceVersion.sequence_id == sequence.id,
                (SequenceVersion.id == sequence.active_version_id)
                | (SequenceVersion.version == newest.get(sequence.id, 0)))
            .order_by(SequenceVersion.version)).scalars().all()
        for v in versions:
            yield sequence, v.version, v.id == sequence.active_version_id, \
                version_document(v.id, v.document)


def _usage(session: Session, names: Callable[[EmailStep], Iterable[str]]) -> dict[str, list[Usage]]:
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for sequence, number, live, document in _documents(session):
        for _, _, step in document.steps():
            if not isinstance(step, EmailStep):
                continue
            for name in names(step):
                entry = found.setdefault(name, {}).setdefault(
                    sequence.id, {"sequence": sequence, "versions": set(), "live": False,
                                  "steps": []})
                entry["versions"].add(number)
                entry["live"] = entry["live"] or live
                if step.id not in entry["steps"]:
                    entry["steps"].append(step.id)
    return {name: [_row(e) for e in by_sequence.values()] for name, by_sequence in found.items()}


def _row(entry: dict[str, Any]) -> Usage:
    sequence = entry["sequence"]
    return Usage(sequence.id, sequence.key, sequence.name, sequence.status.value,
                 tuple(sorted(entry["versions"])), entry["live"], tuple(entry["steps"]))


def template_usage(session: Session) -> dict[str, list[Usage]]:
    """For each template name, the sequences whose live or newest version sends it."""
    return _usage(session, lambda step: (step.template,))


def collateral_usage(session: Session) -> dict[str, list[Usage]]:
    """For each collateral key, the sequences whose live or newest version features it."""
    return _usage(session, lambda step: step.collateral)
