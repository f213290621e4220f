"""Finding leads: search and filters, keyset-paginated, for the admin's lead list.

Built for a million leads: every page is one query ordered by (sort key, id) and continued from
the last row seen (`WHERE (key, id) < (…)`), never by OFFSET; nothing counts every match (the
page says "more than N" from a count that stops at N). The filters are index-friendly:
an email or company prefix (pattern indexes), a lifecycle stage ((stage, id)), a rejection
reason ((reason, lead_id)), a sequence (live enrollments by (sequence_id, lead_id)), a rep
(the owner or the rep of a rejection, both indexed), a score band (the score's undecayed
ceiling is indexed; the exact decayed total is checked on the rows it leaves).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, func, literal, or_, select, tuple_
from sqlalchemy.orm import Session

from nurture.clock import iso
from nurture.errors import InvalidInput
from nurture.fields import normalize_email
from nurture.models import (
    LIVE_ENROLLMENT,
    Enrollment,
    Lead,
    LeadScore,
    LifecycleStage,
    Rejection,
    RejectionReason,
    Sequence,
)

PAGE_SIZE = 50
"""Leads on one page of the list."""

COUNT_CAP = 1_000
"""Matches counted at most; past it the page says "more than" (a count is never unbounded)."""

MAX_TEXT = 320
"""Longest search text or rep address accepted (an email's longest)."""

SORTS = {"newest": "Newest first", "updated": "Recently updated", "email": "Email A–Z"}
"""The orders the list offers, each a keyset on (key, id)."""

FILTERS = ("q", "company", "stage", "band", "reason", "sequence", "rep", "sort")
"""The query parameters a search reads (anything else is ignored, like a browser's extras)."""


@dataclass(frozen=True)
class ScoreBand:
    """Leads whose score now is in [low, high) (None: unbounded on that side)."""

    name: str
    label: str
    low: float | None
    high: float | None


@dataclass(frozen=True)
class ScoreScale:
    """How scores are read now: the active model's decay and its bands (nurture.scoring)."""

    half_life_s: float
    bands: tuple[ScoreBand, ...]
    model_version: int | None = None

    def band(self, name: str) -> ScoreBand | None:
        return next((b for b in self.bands if b.name == name), None)

    def band_of(self, total: float) -> ScoreBand | None:
        for b in self.bands:
            if (b.low is None or total >= b.low) and (b.high is None or total < b.high):
                return b
        return None


@dataclass(frozen=True)
class LeadQuery:
    """A validated search: each filter None when not asked for."""

    q: str | None = None
    company: str | None = None
    stage: LifecycleStage | None = None
    band: ScoreBand | None = None
    reason: RejectionReason | None = None
    sequence_id: int | None = None
    rep: str | None = None
    sort: str = "newest"
    after: tuple[Any, int] | None = None
    """The keyset position: (sort key, id) of the last row of the previous page."""

    @property
    def filtered(self) -> bool:
        return any(v is not None for v in (self.q, self.company, self.stage, self.band,
                                           self.reason, self.sequence_id, self.rep))


@dataclass(frozen=True)
class LeadRow:
    id: int
    email: str
    name: str
    company: str | None
    title: str | None
    stage: LifecycleStage
    owner_email: str | None
    updated_at: datetime
    created_at: datetime
    score: float | None
    """The score now; None for a lead never scored (its band counts it as 0)."""
    band: ScoreBand | None
    last_reason: RejectionReason | None
    sequences: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LeadPage:
    rows: list[LeadRow]
    next_cursor: str | None
    matches: int
    """Matches counted, at most COUNT_CAP + 1 (more means "more than COUNT_CAP")."""

    @property
    def more_than_cap(self) -> bool:
        return self.matches > COUNT_CAP


def parse_query(args: Mapping[str, str], scale: ScoreScale) -> LeadQuery:
    """The search asked for by query parameters, or `InvalidInput` naming each bad one."""
    errors: dict[str, list[str]] = {}

    def text(name: str) -> str | None:
        value = (args.get(name) or "").strip()
        if not value:
            return None
        if len(value) > MAX_TEXT or "\x00" in value:
            errors[name] = [f"at most {MAX_TEXT} characters of text"]
            return None
        return value

    def choice(name: str, enum_cls: Any) -> Any:
        value = text(name)
        if value is None:
            return None
        try:
            return enum_cls(value)
        except ValueError:
            errors[name] = [f"unknown value {value[:40]!r}"]
            return None

    query = LeadQuery(
        q=_search_text(text("q")), company=text("company"),
        stage=choice("stage", LifecycleStage), reason=choice("reason", RejectionReason),
    )
    band_name = text("band")
    band = scale.band(band_name) if band_name else None
    if band_name and band is None:
        errors["band"] = [f"unknown score band {band_name[:40]!r}"]
    sequence = text("sequence")
    sequence_id = None
    if sequence is not None:
        if sequence.isdigit() and 0 < int(sequence) < 2**63:
            sequence_id = int(sequence)
        else:
            errors["sequence"] = ["choose a sequence from the list"]
    rep = text("rep")
    if rep is not None:
        try:
            rep = normalize_email(rep)
        except ValueError:
            errors["rep"] = ["give the rep's email address"]
    sort = text("sort") or "newest"
    if sort not in SORTS:
        errors["sort"] = [f"unknown order {sort[:40]!r}"]
        sort = "newest"
    after = None
    cursor = args.get("after")
    if cursor:
        try:
            after = decode_cursor(cursor, sort)
        except ValueError as exc:
            errors["after"] = [str(exc)]
    if errors:
        raise InvalidInput("the search has invalid values", errors)
    return replace(query, band=band, sequence_id=sequence_id, rep=rep, sort=sort, after=after)


def _search_text(value: str | None) -> str | None:
    return value.lower() if value is not None else None


# --- the cursor: where the next page starts ---------------------------------------------------


def encode_cursor(sort: str, key: Any, lead_id: int) -> str:
    raw = json.dumps([sort, iso(key) if isinstance(key, datetime) else key, lead_id],
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[Any, int]:
    """(key, id) of an `encode_cursor` token for this order, or ValueError saying why not."""
    bad = ValueError("this page link is damaged or from another search: start from the first page")
    if len(cursor) > 1000:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        token_sort, key, lead_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise bad from None
    if token_sort != sort or type(lead_id) is not int or not 0 < lead_id < 2**63:
        raise bad
    if sort == "newest":
        key = lead_id
    elif sort == "updated":
        if not isinstance(key, str):
            raise bad
        try:
            key = datetime.fromisoformat(key.replace("Z", "+00:00"))
        except ValueError:
            raise bad from None
        if key.tzinfo is None:
            raise bad
    elif not isinstance(key, str) or len(key) > MAX_TEXT:
        raise bad
    return key, lead_id


# --- the query ---------------------------------------------------------------------------------


def _like_prefix(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _epoch(session: Session, column: Any) -> ColumnElement[float]:
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", column)
    return (func.julianday(column) - 2440587.5) * 86400.0


def score_total(session: Session, half_life_s: float, now: datetime) -> ColumnElement[float]:
    """A lead's score now, in SQL (as `Tally.total`): fit + steady + the decayed sum decayed
    from its reference time to now; 0 for a lead never scored (outer-joined LeadScore)."""
    factor = func.exp(math.log(2) * (_epoch(session, LeadScore.decayed_at) - now.timestamp())
                      / half_life_s)
    decayed = func.coalesce(LeadScore.decayed * factor, LeadScore.decayed, 0.0)
    return func.coalesce(LeadScore.fit, 0.0) + func.coalesce(LeadScore.steady, 0.0) + decayed


def score_ceiling() -> ColumnElement[float]:
    """fit + steady + decayed: never below the score now (decay only lowers the positive
    decayed sum), and indexed: a band's lower bound narrows on it first."""
    return LeadScore.fit + LeadScore.steady + LeadScore.decayed


def _conditions(session: Session, query: LeadQuery, scale: ScoreScale, now: datetime
                ) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if query.q is not None:
        if "@" in query.q and "." in query.q.split("@")[-1]:
            try:
                where.append(Lead.email == normalize_email(query.q))
            except ValueError:
                where.append(Lead.email.like(_like_prefix(query.q), escape="\\"))
        else:
            where.append(Lead.email.like(_like_prefix(query.q), escape="\\"))
    if query.company is not None:
        where.append(func.lower(Lead.company).like(_like_prefix(query.company.lower()),
                                                   escape="\\"))
    if query.stage is not None:
        where.append(Lead.lifecycle_stage == query.stage)
    if query.reason is not None:
        where.append(Lead.id.in_(select(Rejection.lead_id)
                                 .where(Rejection.reason == query.reason)))
    if query.sequence_id is not None:
        where.append(exists().where(Enrollment.lead_id == Lead.id,
                                    Enrollment.sequence_id == query.sequence_id,
                                    Enrollment.status.in_(LIVE_ENROLLMENT)))
    if query.rep is not None:
        where.append(or_(Lead.owner_email == query.rep,
                         Lead.id.in_(select(Rejection.lead_id)
                                     .where(Rejection.rep_email == query.rep))))
    if query.band is not None:
        total = score_total(session, scale.half_life_s, now)
        if query.band.low is not None and query.band.low > 0:
            where.append(score_ceiling() >= query.band.low)  # the index narrows; then exactly:
            where.append(total >= query.band.low)
        elif query.band.low is not None:
            where.append(total >= query.band.low)
        if query.band.high is not None:
            where.append(total < query.band.high)
    return where


def _order(query: LeadQuery) -> tuple[Any, bool]:
    """(the sort key column, descending?)."""
    return {"newest": (Lead.id, True), "updated": (Lead.updated_at, True),
            "email": (Lead.email, False)}[query.sort]


def search_leads(session: Session, query: LeadQuery, scale: ScoreScale, *, now: datetime,
                 limit: int = PAGE_SIZE) -> LeadPage:
    """One page of the leads matching `query`, after its cursor, with the next page's cursor."""
    where = _conditions(session, query, scale, now)
    key, descending = _order(query)
    keyed = [*where]
    if query.after is not None:
        after_key, after_id = query.after
        if key is Lead.id:
            keyed.append(Lead.id < after_id)
        elif descending:
            keyed.append(tuple_(key, Lead.id) < tuple_(literal(after_key, key.type),
                                                      literal(after_id)))
        else:
            keyed.append(tuple_(key, Lead.id) > tuple_(literal(after_key, key.type),
                                                      literal(after_id)))
    order = (key.desc(), Lead.id.desc()) if descending else (key.asc(), Lead.id.asc())
    if key is Lead.id:
        order = (Lead.id.desc(),)
    # the page's ids first, from the indexes alone where they suffice; then its rows by id
    ids_stmt = select(Lead.id, key).where(*keyed).order_by(*order).limit(limit + 1)
    if query.band is not None:
        ids_stmt = ids_stmt.outerjoin(LeadScore, LeadScore.lead_id == Lead.id)
    page_keys = session.execute(ids_stmt).all()
    more = len(page_keys) > limit
    page_keys = page_keys[:limit]
    next_cursor = None
    if more and page_keys:
        last_id, last_key = page_keys[-1][0], page_keys[-1][-1]
        next_cursor = encode_cursor(query.sort, last_key, last_id)
    total = score_total(session, scale.half_life_s, now).label("score")
    scored = LeadScore.lead_id.is_not(None).label("scored")
    by_id = {row[0].id: row for row in session.execute(
        select(Lead, total, scored).outerjoin(LeadScore, LeadScore.lead_id == Lead.id)
        .where(Lead.id.in_([k[0] for k in page_keys]))).all()} if page_keys else {}
    found = [by_id[k[0]] for k in page_keys if k[0] in by_id]
    rows = _rows(session, found, scale)
    if query.after is not None:
        matches = 0  # a later page does not count again
    elif not more:
        matches = len(rows)  # all of them are on this page: nothing to count
    else:
        matches = _bounded_count(session, where, query)
    return LeadPage(rows, next_cursor, matches)


def _bounded_count(session: Session, where: list[ColumnElement[bool]], query: LeadQuery) -> int:
    """How many leads match, counting at most COUNT_CAP + 1 of them."""
    inner = select(Lead.id).where(*where).limit(COUNT_CAP + 1)
    if query.band is not None:
        inner = inner.outerjoin(LeadScore, LeadScore.lead_id == Lead.id)
    return session.execute(select(func.count()).select_from(inner.subquery())).scalar_one()


def _rows(session: Session, found: list[Any], scale: ScoreScale) -> list[LeadRow]:
    ids = [lead.id for lead, _, _ in found]
    reasons: dict[int, RejectionReason] = {}
    sequences: dict[int, list[str]] = {}
    if ids:
        latest = (select(Rejection.lead_id, Rejection.reason,
                         func.row_number().over(
                             partition_by=Rejection.lead_id,
                             order_by=(Rejection.rejected_at.desc(), Rejection.id.desc()))
                         .label("n"))
                  .where(Rejection.lead_id.in_(ids)).subquery())
        reasons = {lead_id: reason for lead_id, reason, _ in session.execute(
            select(latest).where(latest.c.n == 1)).all()}
        for lead_id, name in session.execute(
                select(Enrollment.lead_id, Sequence.name)
                .join(Sequence, Sequence.id == Enrollment.sequence_id)
                .where(Enrollment.lead_id.in_(ids), Enrollment.status.in_(LIVE_ENROLLMENT))
                .order_by(Enrollment.lead_id, Sequence.name)).all():
            sequences.setdefault(lead_id, []).append(name)
    rows = []
    for lead, score, scored in found:
        total = round(float(score or 0.0), 1)
        name = " ".join(p for p in (lead.first_name, lead.last_name) if p)
        rows.append(LeadRow(
            id=lead.id, email=lead.email, name=name, company=lead.company, title=lead.title,
            stage=lead.lifecycle_stage, owner_email=lead.owner_email, updated_at=lead.updated_at,
            created_at=lead.created_at, score=total if scored else None,
            band=scale.band_of(total),
            last_reason=reasons.get(lead.id), sequences=sequences.get(lead.id, []),
        ))
    return rows


def matching_ids(session: Session, query: LeadQuery, scale: ScoreScale, *, now: datetime,
                 limit: int) -> list[int]:
    """The ids of up to `limit` leads matching `query` (a bulk action on a whole search)."""
    where = _conditions(session, query, scale, now)
    stmt = select(Lead.id).where(*where).order_by(Lead.id.desc()).limit(limit)
    if query.band is not None:
        stmt = stmt.outerjoin(LeadScore, LeadScore.lead_id == Lead.id)
    return list(session.execute(stmt).scalars())
