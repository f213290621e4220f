"""The alignment digest: the period's key numbers, and their change, emailed to the people
named in NURTURE_DIGEST_RECIPIENTS, once per period.

Periods are fixed runs of NURTURE_DIGEST_DAYS days counted from `EPOCH`, so every
dispatcher and every restart agrees on them. Once a period has ended, its digest is due.
Sending is claimed first, like a drip email: a `digests` row for the period (its start is
unique) is committed as `sending` before the SMTP call. Whoever fails to insert it sends
nothing; a crash mid-send leaves the row `sending`, never sent again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from jinja2 import TemplateError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from campaigns.messengers import Messenger, SendRefused, SendUnknown
from campaigns.rendering import TemplateProblem, shared_environment
from nurture.db import Database, insert_ignoring_conflicts
from nurture.models import Digest, DigestStatus, ReportCount
from nurture.reports import figures
from nurture.reports.params import Period, ReportQuery

EPOCH = date(2026, 1, 5)
"""A Monday: digest periods are counted from it."""

TEMPLATE = "digest"
"""`email_templates/digest/` (subject.txt, body.txt, body.html)."""

MAX_ERROR = 2000


def due_period(today: date, days: int) -> Period:
    """The latest period of `days` days that has ended by `today`."""
    index = (today - EPOCH).days // days - 1
    start = EPOCH + timedelta(days=index * days)
    return Period(start, start + timedelta(days=days - 1))


@dataclass(frozen=True)
class KeyNumber:
    label: str
    value: str
    previous: str
    change: str


def key_numbers(session: Session, period: Period) -> list[KeyNumber]:
    """The digest's numbers for the period and the one before it, formatted."""
    now, before = _figures(session, period), _figures(session, period.previous())
    out = []
    for label, kind in LABELS:
        value, previous = now[label], before[label]
        out.append(KeyNumber(label, _format(value, kind), _format(previous, kind),
                             _change(value, previous, kind)))
    return out


LABELS = (
    ("Leads that entered nurture", "count"),
    ("Leads recycled to sales", "count"),
    ("Accepted by sales", "count"),
    ("Rejected again", "count"),
    ("Acceptance rate", "share"),
    ("Deals won", "count"),
    ("Revenue won from recycled leads", "money"),
    ("Median time to the rep's first action", "duration"),
    ("First action within 5 minutes of qualifying", "share"),
    ("Handoffs worked within the SLA", "count"),
    ("Handoffs escalated", "count"),
    ("Handoffs expired or stalled in sales", "count"),
)


def _figures(session: Session, period: Period) -> dict[str, Any]:
    query = ReportQuery(period, None)
    entered = session.execute(
        select(func.coalesce(func.sum(ReportCount.n), 0))
        .where(ReportCount.metric.in_(("rejection", "not_ready")),
               ReportCount.day >= period.start, ReportCount.day <= period.end)
    ).scalar_one()
    acceptance = (figures.acceptance(session, query).rows or [{}])[0]
    revenue = (figures.revenue(session, query).rows or [{}])[0]
    speed = {r["leg"]: r for r in figures.speed_to_lead(session, query).rows}
    sla = figures.sla(session, query).rows
    return {
        "Leads that entered nurture": int(entered),
        "Leads recycled to sales": acceptance.get("recycled", 0),
        "Accepted by sales": acceptance.get("accepted", 0),
        "Rejected again": acceptance.get("rejected_again", 0),
        "Acceptance rate": acceptance.get("acceptance_rate"),
        "Deals won": revenue.get("won", 0),
        "Revenue won from recycled leads": float(revenue.get("revenue_from_recycled", 0)),
        "Median time to the rep's first action":
            speed.get("stored_to_first_action", {}).get("median_ms"),
        "First action within 5 minutes of qualifying":
            speed.get("qualified_to_first_action", {}).get("within_5_minutes"),
        "Handoffs worked within the SLA": sum(r["met"] for r in sla),
        "Handoffs escalated": sum(r["escalated"] for r in sla),
        "Handoffs expired or stalled in sales":
            sum(r["expired"] + r["stalled_returns"] for r in sla),
    }


def _format(value: Any, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "share":
        return f"{value * 100:.0f}%"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "duration":
        return _duration(value)
    return f"{value:,}"


def _duration(ms: float) -> str:
    seconds = abs(ms) / 1000
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _change(value: Any, previous: Any, kind: str) -> str:
    if value is None or previous is None:
        return "no comparison"
    delta = value - previous
    if delta == 0:
        return "unchanged"
    sign = "+" if delta > 0 else "-"
    if kind == "share":
        return f"{sign}{abs(delta) * 100:.0f} points"
    if kind == "duration":
        return f"{sign}{_duration(delta)}"
    return f"{sign}{_format(abs(delta), kind)}"


def claim(session: Session, period: Period, recipients: tuple[str, ...], *,
          now: datetime) -> int | None:
    """The period's digest row, inserted `sending`; None when another claimed it first."""
    return session.execute(
        insert_ignoring_conflicts(session, Digest, index_elements=["period_start"])
        .values(period_start=period.start, period_end=period.end + timedelta(days=1),
                status=DigestStatus.SENDING, recipients=", ".join(recipients), claimed_at=now)
        .returning(Digest.id)
    ).scalar_one_or_none()


def is_sent_or_claimed(session: Session, period: Period) -> bool:
    return session.execute(
        select(Digest.id).where(Digest.period_start == period.start)
    ).first() is not None


def compose(session: Session, period: Period, recipients: tuple[str, ...], *, mail_from: str,
            base_url: str, digest_id: int) -> EmailMessage:
    previous = period.previous()
    numbers = key_numbers(session, period)
    recycled = next(n for n in numbers if n.label == "Leads recycled to sales")
    accepted = next(n for n in numbers if n.label == "Acceptance rate")
    context = {
        "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "previous": {"start": previous.start.isoformat(), "end": previous.end.isoformat()},
        "numbers": numbers,
        "headline": f"{recycled.value} leads recycled, {accepted.value} accepted",
        "reports_url": f"{base_url}/api/v1/reports/funnel?from={period.start}&to={period.end}",
    }
    env = shared_environment()
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = ", ".join(recipients)
    message["Subject"] = " ".join(_render(env, "subject.txt", context).split())
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(idstring=f"digest-{digest_id}")
    message.set_content(_render(env, "body.txt", context))
    message.add_alternative(_render(env, "body.html", context), subtype="html")
    return message


def _render(env: Any, part: str, context: dict[str, Any]) -> str:
    try:
        return env.get_template(f"{TEMPLATE}/{part}").render(context)
    except TemplateError as exc:
        raise TemplateProblem(f"{TEMPLATE}/{part}: {exc}") from None


@dataclass(frozen=True)
class DigestSettings:
    recipients: tuple[str, ...]
    days: int
    mail_from: str
    base_url: str


def send_due_digest(db: Database, settings: DigestSettings,
                    messenger: Callable[[], Messenger], *, now: datetime,
                    period: Period | None = None) -> str:
    """Send the digest of `period` (default: the latest ended one) unless it was claimed
    already. Returns what happened: `sent`, `claimed elsewhere`, `no recipients`,
    `failed: …`, `unknown: …`."""
    if not settings.recipients:
        return "no recipients"
    period = period or due_period(now.date(), settings.days)
    with db.session_scope() as session:
        digest_id = claim(session, period, settings.recipients, now=now)
    if digest_id is None:
        return "claimed elsewhere"
    try:
        with db.session_scope() as session:
            email = compose(session, period, settings.recipients, mail_from=settings.mail_from,
                            base_url=settings.base_url, digest_id=digest_id)
        sender = messenger()
        try:
            sender.send(email)
        finally:
            sender.close()
    except SendUnknown as exc:  # may have gone: stays `sending`, never sent again
        _settle(db, digest_id, DigestStatus.SENDING, f"unknown: {exc}", subject=None)
        return f"unknown: {exc}"
    except (SendRefused, TemplateProblem) as exc:
        _settle(db, digest_id, DigestStatus.FAILED, str(exc), subject=None)
        return f"failed: {exc}"
    _settle(db, digest_id, DigestStatus.SENT, None, subject=str(email["Subject"]), sent_at=now)
    return "sent"


def _settle(db: Database, digest_id: int, status: DigestStatus, error: str | None, *,
            subject: str | None, sent_at: datetime | None = None) -> None:
    with db.session_scope() as session:
        session.execute(update(Digest).where(Digest.id == digest_id).values(
            status=status, error=error[:MAX_ERROR] if error else None,
            subject=subject[:255] if subject else None, sent_at=sent_at))
