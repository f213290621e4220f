"""The suppression list as operators see it: search it, export it, and take an address off it
with a reason that is kept (a suppression removed lets Nurture email the address again; the
sequences the lead left are not resumed)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.errors import InvalidInput, NotFound
from nurture.models import Suppression, SuppressionReason, SuppressionRemoval

PAGE_SIZE = 50
"""Suppressions on one page of the operators' list."""

EXPORT_BATCH = 1000
"""Rows read at a time when exporting the whole list."""

MIN_REASON, MAX_REASON = 3, 1000
"""Length of the reason an operator gives for removing a suppression."""


@dataclass(frozen=True)
class Removal:
    email: str
    suppressed_reason: str
    suppressed_at: datetime
    reason: str
    removed_by: str
    removed_at: datetime


def search_suppressions(session: Session, *, query: str = "", reason: str | None = None,
                        after: str | None = None, limit: int = PAGE_SIZE
                        ) -> tuple[list[Suppression], str | None]:
    """Suppressions whose address contains `query`, by address; keyset paging: pass the
    returned address as `after` for the next page (None: no more)."""
    statement = select(Suppression).order_by(Suppression.email).limit(limit + 1)
    text = query.strip().lower()
    if text:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(Suppression.email.like(f"%{escaped}%", escape="\\"))
    if reason:
        statement = statement.where(Suppression.reason == SuppressionReason(reason))
    if after:
        statement = statement.where(Suppression.email > after)
    rows = list(session.execute(statement).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].email if more and rows else None)


def get_suppression(session: Session, email: str) -> Suppression:
    """The suppression of this address; NotFound if it is not on the list."""
    email = email.strip().lower()
    found = session.execute(
        select(Suppression).where(Suppression.email == email)).scalar_one_or_none()
    if found is None:
        raise NotFound(f"{email} is not on the suppression list")
    return found


def suppression_counts(session: Session) -> dict[str, int]:
    return {r.value: n for r, n in session.execute(
        select(Suppression.reason, func.count()).group_by(Suppression.reason))}


def export_suppressions(session: Session) -> Iterator[tuple[str, str, str, str]]:
    """Every suppression as (email, reason, source, since ISO 8601), by address, in batches."""
    after = ""
    while True:
        batch = session.execute(
            select(Suppression).where(Suppression.email > after)
            .order_by(Suppression.email).limit(EXPORT_BATCH)).scalars().all()
        for s in batch:
            yield s.email, s.reason.value, s.source or "", s.created_at.isoformat()
        if len(batch) < EXPORT_BATCH:
            return
        after = batch[-1].email


def remove_suppression(session: Session, email: str, *, reason: str, actor: str,
                       now: datetime) -> Removal:
    """Take the address off the list, keeping who did it, why, and what it was suppressed
    for. InvalidInput for a missing reason; NotFound if the address is not suppressed."""
    reason = " ".join(reason.split())
    if not MIN_REASON <= len(reason) <= MAX_REASON:
        raise InvalidInput("say why the address may be emailed again",
                           {"reason": [f"Give a reason of {MIN_REASON} to {MAX_REASON} "
                                       "characters (it is kept with the removal)."]})
    email = email.strip().lower()  # as stored: the list may hold what no longer validates
    found = session.execute(
        select(Suppression).where(Suppression.email == email).with_for_update()
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"{email} is not on the suppression list")
    removal = SuppressionRemoval(
        email=email, suppressed_reason=found.reason.value, suppressed_source=found.source,
        suppressed_at=found.created_at, reason=reason, removed_by=actor, removed_at=now)
    session.add(removal)
    session.delete(found)
    session.flush()
    return _removal(removal)


def recent_removals(session: Session, *, limit: int = 20) -> list[Removal]:
    return [_removal(r) for r in session.execute(
        select(SuppressionRemoval).order_by(SuppressionRemoval.id.desc()).limit(limit)
    ).scalars()]


def _removal(r: SuppressionRemoval) -> Removal:
    return Removal(r.email, r.suppressed_reason, r.suppressed_at, r.reason, r.removed_by,
                   r.removed_at)
