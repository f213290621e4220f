"""Recompute the report rollups from the facts (`nurture reports rebuild`).

The services keep the rollups as facts are written (`nurture.rollups`); this recomputes
them whole, set-based, from rejections, lifecycle changes, enrollments, messages, handled
engagement events, handoffs, their events and CRM outcomes, and must come to exactly what
the services counted (a test checks it). It is the one place that reads the raw event
table in bulk; reports never do.

A fact lands on the journey that was current when it happened: the lead's latest journey
that started by then (`nurture.rollups.journeys.current_journey`); here, the window from a
journey's start to the next one's.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from nurture.models import Handoff, ReportCount, ReportJourney
from nurture.reports.funnel_months import touch_every_month
from nurture.rollups.counts import add_counts, key
from nurture.rollups.journeys import HUMAN_ENGAGEMENT, NOT_READY, explained_collateral

_HUMAN = ", ".join(f"'{t.value}'" for t in sorted(HUMAN_ENGAGEMENT))
_ESCALATIONS = "'sla_missed', 'escalated', 'reassigned', 'reassign_failed'"
"""Handoff events of an SLA timer firing that leave the handoff open."""
_FIRINGS = _ESCALATIONS + ", 'sla_expired'"
"""Every event an SLA timer firing writes; the first one of a handoff is its escalation,
counted against the rep it was made for (nothing changes the rep before a timer fires)."""


@dataclass(frozen=True)
class Dialect:
    """The few expressions that differ between PostgreSQL and SQLite."""

    name: str

    def day(self, column: str) -> str:
        if self.name == "postgresql":
            return f"CAST(timezone('UTC', {column}) AS date)"
        return f"date({column})"

    def month(self, column: str) -> str:
        if self.name == "postgresql":
            return f"CAST(date_trunc('month', timezone('UTC', {column})) AS date)"
        return f"date({column}, 'start of month')"

    def days_before(self, column: str, days: int) -> str:
        if self.name == "postgresql":
            return f"({column} - interval '{days} days')"
        return f"datetime({column}, '-{days} days')"


@dataclass(frozen=True)
class Rebuilt:
    journeys: int
    counters: int


def rebuild(session: Session) -> Rebuilt:
    """Empty both rollups and compute them again from the facts, in the caller's transaction."""
    d = Dialect(session.get_bind().dialect.name)
    run = session.execute
    session.flush()
    run(ReportCount.__table__.delete())
    run(ReportJourney.__table__.delete())
    _journeys(session, d)
    _counters(session, d)
    _explained(session)
    touch_every_month(session)
    session.flush()
    return Rebuilt(
        session.execute(select(func.count()).select_from(ReportJourney)).scalar_one(),
        session.execute(select(func.count()).select_from(ReportCount)).scalar_one(),
    )


WORK = "journeys_work"
"""A temporary copy the journeys are computed in: updated pass after pass, then written to
`report_journeys` once, in cohort order (updating the real table ten times over would leave
it ten times its size until a VACUUM FULL, and every report reading it slower)."""


def _journeys(session: Session, d: Dialect) -> None:
    def run(sql: str) -> None:
        session.execute(text(sql.replace("report_journeys", WORK)))

    session.execute(text(f"DROP TABLE IF EXISTS {WORK}"))
    session.execute(text(f"CREATE TEMPORARY TABLE {WORK} AS SELECT * FROM report_journeys "
                         "WHERE 1 = 0"))
    columns = ("id, lead_id, rejection_id, entered_at, cohort, reason, rep_email, team, source, "
               "sequence_id, delivered, engagements, handoff_rep")
    run(f"""
        INSERT INTO report_journeys ({columns})
        SELECT ROW_NUMBER() OVER (ORDER BY x.entered_at, x.kind, x.sort_id), x.lead_id,
               x.rejection_id, x.entered_at, {d.month('x.entered_at')}, x.reason,
               x.rep_email, x.team, x.source, 0, 0, 0, ''
        FROM (
            SELECT r.id AS sort_id, 0 AS kind, r.lead_id, r.id AS rejection_id,
                   r.rejected_at AS entered_at, r.reason, r.rep_email,
                   COALESCE(u.team, '') AS team, COALESCE(l.source, '') AS source
            FROM rejections r JOIN leads l ON l.id = r.lead_id
            LEFT JOIN users u ON u.email = r.rep_email
            UNION ALL
            SELECT c.id, 1, c.lead_id, NULL, c.changed_at, '{NOT_READY}', '', '',
                   COALESCE(l.source, '')
            FROM lifecycle_changes c JOIN leads l ON l.id = c.lead_id
            WHERE c.cause = 'not_ready'
              AND (c.from_stage IS NULL OR c.from_stage <> 'nurturing')
        ) x
    """)
    run("CREATE INDEX ix_journeys_work_id ON report_journeys (id)")
    run("CREATE INDEX ix_journeys_work_handoff_id ON report_journeys (handoff_id)")
    run("DROP TABLE IF EXISTS report_windows")
    run("""
        CREATE TEMPORARY TABLE report_windows AS
        SELECT id, lead_id, entered_at,
               LEAD(entered_at) OVER (PARTITION BY lead_id ORDER BY entered_at, id) AS until
        FROM report_journeys
    """)
    run("CREATE INDEX ix_report_windows_lead_id ON report_windows (lead_id, entered_at)")
    run("ANALYZE report_windows")  # a temporary table has no statistics until asked
    inside = "{t} >= w.entered_at AND (w.until IS NULL OR {t} < w.until)"
    run(f"""
        UPDATE report_journeys SET nurtured_at = x.at, sequence_id = x.sequence_id
        FROM (
            SELECT w.id, e.enrolled_at AS at, e.sequence_id,
                   ROW_NUMBER() OVER (PARTITION BY w.id ORDER BY e.enrolled_at, e.id) AS n
            FROM report_windows w JOIN enrollments e ON e.lead_id = w.lead_id
             AND {inside.format(t='e.enrolled_at')}
        ) x
        WHERE x.n = 1 AND report_journeys.id = x.id
    """)
    run(f"""
        UPDATE report_journeys SET recycled_at = x.at, qualified_at = x.qualified_at,
               handoff_id = x.handoff_id, handoff_rep = x.rep
        FROM (
            SELECT w.id, h.created_at AS at, h.qualified_at, h.id AS handoff_id,
                   COALESCE((SELECT ev.rep_email FROM handoff_events ev
                             WHERE ev.handoff_id = h.id AND ev.kind = 'created'
                             ORDER BY ev.id LIMIT 1), '') AS rep,
                   ROW_NUMBER() OVER (PARTITION BY w.id ORDER BY h.created_at DESC, h.id DESC)
                       AS n
            FROM report_windows w JOIN handoffs h ON h.lead_id = w.lead_id
             AND {inside.format(t='h.created_at')}
        ) x
        WHERE x.n = 1 AND report_journeys.id = x.id
    """)
    for kind, column in (("accepted", "accepted_at"), ("rejected", "rerejected_at")):
        run(f"""
            UPDATE report_journeys SET {column} = x.at
            FROM (SELECT ev.handoff_id, MIN(ev.at) AS at FROM handoff_events ev
                  WHERE ev.kind = '{kind}' GROUP BY ev.handoff_id) x
            WHERE report_journeys.handoff_id = x.handoff_id
        """)
    run("""
        UPDATE report_journeys SET rereject_reason = r.reason
        FROM handoffs h JOIN rejections r ON r.id = h.rejection_id
        WHERE report_journeys.handoff_id = h.id AND report_journeys.rerejected_at IS NOT NULL
    """)
    run(f"""
        UPDATE report_journeys SET opportunity_at = x.at
        FROM (SELECT w.id, MIN(o.occurred_at) AS at FROM report_windows w
              JOIN outcomes o ON o.lead_id = w.lead_id AND {inside.format(t='o.occurred_at')}
              WHERE o.kind = 'opportunity_created' GROUP BY w.id) x
        WHERE report_journeys.id = x.id
    """)
    run(f"""
        UPDATE report_journeys SET won_at = x.at, revenue = x.amount
        FROM (SELECT w.id, o.occurred_at AS at, o.amount,
                     ROW_NUMBER() OVER (PARTITION BY w.id ORDER BY o.occurred_at, o.id) AS n
              FROM report_windows w
              JOIN outcomes o ON o.lead_id = w.lead_id AND {inside.format(t='o.occurred_at')}
              WHERE o.kind = 'won') x
        WHERE x.n = 1 AND report_journeys.id = x.id
    """)
    run(f"""
        UPDATE report_journeys SET engaged_at = x.first_at, engagements = x.touches
        FROM (SELECT w.id, MIN(e.occurred_at) AS first_at,
                     SUM(CASE WHEN j.qualified_at IS NULL OR e.occurred_at <= j.qualified_at
                              THEN 1 ELSE 0 END) AS touches
              FROM report_windows w JOIN report_journeys j ON j.id = w.id
              JOIN engagement_events e ON e.lead_id = w.lead_id
               AND {inside.format(t='e.occurred_at')}
              WHERE e.type IN ({_HUMAN}) AND NOT e.is_machine AND e.handled_at IS NOT NULL
              GROUP BY w.id) x
        WHERE report_journeys.id = x.id
    """)
    run(f"""
        UPDATE report_journeys SET delivered = x.touches
        FROM (SELECT w.id, COUNT(*) AS touches
              FROM report_windows w JOIN report_journeys j ON j.id = w.id
              JOIN messages m ON m.lead_id = w.lead_id AND {inside.format(t='m.sent_at')}
              WHERE m.status = 'sent'
                AND (j.qualified_at IS NULL OR m.sent_at <= j.qualified_at)
              GROUP BY w.id) x
        WHERE report_journeys.id = x.id
    """)
    run("DROP TABLE report_windows")
    every = ", ".join(c.name for c in ReportJourney.__table__.columns)
    session.execute(text(f"INSERT INTO report_journeys ({every}) SELECT {every} FROM {WORK} "
                         "ORDER BY cohort, id"))
    session.execute(text(f"DROP TABLE {WORK}"))
    if d.name == "postgresql":
        session.execute(text("SELECT setval(pg_get_serial_sequence('report_journeys', 'id'), "
                             "(SELECT COALESCE(MAX(id), 0) + 1 FROM report_journeys), false)"))


def _counters(session: Session, d: Dialect) -> None:
    """One INSERT … SELECT … GROUP BY per metric; each metric comes from one kind of fact,
    so no two statements add to the same counter."""
    target = ("day, metric, reason, sequence_id, step_id, rep_email, team, source, "
              "collateral_id, n, amount")
    selects = {
        "rejection": f"""
            SELECT {d.day('j.entered_at')}, 'rejection', j.reason, 0, '', j.rep_email, j.team,
                   j.source, 0, COUNT(*), 0
            FROM report_journeys j WHERE j.rejection_id IS NOT NULL
            GROUP BY 1, 3, 6, 7, 8""",
        NOT_READY: f"""
            SELECT {d.day('j.entered_at')}, '{NOT_READY}', j.reason, 0, '', '', '', j.source,
                   0, COUNT(*), 0
            FROM report_journeys j WHERE j.rejection_id IS NULL GROUP BY 1, 3, 8""",
        "enrolled": f"""
            SELECT {d.day('e.enrolled_at')}, 'enrolled', COALESCE(j.reason, ''), e.sequence_id,
                   '', '', '', COALESCE(j.source, ''), 0, COUNT(*), 0
            FROM enrollments e LEFT JOIN report_journeys j ON j.id = (
                SELECT j2.id FROM report_journeys j2
                WHERE j2.lead_id = e.lead_id AND j2.entered_at <= e.enrolled_at
                ORDER BY j2.entered_at DESC, j2.id DESC LIMIT 1)
            GROUP BY 1, 3, 4, 8""",
        "delivered": f"""
            SELECT {d.day('m.sent_at')}, 'delivered', '', e.sequence_id, m.step_id, '', '', '',
                   0, COUNT(*), 0
            FROM messages m JOIN enrollments e ON e.id = m.enrollment_id
            WHERE m.status = 'sent' GROUP BY 1, 4, 5""",
        "collateral_sent": f"""
            SELECT {d.day('m.sent_at')}, 'collateral_sent', '', 0, '', '', '', '',
                   v.collateral_id, COUNT(*), 0
            FROM message_collateral mc JOIN messages m ON m.id = mc.message_id
            JOIN collateral_versions v ON v.id = mc.collateral_version_id
            WHERE m.status = 'sent' GROUP BY 1, 9""",
        "human": f"""
            SELECT {d.day('ev.occurred_at')}, 'human_' || ev.type, '',
                   COALESCE(e.sequence_id, 0), COALESCE(m.step_id, ''), '', '', '', 0,
                   COUNT(*), 0
            FROM engagement_events ev LEFT JOIN messages m ON m.id = ev.message_id
            LEFT JOIN enrollments e ON e.id = m.enrollment_id
            WHERE ev.type IN ('open', 'click') AND NOT ev.is_machine
              AND ev.lead_id IS NOT NULL AND ev.handled_at IS NOT NULL
            GROUP BY 1, 2, 4, 5""",
        "unsubscribe": f"""
            SELECT {d.day('ev.occurred_at')}, 'unsubscribe', '', COALESCE(e.sequence_id, 0),
                   COALESCE(m.step_id, ''), '', '', '', 0, COUNT(*), 0
            FROM engagement_events ev LEFT JOIN messages m ON m.id = ev.message_id
            LEFT JOIN enrollments e ON e.id = m.enrollment_id
            WHERE ev.type = 'unsubscribe' AND ev.lead_id IS NOT NULL
              AND ev.handled_at IS NOT NULL
            GROUP BY 1, 4, 5""",
        "collateral_engaged": f"""
            SELECT {d.day('ev.occurred_at')}, 'collateral_engaged', '', 0, '', '', '', '',
                   v.collateral_id, COUNT(*), 0
            FROM engagement_events ev JOIN collateral_versions v
              ON v.id = ev.collateral_version_id
            WHERE ev.type IN ({_HUMAN}) AND NOT ev.is_machine AND ev.lead_id IS NOT NULL
              AND ev.handled_at IS NOT NULL
            GROUP BY 1, 9""",
        "exit": f"""
            SELECT {d.day('e.finished_at')}, 'exit', SUBSTR(COALESCE(e.exit_reason, 'unknown'), 1, 64),
                   e.sequence_id, COALESCE(e.step_id, ''), '', '', '', 0, COUNT(*), 0
            FROM enrollments e
            WHERE e.status IN ('completed', 'exited') AND e.finished_at IS NOT NULL
            GROUP BY 1, 3, 4, 5""",
        "recycled": f"""
            SELECT {d.day('h.created_at')}, 'recycled', COALESCE(j.reason, ''), 0, '',
                   COALESCE(j.handoff_rep, ''), COALESCE(u.team, ''), COALESCE(j.source, ''),
                   0, COUNT(*), 0
            FROM handoffs h LEFT JOIN report_journeys j ON j.handoff_id = h.id
            LEFT JOIN users u ON u.email = j.handoff_rep
            GROUP BY 1, 3, 6, 7, 8""",
        "requalified": f"""
            SELECT {d.day('x.created_at')}, 'requalified', '', x.sequence_id, '', '', '', '', 0,
                   COUNT(*), 0
            FROM (SELECT DISTINCT h.id, h.created_at, e.sequence_id FROM handoffs h
                  JOIN enrollments e ON e.lead_id = h.lead_id
                   AND e.enrolled_at >= {d.days_before('h.created_at', 90)}
                   AND e.enrolled_at <= h.created_at) x
            GROUP BY 1, 4""",
        "answered": f"""
            SELECT {d.day('ev.at')},
                   CASE ev.kind WHEN 'accepted' THEN 'accepted' ELSE 'rerejected' END,
                   CASE ev.kind WHEN 'accepted' THEN COALESCE(j.reason, '')
                        ELSE COALESCE(r.reason, '') END,
                   0, '', COALESCE(h.rep_email, ''), COALESCE(u.team, ''),
                   COALESCE(j.source, ''), 0, COUNT(*), 0
            FROM handoff_events ev JOIN handoffs h ON h.id = ev.handoff_id
            LEFT JOIN report_journeys j ON j.handoff_id = h.id
            LEFT JOIN rejections r ON r.id = h.rejection_id
            LEFT JOIN users u ON u.email = h.rep_email
            WHERE ev.kind IN ('accepted', 'rejected')
            GROUP BY 1, 2, 3, 6, 7, 8""",
        "sla_met": f"""
            SELECT {d.day('ev.at')}, 'sla_met', '', 0, '', COALESCE(h.rep_email, ''),
                   COALESCE(u.team, ''), '', 0, COUNT(*), 0
            FROM handoff_events ev JOIN handoffs h ON h.id = ev.handoff_id
            LEFT JOIN users u ON u.email = h.rep_email
            WHERE ev.kind IN ('accepted', 'rejected') AND ev.at <= h.sla_due_at
              AND NOT EXISTS (SELECT 1 FROM handoff_events x WHERE x.handoff_id = h.id
                              AND x.kind IN ({_ESCALATIONS}) AND x.id < ev.id)
            GROUP BY 1, 6, 7""",
        "sla_escalated": f"""
            SELECT {d.day('ev.at')}, 'sla_escalated', '', 0, '', COALESCE(c.rep_email, ''),
                   COALESCE(u.team, ''), '', 0, COUNT(*), 0
            FROM handoff_events ev
            LEFT JOIN handoff_events c ON c.handoff_id = ev.handoff_id AND c.kind = 'created'
            LEFT JOIN users u ON u.email = c.rep_email
            WHERE ev.id IN (SELECT MIN(x.id) FROM handoff_events x
                            WHERE x.kind IN ({_FIRINGS}) GROUP BY x.handoff_id)
            GROUP BY 1, 6, 7""",
        "sla_closed": f"""
            SELECT {d.day('h.closed_at')},
                   CASE h.status WHEN 'expired' THEN 'sla_expired' ELSE 'stalled_in_sales' END,
                   '', 0, '', COALESCE(h.rep_email, ''), COALESCE(u.team, ''), '', 0,
                   COUNT(*), 0
            FROM handoffs h LEFT JOIN users u ON u.email = h.rep_email
            WHERE h.status IN ('expired', 'stalled') AND h.closed_at IS NOT NULL
            GROUP BY 1, 2, 6, 7""",
    }
    for sql in selects.values():
        session.execute(text(f"INSERT INTO report_counts ({target}) {sql}"))


def _explained(session: Session, batch: int = 1000) -> None:
    """Collateral in the score explanations of handoffs: per handoff, as `recycled` counts."""
    last = 0
    while True:
        handoffs = session.execute(
            select(Handoff).where(Handoff.id > last).order_by(Handoff.id).limit(batch)
        ).scalars().all()
        if not handoffs:
            return
        add_counts(session, [(key("collateral_explained", h.created_at, collateral_id=c), 1,
                              Decimal(0))
                             for h in handoffs for c in explained_collateral(session, h)])
        last = handoffs[-1].id
        session.expunge_all()
