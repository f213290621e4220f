"""Reports benchmark (prints figures; not a test).

1. The time to rebuild the report rollups from the facts (`nurture reports rebuild`).
2. The p50 and p95 time of every report (`nurture.reports.figures`, what the API runs) for
   the last 90 days and for the last 365 days, ungrouped and grouped by rep.
   Target (issue #7): p95 under 500 ms.

Data, generated set-based in SQL over the last 365 days: LEADS leads, each rejected once
(8 reasons, 20 reps in 4 teams, 5 sources); 80% enrolled in one of 5 sequences and sent up to
3 emails (the first featuring one of 10 collateral); EVENTS engagement events on those leads
(opens and clicks of their first email, page views, downloads, webinars, replies,
unsubscribes; 2% machine); one lead in 10 recycled to sales (accepted, rejected again with a
new rejection, or open; a rep email notification each; a missed SLA for slow answers); CRM
opportunities and wins on some accepted leads. On a fresh database created on the server of
DATABASE_URL (default postgresql://postgres@127.0.0.1/postgres), dropped at the end; or, with
`--db NAME`, in the database NAME, generated once and kept (a later run with the same sizes
reuses it; the rollups are rebuilt every run).

    .venv/bin/python bench/reports.py                         # 1,000,000 leads, 10,000,000 events
    .venv/bin/python bench/reports.py --db nurture_bench_reports   # keep and reuse the data
    .venv/bin/python bench/reports.py --leads 100000 --events 1000000 --runs 10
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import time
from datetime import timedelta
from pathlib import Path

import psutil
import psycopg
from sqlalchemy.engine import make_url

from nurture.clock import utcnow
from nurture.db import Database
from nurture.migrate import upgrade_database
from nurture.reports.figures import REPORTS, build_report
from nurture.reports.funnel_months import refresh as refresh_funnel_months
from nurture.reports.params import Period, ReportQuery
from nurture.reports.rebuild import rebuild

_spec = importlib.util.spec_from_file_location("bench_rescore", Path(__file__).with_name("rescore.py"))
assert _spec is not None and _spec.loader is not None
_rescore = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_rescore)
CpuMeter, bench_database, load_average, commit = (
    _rescore.CpuMeter, _rescore._bench_database, _rescore._load, _rescore._commit)

TARGET_MS = 500.0
"""p95 of every report (issue #7)."""

DATASET_SQL = """
CREATE TABLE IF NOT EXISTS bench_reports_dataset (leads bigint NOT NULL, events bigint NOT NULL,
                                                  generated_at timestamptz NOT NULL)
"""

SETUP_SQL = [
    """INSERT INTO users (email, role, timezone, team, is_active, created_at)
       SELECT 'rep' || n || '@bench.example', 'rep', 'UTC',
              (ARRAY['east', 'west', 'north', 'south'])[1 + n % 4], true, now()
       FROM generate_series(0, 19) AS n""",
    """INSERT INTO sequences (id, key, name, status, priority, active_version_id, created_at,
                              updated_at)
       SELECT n, 'sequence-' || n, 'Sequence ' || n, 'active', n, n, now(), now()
       FROM generate_series(1, 5) AS n""",
    """INSERT INTO sequence_versions (id, sequence_id, version, document, created_at)
       SELECT n, n, 1, '{}'::jsonb, now() FROM generate_series(1, 5) AS n""",
    """INSERT INTO collateral (id, key, created_at)
       SELECT n, 'asset-' || n, now() FROM generate_series(1, 10) AS n""",
    """INSERT INTO collateral_versions (id, collateral_id, version, title, funnel_stage, personas,
                                        industries, status, created_at)
       SELECT n, n, 1, 'Asset ' || n, 'consideration', '[]'::jsonb, '[]'::jsonb, 'approved', now()
       FROM generate_series(1, 10) AS n""",
]

REJECTED_AT = "(now() - interval '365 days' + ((n * 7919) %% 31536000) * interval '1 second')"

LEADS_SQL = [
    f"""INSERT INTO leads (id, email, source, attributes, lifecycle_stage, created_at, updated_at)
        SELECT n, 'lead' || n || '@bench.example',
               (ARRAY['webinar', 'ads', 'referral', 'events', 'organic'])[1 + n %% 5],
               '{{}}'::jsonb, 'nurturing', {REJECTED_AT}, {REJECTED_AT}
        FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n""",
    f"""INSERT INTO rejections (id, lead_id, reason, rep_email, rejected_at, created_at)
        SELECT n, n, (ARRAY['no_budget', 'no_authority', 'no_need', 'bad_timing', 'not_icp',
                            'unresponsive', 'chose_competitor', 'other'])[1 + n %% 8],
               'rep' || n %% 20 || '@bench.example', {REJECTED_AT}, {REJECTED_AT}
        FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n""",
    f"""INSERT INTO enrollments (id, lead_id, sequence_id, version_id, rejection_id, status,
                                 step_id, enrolled_at, finished_at, exit_reason)
        SELECT n, n, 1 + n %% 5, 1 + n %% 5, n,
               CASE WHEN n %% 10 = 1 THEN 'exited' WHEN n %% 3 = 0 THEN 'completed'
                    ELSE 'active' END,
               CASE WHEN n %% 10 = 1 THEN 'e2' WHEN n %% 3 = 0 THEN 'e3' ELSE 'w1' END,
               {REJECTED_AT} + interval '1 minute',
               CASE WHEN n %% 10 = 1 OR n %% 3 = 0 THEN {REJECTED_AT} + interval '20 days' END,
               CASE WHEN n %% 10 = 1 THEN 'recycled to sales'
                    WHEN n %% 3 = 0 THEN 'end of sequence' END
        FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n WHERE n %% 5 <> 0""",
    f"""INSERT INTO messages (id, message_id, enrollment_id, step_id, lead_id, to_address, subject,
                              status, attempts, links, created_at, sent_at)
        SELECT 3 * n + k - 3, 'b' || (3 * n + k - 3), n, 'e' || k, n,
               'lead' || n || '@bench.example', 'Hello', 'sent', 1, '{{}}'::jsonb,
               {REJECTED_AT} + interval '1 minute' + (k - 1) * interval '7 days',
               {REJECTED_AT} + interval '1 minute' + (k - 1) * interval '7 days'
        FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n
        CROSS JOIN generate_series(1, 3) AS k
        WHERE n %% 5 <> 0 AND {REJECTED_AT} + (k - 1) * interval '7 days' < now()""",
    """INSERT INTO message_collateral (message_id, collateral_version_id)
       SELECT 3 * n - 2, 1 + n %% 10
       FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n WHERE n %% 5 <> 0""",
]

LEAD_OF_EVENT = "(1 + (i * 7919) %% %(leads)s)"
EVENT_AT = (f"LEAST(now(), (now() - interval '365 days' + ((({LEAD_OF_EVENT}) * 7919) %% 31536000)"
            " * interval '1 second') + ((i * 104729) %% 2592000) * interval '1 second')")

EVENTS_SQL = f"""
INSERT INTO engagement_events (lead_id, message_id, type, occurred_at, received_at, source,
                               source_event_id, collateral_version_id, is_machine, properties,
                               handled_at, scored_at)
SELECT {LEAD_OF_EVENT},
       CASE WHEN t.type IN ('open', 'click') AND {LEAD_OF_EVENT} %% 5 <> 0
            THEN 3 * {LEAD_OF_EVENT} - 2 END,
       t.type, {EVENT_AT}, {EVENT_AT}, 'api', 'r' || i,
       CASE WHEN t.type = 'click' AND {LEAD_OF_EVENT} %% 5 <> 0
            THEN 1 + {LEAD_OF_EVENT} %% 10 END,
       i %% 50 = 0, '{{}}'::jsonb, now(), now()
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i
CROSS JOIN LATERAL (SELECT (ARRAY['page_view', 'page_view', 'page_view', 'open', 'open',
                                  'click', 'click', 'content_download', 'webinar_attended',
                                  'webinar_registered', 'form_submit', 'email_reply',
                                  'page_view', 'open', 'click', 'page_view', 'open', 'click',
                                  'delivered', 'unsubscribe'])[1 + i %% 20] AS type) AS t
"""

HANDED_AT = f"({REJECTED_AT} + interval '20 days' + (n %% 3600) * interval '1 second')"
ANSWERED_AT = f"({HANDED_AT} + (n %% 7200) * interval '1 second')"

HANDOFF_SQL = [
    f"""INSERT INTO handoffs (id, lead_id, status, rep_email, score, qualified_at, sla_due_at,
                              escalations, reassignments, handoff_ms, response_ms,
                              first_action_at, closed_at, created_at)
        SELECT n, n, s.status, 'rep' || n %% 20 || '@bench.example',
               '{{"total": 70, "explanation": []}}'::jsonb,
               {HANDED_AT} - interval '300 milliseconds', {HANDED_AT} + interval '1 hour',
               CASE WHEN n %% 7200 > 3600 AND s.status <> 'open' THEN 1 ELSE 0 END, 0, 300,
               CASE WHEN s.status <> 'open' THEN (n %% 7200) * 1000 END,
               CASE WHEN s.status <> 'open' THEN {ANSWERED_AT} END,
               CASE WHEN s.status <> 'open' THEN {ANSWERED_AT} END,
               {HANDED_AT}
        FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n
        CROSS JOIN LATERAL (SELECT CASE WHEN n %% 30 = 1 THEN 'rejected'
                                        WHEN n %% 30 = 11 THEN 'open'
                                        ELSE 'accepted' END AS status) AS s
        WHERE n %% 10 = 1 AND {ANSWERED_AT} < now()""",
    """INSERT INTO handoff_events (handoff_id, kind, rep_email, at)
       SELECT id, 'created', rep_email, created_at FROM handoffs
       WHERE id BETWEEN %(first)s AND %(last)s""",
    """INSERT INTO handoff_events (handoff_id, kind, rep_email, at)
       SELECT id, 'sla_missed', rep_email, sla_due_at FROM handoffs
       WHERE id BETWEEN %(first)s AND %(last)s AND escalations = 1""",
    """INSERT INTO handoff_events (handoff_id, kind, rep_email, at)
       SELECT id, status, rep_email, first_action_at FROM handoffs
       WHERE id BETWEEN %(first)s AND %(last)s AND status IN ('accepted', 'rejected')""",
    """INSERT INTO rejections (id, lead_id, reason, rep_email, rejected_at, created_at)
       SELECT %(leads)s + id, lead_id, 'no_need', rep_email, first_action_at, first_action_at
       FROM handoffs WHERE id BETWEEN %(first)s AND %(last)s AND status = 'rejected'""",
    """UPDATE handoffs SET rejection_id = %(leads)s + id
       WHERE id BETWEEN %(first)s AND %(last)s AND status = 'rejected'""",
    """INSERT INTO handoff_notifications (public_id, handoff_id, channel, purpose, recipient,
                                          status, attempts, created_at, delivered_at)
       SELECT 'n' || id, id, 'rep_email', 'handoff', rep_email, 'delivered', 1, created_at,
              created_at + (id %% 20) * interval '1 second'
       FROM handoffs WHERE id BETWEEN %(first)s AND %(last)s""",
    """INSERT INTO outcomes (crm_outcome_id, lead_id, handoff_id, kind, amount, currency,
                             occurred_at, recorded_at)
       SELECT 'o' || id, lead_id, id, 'opportunity_created', NULL, NULL,
              first_action_at + interval '3 days', first_action_at + interval '3 days'
       FROM handoffs WHERE id BETWEEN %(first)s AND %(last)s AND status = 'accepted'
        AND id %% 4 = 1 AND first_action_at + interval '3 days' < now()""",
    """INSERT INTO outcomes (crm_outcome_id, lead_id, handoff_id, kind, amount, currency,
                             occurred_at, recorded_at)
       SELECT 'w' || id, lead_id, id, 'won', 1000 + id %% 50000, 'EUR',
              first_action_at + interval '20 days', first_action_at + interval '20 days'
       FROM handoffs WHERE id BETWEEN %(first)s AND %(last)s AND status = 'accepted'
        AND id %% 8 = 1 AND first_action_at + interval '20 days' < now()""",
]

SEQUENCES = ("leads", "rejections", "enrollments", "messages", "handoffs", "sequences",
             "sequence_versions", "collateral", "collateral_versions")


def _generate(raw: str, leads: int, events: int) -> bool:
    """Generate the data unless this database holds it already (True if it did)."""
    with psycopg.connect(raw, autocommit=True) as conn:
        conn.execute(DATASET_SQL)
        kept = conn.execute("SELECT leads, events, generated_at FROM bench_reports_dataset"
                            ).fetchone()
        if kept is not None:
            if (kept[0], kept[1]) != (leads, events):
                raise SystemExit(f"this database holds {kept[0]:,} leads and {kept[1]:,} "
                                 "events: use those sizes or another --db")
            print(f"reusing {leads:,} leads and {events:,} events generated at {kept[2]}")
            return False
        conn.execute("TRUNCATE leads, users, sequences, collateral, report_counts CASCADE")
        for sql in SETUP_SQL:
            conn.execute(sql)
        step = 200_000
        for first in range(1, leads + 1, step):
            bounds = {"first": first, "last": min(first + step - 1, leads), "leads": leads}
            for sql in LEADS_SQL:
                conn.execute(sql, bounds)
            for sql in HANDOFF_SQL:
                conn.execute(sql, bounds)
        step = 1_000_000
        for first in range(1, events + 1, step):
            conn.execute(EVENTS_SQL, {"leads": leads, "first": first,
                                      "last": min(first + step - 1, events)})
        for table in SEQUENCES:
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                         f"(SELECT COALESCE(MAX(id), 1) FROM {table}))")
        conn.execute("VACUUM ANALYZE")
        conn.execute("INSERT INTO bench_reports_dataset VALUES (%s, %s, now())", (leads, events))
    return True


def _time_reports(database: Database, runs: int,
                  only: list[str] | None = None) -> list[tuple[str, float, float]]:
    today = utcnow().date()
    figures = []
    for days in (90, 365):
        period = Period(today - timedelta(days=days - 1), today)
        for name, definition in REPORTS.items():
            if only and name not in only:
                continue
            for group_by in (None, "rep") if "rep" in definition.groupings else (None,):
                query = ReportQuery(period, group_by)
                times = []
                for _ in range(runs):
                    started = time.perf_counter()
                    with database.session_scope() as session:
                        build_report(session, name, query)
                    times.append((time.perf_counter() - started) * 1000)
                label = f"{name}{' by rep' if group_by else ''}, {days} days"
                figures.append((label, statistics.median(times), _p95(times)))
    return figures


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=20, help="runs of each report")
    parser.add_argument("--only", choices=("rebuild", "reports"),
                        help="time only the rebuild, or only the reports (over the rollups a "
                             "previous run left in --db)")
    parser.add_argument("--db", metavar="NAME",
                        help="generate the data once into this database and keep it; reuse it "
                             "when it is there")
    parser.add_argument("--touched-months", type=int, default=0, metavar="N",
                        help="after storing the funnel's months, mark the last N closed ones "
                             "touched (as writers would), so the funnel computes them live")
    parser.add_argument("--report", action="append", choices=tuple(REPORTS),
                        help="time only this report (repeatable)")
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/postgres")
    memory = psutil.virtual_memory().total / 2**30
    print(f"{platform.node()}: {psutil.cpu_count()} cores, {memory:.0f} GiB, "
          f"Python {platform.python_version()}; load average {load_average()}")
    began = time.perf_counter()
    with bench_database(server, args.db) as url:
        upgrade_database(url)
        raw = make_url(url).set(drivername="postgresql").render_as_string(False)
        name = make_url(url).database
        started = time.perf_counter()
        if _generate(raw, args.leads, args.events):
            print(f"generated {args.leads:,} leads and {args.events:,} events in "
                  f"{time.perf_counter() - started:.0f} s; load average {load_average()}")
        with psycopg.connect(raw) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            facts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                     for t in ("rejections", "enrollments", "messages", "engagement_events",
                               "handoffs", "outcomes")}
        print(f"PostgreSQL {version}; commit {commit()}; facts: "
              + ", ".join(f"{t} {n:,}" for t, n in facts.items()))
        database = Database(url)
        if args.only != "reports":
            meter = CpuMeter(name).start()
            started = time.perf_counter()
            with database.session_scope() as session:
                done = rebuild(session)
            seconds = time.perf_counter() - started
            print(f"rebuild of the rollups from the facts: {done.journeys:,} journeys and "
                  f"{done.counters:,} counters in {seconds:.1f} s; {meter.stop()}; "
                  f"load average {load_average()}")
            with psycopg.connect(raw, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE report_journeys, report_counts")
        meter = CpuMeter(name).start()
        started = time.perf_counter()
        stored = refresh_funnel_months(database, today=utcnow().date())
        print(f"stored the funnel of {stored} closed cohort months (stale or missing) in "
              f"{time.perf_counter() - started:.1f} s; {meter.stop()}; "
              f"load average {load_average()}")
        if args.only == "rebuild":
            database.dispose()
            return
        if args.touched_months:
            with psycopg.connect(raw, autocommit=True) as conn:
                conn.execute(
                    "INSERT INTO report_funnel_touched (cohort) SELECT DISTINCT cohort "
                    "FROM report_funnel_months WHERE cohort >= date_trunc('month', now()) "
                    "- make_interval(months => %s)", (args.touched_months,))
            print(f"marked the last {args.touched_months} closed cohort months touched")
        meter = CpuMeter(name).start()
        started = time.perf_counter()
        figures = _time_reports(database, args.runs, args.report)
        elapsed = time.perf_counter() - started
        cpu = meter.stop()
        missed = 0
        for label, p50, p95 in figures:
            verdict = "met" if p95 < TARGET_MS else "NOT met"
            missed += verdict != "met"
            print(f"  {label:<40} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms   {verdict}")
        runs = len(figures) * args.runs
        print(f"{len(figures)} report queries x {args.runs} runs in {elapsed:.1f} s; {cpu} "
              f"({runs} reports); target p95 < {TARGET_MS:.0f} ms: "
              f"{'met by all' if not missed else f'NOT met by {missed}'}; "
              f"load average {load_average()}")
        database.dispose()
    print(f"done in {time.perf_counter() - began:.0f} s; load average {load_average()}")


if __name__ == "__main__":
    main()
