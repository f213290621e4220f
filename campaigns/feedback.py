"""Reps' feedback on collateral: was this piece useful with this lead?

A rep gives it from the lead card, for each collateral version the recycled lead saw; it counts
in the collateral's numbers (`feedback_counts`, `feedback_for_version`) and reaches the
version's author (`author_email` gives the message the entry point sends after its commit).
One word per (version, handoff, rep): giving it again replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.errors import InvalidInput, NotFound
from nurture.models import CollateralVersion, Handoff, Lead, User
from nurture.models.collateral import Collateral, CollateralFeedback

MAX_NOTE = 2000
"""Longest note a rep may leave with a word on a piece of collateral."""


def record_feedback(session: Session, *, version_id: int, handoff: Handoff, rep_email: str,
                    useful: bool, note: str | None, now: datetime) -> CollateralFeedback:
    """Store (or replace) the rep's word on the version for this handoff's lead."""
    note = (note or "").strip() or None
    if note is not None and (len(note) > MAX_NOTE or "\x00" in note):
        raise InvalidInput("note too long", {"note": [f"at most {MAX_NOTE} characters"]})
    if session.get(CollateralVersion, version_id) is None:
        raise NotFound(f"no collateral version with id {version_id}")
    feedback = session.execute(
        select(CollateralFeedback).where(CollateralFeedback.version_id == version_id,
                                         CollateralFeedback.handoff_id == handoff.id,
                                         CollateralFeedback.rep_email == rep_email)
    ).scalar_one_or_none()
    if feedback is None:
        feedback = CollateralFeedback(version_id=version_id, lead_id=handoff.lead_id,
                                      handoff_id=handoff.id, rep_email=rep_email,
                                      useful=useful, note=note, at=now)
        session.add(feedback)
    else:
        feedback.useful, feedback.note, feedback.at = useful, note, now
    session.flush()
    return feedback


def feedback_counts(session: Session, version_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Version id → (useful, not useful), for the collateral's numbers."""
    if not version_ids:
        return {}
    rows = session.execute(
        select(CollateralFeedback.version_id, CollateralFeedback.useful, func.count())
        .where(CollateralFeedback.version_id.in_(set(version_ids)))
        .group_by(CollateralFeedback.version_id, CollateralFeedback.useful)
    ).all()
    result: dict[int, tuple[int, int]] = {}
    for version_id, useful, n in rows:
        yes, no = result.get(version_id, (0, 0))
        result[version_id] = (yes + n, no) if useful else (yes, no + n)
    return result


@dataclass(frozen=True)
class FeedbackItem:
    rep_email: str
    lead_id: int
    lead_email: str
    useful: bool
    note: str | None
    at: datetime


def feedback_for_version(session: Session, version_id: int, *,
                         limit: int = 100) -> list[FeedbackItem]:
    """The reps' words on a version, newest first (what its author reads)."""
    rows = session.execute(
        select(CollateralFeedback, Lead.email).join(Lead, Lead.id == CollateralFeedback.lead_id)
        .where(CollateralFeedback.version_id == version_id)
        .order_by(CollateralFeedback.at.desc(), CollateralFeedback.id.desc()).limit(limit)
    ).all()
    return [FeedbackItem(f.rep_email, f.lead_id, email, f.useful, f.note, f.at)
            for f, email in rows]


def author_email(session: Session, feedback: CollateralFeedback, *, mail_from: str,
                 base_url: str) -> EmailMessage | None:
    """The email telling the version's author (an active user) what the rep said; None when
    the version has no author to tell, or the author gave the word themselves."""
    version = session.get(CollateralVersion, feedback.version_id)
    if version is None or version.created_by is None:
        return None
    author = session.get(User, version.created_by)
    if author is None or not author.is_active or author.email == feedback.rep_email:
        return None
    collateral = session.get(Collateral, version.collateral_id)
    key = collateral.key if collateral else str(version.collateral_id)
    word = "useful" if feedback.useful else "not useful"
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = author.email
    message["Subject"] = f"A rep found '{version.title}' {word}"
    lines = [
        f"Hi {author.name or author.email},",
        "",
        f"{feedback.rep_email} marked your collateral '{version.title}' (v{version.version}, "
        f"{key}) as {word} with a recycled lead who saw it.",
    ]
    if feedback.note:
        lines += ["", "Their note:", feedback.note]
    lines += ["", f"Every rep's word on it: {base_url.rstrip('/')}/admin/collateral", ""]
    message.set_content("\n".join(lines))
    return message
