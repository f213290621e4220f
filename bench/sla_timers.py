"""SLA timer benchmark (prints figures; not a test).

On a fresh PostgreSQL database (dropped at the end): `--handoffs` open handoffs of which
`--due` have a lapsed first-action window, and as many accepted ones of which `--due` are past
their stall time, written with set-based SQL (the setting, not what is measured). An SLA
version is active with one escalation step, so a lapsed window is a reminder (an event, an
email notification row) and a stall returns the lead to nurture (a rejection, routed).

Printed:
- the dispatcher's question (`timers.due_any`, two partial-index lookups): p50/p95 over 200
  calls, with the plan PostgreSQL chose;
- firing every due timer in batches of `timers.BATCH`, one transaction each (what the
  `fire_sla_timers` job does), by one worker and by two at once (each timer once: checked);
  wall time, timers per second, and CPU per timer of this process and of the PostgreSQL
  backends (from /proc, same machine).

    .venv/bin/python bench/sla_timers.py                      # 200,000 handoffs, 1,000 of each kind due
    .venv/bin/python bench/sla_timers.py --handoffs 20000 --due 500
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta

import psutil
from sqlalchemy import func, select, text

from nurture.db import Database
from nurture.handoffs import timers
from nurture.handoffs.sla import install_sla
from nurture.migrate import upgrade_database
from nurture.models import HandoffEvent, HandoffStatus
from nurture.testing import scratch_database

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday, business hours in UTC

SLA = {
    "name": "bench",
    "first_action": {"within": "PT1H"},
    "escalation": [{"notify": ["rep"], "within": "PT1H"}],
    "on_last_lapse": "return_to_nurture",
    "stalled_in_sales_days": 5,
}


def setup(database: Database, handoffs: int, due: int) -> None:
    with database.session_scope() as session:
        sla_id = install_sla(session, SLA, now=NOW - timedelta(days=30)).id
        session.execute(text(
            "INSERT INTO users (email, role, timezone, is_active, created_at) "
            "VALUES ('rita@example.com', 'rep', 'UTC', true, :now)"), {"now": NOW})
    with database.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO leads (email, attributes, lifecycle_stage, created_at, updated_at) "
            "SELECT 'lead' || g || '@example.com', '{}', "
            "CASE WHEN g % 2 = 0 THEN 'recycled_to_sales' ELSE 'accepted_by_sales' END, "
            ":t, :t FROM generate_series(1, :n) g"), {"n": 2 * handoffs, "t": NOW})
        # even leads: open handoffs (the first `due` lapsed); odd: accepted (the first `due`
        # past their stall time); the rest due in a week
        conn.execute(text(
            "INSERT INTO handoffs (lead_id, status, rep_email, score, qualified_at, sla_due_at, "
            "next_sla_at, stalls_at, sla_id, escalations, reassignments, handoff_ms, "
            "created_at, closed_at, first_action_at) "
            "SELECT l.id, CASE WHEN l.id % 2 = 0 THEN 'open' ELSE 'accepted' END, "
            "'rita@example.com', '{\"total\": 70}', :t - interval '2 hours', "
            "CASE WHEN l.id <= 2 * :due THEN :t - interval '1 minute' "
            "     ELSE :t + interval '7 days' END, "
            "CASE WHEN l.id % 2 = 0 AND l.id <= 2 * :due THEN :t - interval '1 minute' "
            "     WHEN l.id % 2 = 0 THEN :t + interval '7 days' END, "
            "CASE WHEN l.id % 2 = 1 AND l.id <= 2 * :due THEN :t - interval '1 minute' "
            "     WHEN l.id % 2 = 1 THEN :t + interval '7 days' END, "
            ":sla, 0, 0, 100, :t - interval '2 hours', "
            "CASE WHEN l.id % 2 = 1 THEN :t - interval '1 hour' END, "
            "CASE WHEN l.id % 2 = 1 THEN :t - interval '1 hour' END "
            "FROM leads l"), {"t": NOW, "due": due, "sla": sla_id})
        conn.execute(text("ANALYZE"))


def backend_cpu(database: Database) -> float:
    """CPU seconds of every PostgreSQL backend of this database (same machine, /proc)."""
    with database.engine.connect() as conn:
        pids = conn.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")).scalars()
        total = 0.0
        for pid in pids:
            try:
                times = psutil.Process(pid).cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        return total


def fire_all(database: Database, workers: int) -> tuple[float, int]:
    fired: list[int] = []
    barrier = threading.Barrier(workers)

    def work() -> None:
        barrier.wait()
        while True:
            with database.session_scope() as session:
                done = timers.fire_due_timers(session, now=NOW)
            if not done:
                return
            fired.append(done.escalations + done.stalls)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, sum(fired)


def run(server: str, handoffs: int, due: int, workers: int) -> None:
    with scratch_database(server, prefix="bench_sla") as url:
        upgrade_database(url)
        database = Database(url)
        started = time.perf_counter()
        setup(database, handoffs, due)
        print(f"setup: {2 * handoffs:,} handoffs ({handoffs:,} open, {handoffs:,} accepted), "
              f"{due:,} of each due, in {time.perf_counter() - started:.1f} s")
        with database.session_scope() as session:
            plan = session.execute(text(
                "EXPLAIN SELECT id FROM handoffs WHERE status = 'open' AND next_sla_at <= :t "
                "LIMIT 1"), {"t": NOW}).scalars().all()
            samples = []
            for _ in range(200):
                began = time.perf_counter()
                assert timers.due_any(session, now=NOW)
                samples.append((time.perf_counter() - began) * 1000)
        samples.sort()
        print(f"due_any: p50 {statistics.median(samples):.2f} ms, "
              f"p95 {samples[int(len(samples) * 0.95)]:.2f} ms; plan: "
              f"{' / '.join(line.strip() for line in plan)}")
        cpu_before, pg_before = time.process_time(), backend_cpu(database)
        wall, fired = fire_all(database, workers)
        cpu, pg = time.process_time() - cpu_before, backend_cpu(database) - pg_before
        with database.session_scope() as session:
            reminders = session.execute(select(func.count()).select_from(HandoffEvent)
                                        .where(HandoffEvent.kind == "sla_missed")).scalar_one()
            once = session.execute(select(func.count(func.distinct(HandoffEvent.handoff_id)))
                                   .where(HandoffEvent.kind == "sla_missed")).scalar_one()
            stalled = session.execute(text("SELECT count(*) FROM handoffs WHERE status = :s"),
                                      {"s": HandoffStatus.STALLED.value}).scalar_one()
        print(f"fire ({workers} worker{'s' if workers > 1 else ''} at once): {fired:,} timers "
              f"in {wall:.2f} s = {fired / wall:,.0f}/s; CPU per timer: this process "
              f"{cpu / fired * 1000:.2f} ms, PostgreSQL {pg / fired * 1000:.2f} ms; "
              f"reminders {reminders:,} for {once:,} handoffs, stalled {stalled:,}")
        assert reminders == once == due and stalled == due, "a timer fired twice or not at all"
        database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handoffs", type=int, default=100_000,
                        help="open handoffs, and as many accepted ones")
    parser.add_argument("--due", type=int, default=1000, help="due timers of each kind")
    parser.add_argument("--database", default=os.environ.get(
        "DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for workers in (1, 2):
        run(args.database, args.handoffs, args.due, workers)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
