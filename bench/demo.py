"""How long `nurture seed-demo` takes to build its six months (target: under 2 minutes).

    .venv/bin/python bench/demo.py [--leads 2500] [--seed 7] [--database sqlite|postgresql]

Builds the demo into a fresh database (a file under a temporary folder for SQLite; a scratch
database on the server of $DATABASE_URL for PostgreSQL, dropped afterwards) and prints the
wall time, the CPU time of this process and of the PostgreSQL backends that served it, the
load average before and after, and what was built.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import psutil
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nurture.config import load_settings, with_secret_key
from nurture.db import Database
from nurture.demo.seeding import DEFAULT_LEADS, DEFAULT_SEED, seed_demo
from nurture.migrate import upgrade_database
from nurture.testing import scratch_database

TARGET_S = 120.0
"""The issue's target for building the six months."""

BREAKDOWNS = {
    "handoffs": "SELECT status, count(*) FROM handoffs GROUP BY status",
    "outcomes": "SELECT kind, count(*) FROM outcomes GROUP BY kind",
    "rejections": "SELECT reason, count(*) FROM rejections GROUP BY reason",
    "events": "SELECT type || CASE WHEN is_machine THEN ' (machine)' ELSE '' END, count(*) "
              "FROM engagement_events GROUP BY 1",
    "stages": "SELECT lifecycle_stage, count(*) FROM leads GROUP BY lifecycle_stage",
}
"""What the history holds, by kind: every number the reports show should be non-trivial."""

COUNTED = ("leads", "rejections", "enrollments", "messages", "engagement_events", "handoffs",
           "handoff_notifications", "outcomes")


@contextmanager
def fresh(kind: str) -> Iterator[str]:
    if kind == "postgresql":
        server = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/x")
        with scratch_database(server, prefix="nurture_bench_demo") as url:
            yield url
        return
    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite:///{folder}/demo.db"


def backend_cpu(database: Database) -> float:
    """CPU seconds of the PostgreSQL backends connected to this database now."""
    if database.dialect != "postgresql":
        return 0.0
    with database.engine.connect() as connection:
        pids = connection.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")).scalars()
        total = 0.0
        for pid in pids:
            try:
                times = psutil.Process(pid).cpu_times()
                total += times.user + times.system
            except (psutil.Error, OSError):
                pass
        return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=DEFAULT_LEADS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with fresh(args.database) as url, tempfile.TemporaryDirectory() as instance:
        upgrade_database(url)
        settings = with_secret_key(load_settings(
            {"DATABASE_URL": url, "NURTURE_INSTANCE_PATH": instance}))
        database = Database(url)
        started = time.perf_counter()
        seeded = seed_demo(database, settings, seed=args.seed, leads=args.leads,
                           until=date.today(),
                           progress=lambda moment: print(f"  {moment:%Y-%m} at "
                                                         f"{time.perf_counter() - started:.0f} s",
                                                         flush=True))
        pg_cpu = backend_cpu(database)
        with database.engine.connect() as connection:
            counts = {name: connection.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
                      for name in COUNTED}
            breakdowns = {what: dict(connection.execute(text(query)).tuples().all())
                          for what, query in BREAKDOWNS.items()}
        database.dispose()
    load_after = os.getloadavg()
    print(f"seed-demo, {args.leads:,} leads, seed {args.seed}, {args.database}: "
          f"{seeded.wall_s:.1f} s wall, {seeded.cpu_s:.1f} s CPU in this process"
          + (f" + {pg_cpu:.1f} s in PostgreSQL backends" if args.database == "postgresql" else "")
          + f"; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print("  built: " + ", ".join(f"{name} {value:,}" for name, value in counts.items()))
    for what, counted in breakdowns.items():
        print(f"  {what}: " + ", ".join(f"{key} {value:,}" for key, value in sorted(
            counted.items(), key=lambda item: -item[1])))
    print(f"  CPU per lead: {1000 * seeded.cpu_s / args.leads:.1f} ms in this process"
          + (f" + {1000 * pg_cpu / args.leads:.1f} ms in PostgreSQL"
             if args.database == "postgresql" else ""))
    verdict = "MET" if seeded.wall_s < TARGET_S else "NOT MET"
    print(f"TARGET {verdict}: {seeded.wall_s:.1f} s (target under {TARGET_S:.0f} s)")


if __name__ == "__main__":
    main()
