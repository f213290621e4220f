"""A score's explanation in plain words, for the rep who must call the lead now.

The stored explanation is a list of `{rule, points, at}`; each line here says what the lead did
(from the event the rule last scored, through the score ledger) or what about the lead fits
(the rule's description in the model), and when: "+20: attended the webinar 'Cutting
onboarding costs', 2 days ago".
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.models import (
    CollateralVersion,
    EngagementEvent,
    EventType,
    ScoreLedgerEntry,
    ScoringModel,
)

TITLE_KEYS = ("title", "name", "webinar", "form", "asset", "document", "page")
"""Event properties that may name what the lead engaged with, in order of preference."""

MAX_LEDGER_ROWS = 1000
"""Most ledger rows read for one explanation (a lead's recent scoring, newest first)."""


@dataclass(frozen=True)
class Reason:
    """One line of why the lead is back: `points` ("+20"), `what` (what the lead did or what
    fits), `when` ("2 days ago", or None for fit), and both as one `text`."""

    rule: str
    points: str
    what: str
    when: str | None
    value: float

    @property
    def text(self) -> str:
        return f"{self.points}: {self.what}" + (f", {self.when}" if self.when else "")


def plain_explanation(session: Session, *, lead_id: int, score: dict[str, Any],
                      model_id: int | None, until: datetime, now: datetime) -> list[Reason]:
    """The explanation of `score` (a handoff's snapshot) in plain words, largest first.

    `until`: the moment the score was taken (events after it are not its reasons); `now`: what
    "2 days ago" counts from."""
    items = [i for i in score.get("explanation") or [] if isinstance(i, dict) and i.get("rule")]
    rules = {str(i["rule"]) for i in items}
    rule_docs = _rule_documents(session, model_id)
    latest, counts = _latest_events(session, lead_id, model_id, rules, until)
    titles = _collateral_titles(session, [e.collateral_version_id for e in latest.values()
                                          if e.collateral_version_id])
    reasons = []
    for item in items:
        rule = str(item["rule"])
        value = _number(item.get("points"))
        event = latest.get(rule)
        at = event.occurred_at if event is not None else _when(item.get("at"))
        doc = rule_docs.get(rule, {})
        if event is not None:
            what = describe_event(event, titles.get(event.collateral_version_id or 0))
            if counts[rule] > 1:
                what += f" ({counts[rule]} times)"
        elif doc.get("kind") == "fit":
            what = "fits: " + (doc.get("description") or humanize(rule).lower())
            at = None
        else:
            what = doc.get("description") or humanize(rule)
        reasons.append(Reason(rule=rule, points=format_points(value), what=what,
                              when=ago(at, now) if at is not None else None, value=value))
    reasons.sort(key=lambda r: (-abs(r.value), r.rule))
    return reasons


def describe_event(event: EngagementEvent, collateral_title: str | None = None) -> str:
    """What the lead did, in a few words."""
    props = event.properties or {}
    named = collateral_title or _title(props)
    quoted = f" '{named}'" if named else ""
    kind = event.type
    if kind == EventType.WEBINAR_ATTENDED:
        return f"attended the webinar{quoted}" if named else "attended a webinar"
    if kind == EventType.WEBINAR_REGISTERED:
        return f"registered for the webinar{quoted}" if named else "registered for a webinar"
    if kind == EventType.CONTENT_DOWNLOAD:
        return f"downloaded{quoted}" if named else "downloaded content"
    if kind == EventType.FORM_SUBMIT:
        return f"filled in the form{quoted}" if named else "filled in a form"
    if kind == EventType.MEETING_BOOKED:
        return "booked a meeting"
    if kind == EventType.EMAIL_REPLY:
        return "replied to an email"
    if kind == EventType.OPEN:
        return "opened an email"
    if kind in (EventType.PAGE_VIEW, EventType.CLICK):
        verb = "clicked" if kind == EventType.CLICK else "viewed"
        if collateral_title:
            return f"{verb} '{collateral_title}'"
        path = _path(event.url or str(props.get("page") or props.get("url") or ""))
        if path:
            if "pricing" in path:
                return f"{verb} the pricing page"
            return f"{verb} {path}"
        return f"{verb} a page" if kind == EventType.PAGE_VIEW else "clicked a link"
    return humanize(kind.value)


def format_points(value: float) -> str:
    shown = f"{value:.0f}" if abs(value) >= 1 or value == 0 else f"{value:.1f}"
    shown = shown.lstrip("-")
    return ("−" if value < 0 else "+") + shown


def ago(at: datetime, now: datetime) -> str:
    """"just now", "5 minutes ago", "3 hours ago", "2 days ago", "in 2 days"."""
    seconds = (now - at).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 60:
        return "just now"
    for size, unit in ((86400 * 7, "week"), (86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = int(seconds // size)
            words = f"{n} {unit}{'s' if n != 1 else ''}"
            return f"in {words}" if future else f"{words} ago"
    return "just now"  # unreachable


def humanize(name: str) -> str:
    words = re.sub(r"[_\-]+", " ", name).strip()
    return words[:1].upper() + words[1:] if words else name


def _title(props: dict[str, Any]) -> str | None:
    for key in TITLE_KEYS:
        value = props.get(key)
        if isinstance(value, str) and value.strip():
            text = value.strip()[:120]
            if key == "page" or text.startswith("/"):
                return None if key == "page" else text
            # a slug ("cutting-onboarding-costs") reads better as words
            if re.fullmatch(r"[a-z0-9]+([-_][a-z0-9]+)+", text):
                return humanize(text)
            return text
    return None


def _path(url: str) -> str:
    if not url:
        return ""
    match = re.match(r"^[a-z][a-z0-9+.-]*://[^/]+(?P<path>/[^?#]*)?", url, re.I)
    path = (match.group("path") or "/") if match else url.split("?", maxsplit=1)[0]
    return path[:80]


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _rule_documents(session: Session, model_id: int | None) -> dict[str, dict[str, Any]]:
    if model_id is None:
        return {}
    model = session.get(ScoringModel, model_id)
    if model is None:
        return {}
    rules: dict[str, dict[str, Any]] = {}
    for kind in ("fit", "engagement"):
        for rule in model.document.get(kind) or []:
            if isinstance(rule, dict) and rule.get("rule"):
                rules[str(rule["rule"])] = {"kind": kind, "description": rule.get("description")}
    return rules


def _latest_events(session: Session, lead_id: int, model_id: int | None, rules: set[str],
                   until: datetime) -> tuple[dict[str, EngagementEvent], Counter[str]]:
    """Each rule's last scored event up to `until`, and how many events the rule scored."""
    if model_id is None or not rules:
        return {}, Counter()
    rows = session.execute(
        select(ScoreLedgerEntry.rule, ScoreLedgerEntry.event_id)
        .where(ScoreLedgerEntry.lead_id == lead_id, ScoreLedgerEntry.model_id == model_id,
               ScoreLedgerEntry.rule.in_(sorted(rules)), ScoreLedgerEntry.event_id.is_not(None),
               ScoreLedgerEntry.occurred_at <= until, ScoreLedgerEntry.points != 0)
        .order_by(ScoreLedgerEntry.occurred_at.desc(), ScoreLedgerEntry.id.desc())
        .limit(MAX_LEDGER_ROWS)
    ).all()
    counts: Counter[str] = Counter(rule for rule, _ in rows)
    first: dict[str, int] = {}
    for rule, event_id in rows:
        first.setdefault(rule, event_id)
    events = {e.id: e for e in session.execute(
        select(EngagementEvent).where(EngagementEvent.id.in_(set(first.values())))
    ).scalars()} if first else {}
    return {rule: events[eid] for rule, eid in first.items() if eid in events}, counts


def _collateral_titles(session: Session, version_ids: list[int]) -> dict[int, str]:
    if not version_ids:
        return {}
    return dict(session.execute(
        select(CollateralVersion.id, CollateralVersion.title)
        .where(CollateralVersion.id.in_(set(version_ids)))
    ).tuples().all())
