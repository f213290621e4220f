"""Collateral and its sales approval: draft → submitted → approved | changes requested → retired.

Only a `sales_approver` approves or requests changes; every move is recorded with who, when
and the comment. What a sequence may send is the newest approved, unexpired version.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.accounts.services import Actor
from nurture.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound
from nurture.models import (
    Collateral,
    CollateralStatus,
    CollateralTransition,
    CollateralVersion,
    FunnelStage,
    Role,
)

S = CollateralStatus

TRANSITIONS: dict[str, tuple[tuple[S, ...], S, tuple[Role, ...]]] = {
    # action: (from statuses, to status, roles allowed)
    "submit": ((S.DRAFT, S.CHANGES_REQUESTED), S.SUBMITTED, (Role.MARKETER, Role.ADMIN)),
    "approve": ((S.SUBMITTED,), S.APPROVED, (Role.SALES_APPROVER,)),
    "request_changes": ((S.SUBMITTED,), S.CHANGES_REQUESTED, (Role.SALES_APPROVER,)),
    "retire": ((S.DRAFT, S.SUBMITTED, S.APPROVED, S.CHANGES_REQUESTED), S.RETIRED,
               (Role.MARKETER, Role.SALES_APPROVER, Role.ADMIN)),
}
"""The approval workflow as data: what each action moves from and to, and who may take it."""


def create_collateral(
    session: Session,
    key: str,
    fields: dict[str, Any],
    *,
    actor: Actor,
    now: datetime,
) -> CollateralVersion:
    """A new asset with its first version as a draft."""
    if session.execute(select(Collateral.id).where(Collateral.key == key)).first():
        raise Conflict(f"collateral {key!r} exists; add a version to it instead")
    collateral = Collateral(key=key, created_at=now)
    session.add(collateral)
    session.flush()
    return _new_version(session, collateral, 1, fields, actor=actor, now=now)


def add_version(
    session: Session, key: str, fields: dict[str, Any], *, actor: Actor, now: datetime
) -> CollateralVersion:
    """A new draft version of an existing asset (the approved one stays in use until then)."""
    collateral = get_collateral(session, key)
    latest = session.execute(
        select(func.max(CollateralVersion.version)).where(
            CollateralVersion.collateral_id == collateral.id
        )
    ).scalar_one()
    return _new_version(session, collateral, (latest or 0) + 1, fields, actor=actor, now=now)


def _new_version(
    session: Session, collateral: Collateral, number: int, fields: dict[str, Any], *,
    actor: Actor, now: datetime,
) -> CollateralVersion:
    if not fields.get("url") and not fields.get("file_path"):
        raise InvalidInput("collateral needs a URL or a file", {"url": ["give a URL or upload a file"]})
    version = CollateralVersion(
        collateral_id=collateral.id,
        version=number,
        title=fields["title"],
        url=fields.get("url"),
        file_path=fields.get("file_path"),
        file_name=fields.get("file_name"),
        content_type=fields.get("content_type"),
        funnel_stage=FunnelStage(fields.get("funnel_stage", FunnelStage.CONSIDERATION)),
        personas=list(fields.get("personas") or []),
        industries=list(fields.get("industries") or []),
        expires_on=fields.get("expires_on"),
        status=S.DRAFT,
        created_by=actor.user_id,
        created_at=now,
    )
    session.add(version)
    session.flush()
    _record(session, version, None, S.DRAFT, actor=actor, comment=None, now=now)
    return version


def transition(
    session: Session,
    version_id: int,
    action: str,
    *,
    actor: Actor,
    comment: str | None = None,
    now: datetime,
) -> CollateralVersion:
    """Take a workflow action on a version; Conflict if its status does not allow it."""
    if action not in TRANSITIONS:
        raise InvalidInput(f"unknown action {action!r}")
    sources, target, roles = TRANSITIONS[action]
    if actor.role not in roles:
        raise Forbidden(f"a {actor.role.value} may not {action.replace('_', ' ')} collateral")
    version = session.get(CollateralVersion, version_id, with_for_update=True)
    if version is None:
        raise NotFound(f"no collateral version {version_id}")
    if version.status not in sources:
        raise Conflict(
            f"version {version.version} is {version.status.value}; "
            f"cannot {action.replace('_', ' ')} it"
        )
    if action == "approve" and actor.user_id is not None and actor.user_id in _authors(
            session, version):
        raise Conflict(f"you wrote or submitted version {version.version}; sales signs what it "
                       "did not write, so another sales approver must approve it",
                       {"approvals": ["the author cannot give the sales approval"]})
    if action == "request_changes" and not (comment and comment.strip()):
        raise InvalidInput("say what to change", {"comment": ["required when requesting changes"]})
    previous = version.status
    version.status = target
    _record(session, version, previous, target, actor=actor, comment=comment, now=now)
    session.flush()
    return version


def _authors(session: Session, version: CollateralVersion) -> set[int]:
    """Who wrote the version or submitted it for approval (user ids)."""
    submitters = session.execute(
        select(CollateralTransition.actor_id).where(
            CollateralTransition.version_id == version.id,
            CollateralTransition.to_status == S.SUBMITTED)
    ).scalars()
    return {user_id for user_id in (version.created_by, *submitters) if user_id is not None}


def _record(
    session: Session, version: CollateralVersion, previous: S | None, target: S, *,
    actor: Actor, comment: str | None, now: datetime,
) -> None:
    session.add(CollateralTransition(
        version_id=version.id, from_status=previous, to_status=target, actor_id=actor.user_id,
        actor_email=actor.email, comment=comment, at=now,
    ))


def get_collateral(session: Session, key: str) -> Collateral:
    collateral = session.execute(select(Collateral).where(Collateral.key == key)).scalar_one_or_none()
    if collateral is None:
        raise NotFound(f"no collateral {key!r}")
    return collateral


def sendable_versions(
    session: Session, keys: Iterable[str], *, today: date
) -> dict[str, CollateralVersion]:
    """For each key, the newest approved version that has not expired (absent if none)."""
    keys = set(keys)
    if not keys:
        return {}
    rows = session.execute(
        select(Collateral.key, CollateralVersion)
        .join(CollateralVersion, CollateralVersion.collateral_id == Collateral.id)
        .where(Collateral.key.in_(keys), CollateralVersion.status == S.APPROVED)
        .order_by(CollateralVersion.version.desc())
    ).all()
    found: dict[str, CollateralVersion] = {}
    for key, version in rows:
        if key in found:
            continue
        if version.expires_on is None or version.expires_on >= today:
            found[key] = version
    return found


def collateral_problems(session: Session, keys: Iterable[str], *, today: date) -> dict[str, str]:
    """Why each key cannot be sent today: missing, never approved, retired or expired."""
    keys = set(keys)
    sendable = sendable_versions(session, keys, today=today)
    problems: dict[str, str] = {}
    for key in sorted(keys - set(sendable)):
        collateral = session.execute(
            select(Collateral).where(Collateral.key == key)
        ).scalar_one_or_none()
        if collateral is None:
            problems[key] = f"collateral {key!r} does not exist"
            continue
        versions = session.execute(
            select(CollateralVersion)
            .where(CollateralVersion.collateral_id == collateral.id)
            .order_by(CollateralVersion.version.desc())
        ).scalars().all()
        approved_once = [v for v in versions if v.status == S.APPROVED]
        if approved_once:
            expired = approved_once[0].expires_on
            problems[key] = f"collateral {key!r} expired on {expired.isoformat() if expired else '?'}"
        elif any(v.status == S.RETIRED for v in versions):
            problems[key] = f"collateral {key!r} is retired"
        else:
            latest = versions[0].status.value if versions else "missing"
            problems[key] = f"collateral {key!r} is not approved by sales (it is {latest})"
    return problems


def history(session: Session, version_id: int) -> list[CollateralTransition]:
    return list(session.execute(
        select(CollateralTransition)
        .where(CollateralTransition.version_id == version_id)
        .order_by(CollateralTransition.at, CollateralTransition.id)
    ).scalars())


def public_file(session: Session, version_id: int, file_name: str, *, today: date) -> CollateralVersion:
    """The uploaded file a lead may download: approved versions only (retired or expired: Gone)."""
    version = session.get(CollateralVersion, version_id) if 0 < version_id < 2**63 else None
    if version is None or not version.file_path or version.file_name != file_name:
        raise NotFound("no such file")
    if version.status == S.RETIRED or (version.expires_on is not None and version.expires_on < today):
        raise Gone("this material has been withdrawn")
    if version.status != S.APPROVED:
        raise NotFound("no such file")
    return version
