"""Sequences: import a document (a new immutable version when it changed), export, activate, pause.

Editing never touches what leads are enrolled on: a change is a new version, and it reaches
new enrollments only once activated. Activation refuses a version that features collateral
sales has not approved, or that has expired, naming each offending step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.collateral import collateral_problems
from campaigns.documents import EmailStep, SequenceDocument, check_structure, version_document
from campaigns.rendering import TemplateStore, check_template, make_environment
from campaigns.templates import stored_templates
from nurture.clock import iso
from nurture.errors import Conflict, InvalidInput, NotFound
from nurture.fields import field_errors
from nurture.models import (
    LIVE_ENROLLMENT,
    Collateral,
    Enrollment,
    EnrollmentEvent,
    Sequence,
    SequenceStatus,
    SequenceVersion,
)


@dataclass(frozen=True)
class Imported:
    sequence: Sequence
    version: SequenceVersion
    created_version: bool


def validate_document(
    session: Session, data: Any, *, templates: TemplateStore | None = None
) -> SequenceDocument:
    """The document validated whole: structure, references, templates rendered in the sandbox.

    Raises InvalidInput whose `errors` map paths (`stages[1].steps[2].wait.duration`) to messages.
    """
    try:
        document = SequenceDocument.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput("the sequence document is invalid", field_errors(exc)) from None
    errors = check_structure(document)
    # the templates as sending will render them: the shipped ones and the marketers' saved ones
    env = make_environment(templates or stored_templates(session))
    known = set(session.execute(
        select(Collateral.key).where(Collateral.key.in_(document.collateral_keys()))
    ).scalars())
    for si, ti, step in document.steps():
        if not isinstance(step, EmailStep):
            continue
        base = f"stages[{si}].steps[{ti}].email"
        problem = check_template(env, step.template, step.subject)
        if problem:
            field = "subject" if step.subject and "subject.txt" not in problem else "template"
            errors.setdefault(f"{base}.{field}", []).append(problem)
        for ci, key in enumerate(step.collateral):
            if key not in known:
                errors.setdefault(f"{base}.collateral[{ci}]", []).append(
                    f"no collateral {key!r}"
                )
    if errors:
        raise InvalidInput("the sequence document is invalid", errors)
    return document


def import_sequence(
    session: Session,
    data: Any,
    *,
    actor: str | None = None,
    now: datetime,
    templates: TemplateStore | None = None,
) -> Imported:
    """Store a document: a new sequence, a new version of one, or nothing if unchanged."""
    document = validate_document(session, data, templates=templates)
    stored = document.export()
    sequence = session.execute(
        select(Sequence).where(Sequence.key == document.key).with_for_update()
    ).scalar_one_or_none()
    if sequence is None:
        sequence = Sequence(
            key=document.key, name=document.name, status=SequenceStatus.DRAFT,
            priority=document.priority, created_at=now, updated_at=now,
        )
        session.add(sequence)
        session.flush()
    else:
        latest = latest_version(session, sequence.id)
        if latest is not None and latest.document == stored:
            return Imported(sequence, latest, created_version=False)
    number = (session.execute(
        select(func.max(SequenceVersion.version)).where(SequenceVersion.sequence_id == sequence.id)
    ).scalar_one() or 0) + 1
    version = SequenceVersion(
        sequence_id=sequence.id, version=number, document=stored, created_by=actor, created_at=now,
    )
    session.add(version)
    sequence.name = document.name
    sequence.updated_at = now
    session.flush()
    return Imported(sequence, version, created_version=True)


def get_sequence(session: Session, sequence_id: int) -> Sequence:
    sequence = session.get(Sequence, sequence_id) if 0 < sequence_id < 2**63 else None
    if sequence is None:
        raise NotFound(f"no sequence with id {sequence_id}")
    return sequence


def latest_version(session: Session, sequence_id: int) -> SequenceVersion | None:
    return session.execute(
        select(SequenceVersion)
        .where(SequenceVersion.sequence_id == sequence_id)
        .order_by(SequenceVersion.version.desc())
        .limit(1)
    ).scalar_one_or_none()


def get_version(session: Session, sequence_id: int, number: int | None = None) -> SequenceVersion:
    """A version of the sequence: the given number, else the newest."""
    if number is None:
        version = latest_version(session, sequence_id)
    else:
        version = session.execute(
            select(SequenceVersion).where(
                SequenceVersion.sequence_id == sequence_id, SequenceVersion.version == number
            )
        ).scalar_one_or_none()
    if version is None:
        raise NotFound(f"sequence {sequence_id} has no version {number or ''}".strip())
    return version


def activation_problems(
    session: Session, version: SequenceVersion, *, today: date
) -> dict[str, list[str]]:
    """Each step that stops this version going live, with why (empty when it may)."""
    document = version_document(version.id, version.document)
    problems = collateral_problems(session, document.collateral_keys(), today=today)
    errors: dict[str, list[str]] = {}
    for si, ti, step in document.steps():
        if isinstance(step, EmailStep):
            for key in step.collateral:
                if key in problems:
                    errors.setdefault(f"stages[{si}].steps[{ti}] ({step.id})", []).append(
                        problems[key]
                    )
    return errors


def activate_sequence(
    session: Session, sequence_id: int, *, now: datetime, today: date
) -> Sequence:
    """Make the newest version the live one; Conflict naming each step that cannot go live."""
    sequence = session.get(Sequence, sequence_id, with_for_update=True) if 0 < sequence_id < 2**63 else None
    if sequence is None:
        raise NotFound(f"no sequence with id {sequence_id}")
    version = get_version(session, sequence.id)
    errors = activation_problems(session, version, today=today)
    if errors:
        raise Conflict(
            f"sequence {sequence.key!r} version {version.version} features collateral that "
            "sales has not approved or that has expired", errors,
        )
    sequence.status = SequenceStatus.ACTIVE
    sequence.active_version_id = version.id
    document = version_document(version.id, version.document)
    sequence.priority = document.priority
    sequence.updated_at = now
    session.flush()
    return sequence


def pause_sequence(session: Session, sequence_id: int, *, now: datetime) -> Sequence:
    """Stop new enrollments and sending for the sequence until it is activated again."""
    sequence = get_sequence(session, sequence_id)
    if sequence.status == SequenceStatus.DRAFT:
        raise Conflict(f"sequence {sequence.key!r} was never activated")
    sequence.status = SequenceStatus.PAUSED
    sequence.updated_at = now
    session.flush()
    return sequence


def sequence_summary(
    session: Session, sequence: Sequence, *, today: date | None = None
) -> dict[str, Any]:
    """The sequence's state, with each live step that is paused and why (retired, expired or
    unapproved collateral): leads reaching such a step wait there until it can be sent."""
    latest = latest_version(session, sequence.id)
    active = session.get(SequenceVersion, sequence.active_version_id) if sequence.active_version_id else None
    paused = activation_problems(session, active, today=today) if active and today else {}
    return {
        "id": sequence.id,
        "key": sequence.key,
        "name": sequence.name,
        "status": sequence.status.value,
        "priority": sequence.priority,
        "latest_version": latest.version if latest else None,
        "active_version": active.version if active else None,
        "updated_at": iso(sequence.updated_at),
        "paused_steps": paused,
    }


def migrate_enrollments(
    session: Session, sequence_id: int, from_version: int, *, now: datetime
) -> dict[str, Any]:
    """Move the live enrollments of an older version onto the live one, step for step.

    An enrollment moves when its current step exists (same id) in the live version; the rest
    stay on their version and are listed with why, so nothing is moved by guesswork.
    """
    sequence = get_sequence(session, sequence_id)
    if sequence.active_version_id is None:
        raise Conflict(f"sequence {sequence.key!r} has no live version to move to")
    source = get_version(session, sequence.id, from_version)
    target = session.get(SequenceVersion, sequence.active_version_id)
    assert target is not None
    if source.id == target.id:
        raise Conflict(f"version {from_version} is the live version already")
    target_steps = set(version_document(target.id, target.document).step_ids())
    moved, stayed = 0, []
    live = session.execute(
        select(Enrollment).where(Enrollment.version_id == source.id,
                                 Enrollment.status.in_(LIVE_ENROLLMENT)).with_for_update()
    ).scalars().all()
    for enrollment in live:
        if enrollment.step_id is not None and enrollment.step_id not in target_steps:
            stayed.append({"enrollment_id": enrollment.id,
                           "reason": f"step {enrollment.step_id!r} is not in version {target.version}"})
            continue
        enrollment.version_id = target.id
        session.add(EnrollmentEvent(
            enrollment_id=enrollment.id, step_id=enrollment.step_id, kind="migrated",
            detail=f"version {source.version} -> {target.version}", at=now,
        ))
        moved += 1
    session.flush()
    return {"from_version": source.version, "to_version": target.version, "moved": moved,
            "stayed": stayed}
