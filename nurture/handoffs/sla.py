"""The SLA's versions and which one is in force.

An SLA version goes through the same lifecycle as a scoring model (`nurture.approvals`):
drafted by a marketer, approved by a marketer and a sales approver, activated (retiring the
one before), retired. A handoff records the version it was made under and keeps running under
it (its rep's windows, escalation and stall time) even after another version is activated;
new handoffs take the new one. With no version active, the settings' default applies
(`sla_document.default_document`), recorded as no version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from nurture.accounts.services import Actor
from nurture.approvals import lifecycle
from nurture.approvals.lifecycle import Approvable
from nurture.handoffs.policy import DEFAULT_POLICY, RecyclePolicy
from nurture.handoffs.sla_document import SlaDocument, default_document, parse_document
from nurture.models import Sla, SlaApproval

SLA = Approvable(label="SLA", document=Sla, approval=SlaApproval, owner="sla_id",
                 parse=parse_document)
"""The SLA as an approved document."""


@dataclass(frozen=True)
class Terms:
    """The agreement a handoff runs under: its version (None: the settings' default)."""

    sla_id: int | None
    document: SlaDocument
    policy: RecyclePolicy
    """What `recycle` goes by (the minimum time in nurture, the cap, the default window)."""


_documents: dict[int, tuple[dict[str, Any], SlaDocument]] = {}


def document_of(sla: Sla) -> SlaDocument:
    """The version's document, parsed once per process (compared by content: ids are reused
    after a database is emptied)."""
    cached = _documents.get(sla.id)
    if cached is None or cached[0] != sla.document:
        cached = _documents[sla.id] = (sla.document, parse_document(sla.document))
    return cached[1]


def _terms_of(sla: Sla) -> Terms:
    document = document_of(sla)
    return Terms(sla.id, document, document.recycle_policy())


_defaults: dict[tuple[Any, ...], Terms] = {}


def default_terms(fallback: RecyclePolicy = DEFAULT_POLICY) -> Terms:
    """The settings' terms, built once per distinct policy (every recycle and timer asks)."""
    key = (fallback.sla, fallback.max_recycles, tuple(sorted(fallback.min_nurture.items())))
    terms = _defaults.get(key)
    if terms is None:
        terms = _defaults[key] = Terms(None, default_document(fallback), fallback)
    return terms


def terms_in_force(session: Session, fallback: RecyclePolicy = DEFAULT_POLICY) -> Terms:
    """The active version's terms, else the settings' (`fallback`)."""
    active = lifecycle.active(session, SLA)
    return default_terms(fallback) if active is None else _terms_of(active)


def terms_of(session: Session, sla_id: int | None,
             fallback: RecyclePolicy = DEFAULT_POLICY) -> Terms:
    """The terms of the version a handoff recorded (None: the settings' default)."""
    sla = session.get(Sla, sla_id) if sla_id is not None else None
    return default_terms(fallback) if sla is None else _terms_of(sla)


def create_sla(session: Session, data: Any, *, actor: str, now: datetime) -> Sla:
    """Store the document as the next version, a draft (422 naming each invalid path)."""
    sla: Sla = lifecycle.create(session, SLA, data, actor=actor, now=now)
    return sla


def get_sla(session: Session, sla_id: int) -> Sla:
    sla: Sla = lifecycle.get(session, SLA, sla_id)
    return sla


def list_slas(session: Session) -> list[Sla]:
    return lifecycle.list_versions(session, SLA)


def active_sla(session: Session) -> Sla | None:
    sla: Sla | None = lifecycle.active(session, SLA)
    return sla


def approve_sla(session: Session, sla_id: int, *, actor: Actor, now: datetime) -> Sla:
    sla: Sla = lifecycle.approve(session, SLA, sla_id, actor=actor, now=now)
    return sla


def withdraw_sla_approval(session: Session, sla_id: int, *, actor: Actor, now: datetime) -> Sla:
    sla: Sla = lifecycle.withdraw(session, SLA, sla_id, actor=actor, now=now)
    return sla


def activate_sla(session: Session, sla_id: int, *, actor: str,
                 now: datetime) -> tuple[Sla, Sla | None]:
    """Put the approved version in force for new handoffs, retiring the one before (409
    without both approvals); (version, retired). Open handoffs keep their version."""
    sla, previous, _ = lifecycle.activate(session, SLA, sla_id, actor=actor, now=now)
    return sla, previous


def retire_sla(session: Session, sla_id: int, *, actor: str, now: datetime) -> Sla:
    """Retire the version; retiring the active one puts the settings' default in force."""
    sla: Sla = lifecycle.retire(session, SLA, sla_id, actor=actor, now=now)
    return sla


def install_sla(session: Session, data: Any, *, now: datetime) -> Sla:
    """Store and activate a version approved by `installation` (the demo data, a script)."""
    sla = lifecycle.install(session, SLA, data, now=now)
    activated, _ = activate_sla(session, sla.id, actor=lifecycle.INSTALLATION, now=now)
    return activated


def sla_summary(session: Session, sla: Sla, *, with_document: bool = False) -> dict[str, Any]:
    summary = lifecycle.summary(session, SLA, sla)
    if with_document:
        summary["document"] = sla.document
    return summary
