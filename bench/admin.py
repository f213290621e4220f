"""Web admin benchmark (prints figures; not a test).

The p50 and p95 server time of the admin's pages, through the Flask test client signed in as
a marketer (the request in the app, rendering included; no network, no browser): the lead
list (its first page and a deep one), a lead page, the sequence list, the dashboard and each
report page (ungrouped, and the funnel grouped by rep). Target (issue #8): p95 under 200 ms.
A page whose endpoint does not exist yet is listed as "not built".

Data: the data of bench/reports.py (LEADS leads rejected over the last 365 days, 80% enrolled
and emailed, EVENTS engagement events, one lead in 10 recycled to sales, outcomes), generated
set-based in SQL, then the report rollups rebuilt from it and the funnel's closed months
stored. On a fresh database created on the server of DATABASE_URL (default
postgresql://postgres@127.0.0.1/postgres), dropped at the end; or, with `--db NAME`, in the
database NAME, generated once and kept (a later run with the same sizes reuses it, and its
rollups unless --rebuild).

    .venv/bin/python bench/admin.py                              # 1,000,000 leads, 10,000,000 events
    .venv/bin/python bench/admin.py --db nurture_bench_admin     # keep and reuse the data
    .venv/bin/python bench/admin.py --leads 20000 --events 200000 --runs 10
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from html import unescape
from pathlib import Path
from typing import Any

import psutil
import psycopg
from sqlalchemy.engine import make_url


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"bench_{name}",
                                                  Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_reports = _load("reports")
CpuMeter, bench_database, load_average, commit = (
    _reports.CpuMeter, _reports.bench_database, _reports.load_average, _reports.commit)

TARGET_MS = 200.0
"""p95 of every page (issue #8)."""

PASSWORD = "bench admin passphrase"
MARKETER = "bench-marketer@bench.example"
DEEP = 0.9
"""The deep page of the lead list starts this far down the list (newest first)."""


REASONS = ("no_budget", "no_authority", "no_need", "bad_timing", "not_icp")


def sequence_document(n: int) -> dict[str, Any]:
    """A valid document for bench/reports.py's sequence n (its data names steps e1-e3, w1)."""
    email = {"type": "email", "template": "check-in"}
    return {"key": f"sequence-{n}", "name": f"Sequence {n}",
            "entry": {"reasons": [REASONS[(n - 1) % len(REASONS)]]},
            "stages": [{"key": "main", "name": "Main", "steps": [
                {**email, "id": "e1"}, {"type": "wait", "id": "w1", "duration": "P7D"},
                {**email, "id": "e2"}, {"type": "wait", "id": "w2", "duration": "P7D"},
                {**email, "id": "e3"}]}]}


def _documents(raw: str) -> None:
    """bench/reports.py stores '{}' as each sequence's document; the sequence list reads them."""
    with psycopg.connect(raw, autocommit=True) as conn:
        for (n,) in conn.execute("SELECT id FROM sequences ORDER BY id").fetchall():
            conn.execute("UPDATE sequence_versions SET document = %s::jsonb "
                         "WHERE sequence_id = %s", (json.dumps(sequence_document(n)), n))


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def _rollups(raw: str, url: str, rebuild_them: bool) -> None:
    """Rebuild the rollups when asked or when there are none, then store the funnel's months."""
    from nurture.clock import utcnow
    from nurture.db import Database
    from nurture.reports.funnel_months import refresh as refresh_funnel_months
    from nurture.reports.rebuild import rebuild

    with psycopg.connect(raw) as conn:
        journeys = conn.execute("SELECT count(*) FROM report_journeys").fetchone()[0]
    database = Database(url)
    try:
        if rebuild_them or not journeys:
            started = time.perf_counter()
            with database.session_scope() as session:
                done = rebuild(session)
            print(f"rebuilt the rollups: {done.journeys:,} journeys, {done.counters:,} counters "
                  f"in {time.perf_counter() - started:.1f} s")
            with psycopg.connect(raw, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE report_journeys, report_counts")
        else:
            print(f"reusing the rollups ({journeys:,} journeys)")
        started = time.perf_counter()
        stored = refresh_funnel_months(database, today=utcnow().date())
        print(f"stored the funnel of {stored} closed cohort months in "
              f"{time.perf_counter() - started:.1f} s")
    finally:
        database.dispose()


def _marketer(url: str) -> None:
    from sqlalchemy import delete

    from nurture.accounts.services import create_user
    from nurture.clock import utcnow
    from nurture.db import Database
    from nurture.models import Role, User

    database = Database(url)
    try:
        with database.session_scope() as session:
            session.execute(delete(User).where(User.email == MARKETER))
            create_user(session, MARKETER, Role.MARKETER, password=PASSWORD, name="Bench",
                        now=utcnow())
    finally:
        database.dispose()


def _signed_in(app: Any) -> Any:
    client = app.test_client()
    page = client.get("/auth/sign-in").text
    token = (re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
             or re.search(r'name="csrf_token" value="([^"]+)"', page))
    assert token, "no CSRF token on the sign-in page"
    answer = client.post("/auth/sign-in", data={"csrf_token": token.group(1), "email": MARKETER,
                                                "password": PASSWORD, "next": ""})
    assert answer.status_code == 302, f"sign-in answered {answer.status_code}"
    return client


def _deep_lead_page(client: Any, leads: int) -> str | None:
    """The lead list's page that starts DEEP down the list: the first page's link to the
    next one, its cursor pointed at a lead that far down (newest first); None without one."""
    page = client.get("/admin/leads").text
    link = re.search(r'href="(/admin/leads\?[^"]*after=([^"&]+)[^"]*)"', page)
    if link is None:
        return None
    href, cursor = unescape(link.group(1)), link.group(2)
    try:
        sort, _key, _id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        return href  # another cursor: the second page is the deepest this can name
    if sort != "newest":
        return href
    deep = max(1, int(leads * (1 - DEEP)))
    token = base64.urlsafe_b64encode(json.dumps([sort, deep, deep], separators=(",", ":"))
                                     .encode()).decode().rstrip("=")
    return href.replace(cursor, token)


def _pages(client: Any, leads: int) -> list[tuple[str, str, str | None]]:
    """(label, endpoint, path or None when it cannot be named) of every page timed."""
    from nurture.web.admin.reports import PAGES

    pages: list[tuple[str, str, str | None]] = [
        ("dashboard", "admin.dashboard", "/admin/"),
        ("lead list, first page", "admin.leads", "/admin/leads"),
        ("lead list, deep page", "admin.leads", None),
        ("lead page", "admin.lead_detail", "/admin/leads/11"),
        ("sequence list", "admin.sequences", "/admin/sequences"),
    ]
    if "admin.leads" in client.application.view_functions:
        pages[2] = ("lead list, deep page", "admin.leads", _deep_lead_page(client, leads))
    pages.append(("report index", "admin.reports", "/admin/reports"))
    for slug in PAGES:
        pages.append((f"report: {slug}", "admin.report_page", f"/admin/reports/{slug}"))
    pages.append(("report: funnel by rep", "admin.report_page",
                  "/admin/reports/funnel?group_by=rep"))
    pages.append(("report: trends by source", "admin.report_page",
                  "/admin/reports/trends?group_by=source"))
    return pages


def _time(get: Callable[[], Any], runs: int) -> tuple[float, float, float, int]:
    """p50 and p95 wall time, p50 of this process's CPU time (the app's share of a request:
    on a busy machine wall time waits for a core, CPU time does not), the last status."""
    times, cpu, status = [], [], 0
    get()  # warm: templates compiled, caches filled
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        status = get().status_code
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
    return statistics.median(times), _p95(times), statistics.median(cpu), status


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=20, help="requests of each page")
    parser.add_argument("--db", metavar="NAME",
                        help="generate the data once into this database and keep it; reuse it "
                             "when it is there")
    parser.add_argument("--rebuild", action="store_true",
                        help="rebuild the report rollups even when a kept database has them")
    parser.add_argument("--page", action="append", metavar="LABEL",
                        help="time only the pages whose label contains this (repeatable)")
    args = parser.parse_args()
    from nurture import create_app
    from nurture.migrate import upgrade_database

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
        if _reports._generate(raw, args.leads, args.events):
            print(f"generated {args.leads:,} leads and {args.events:,} events in "
                  f"{time.perf_counter() - started:.0f} s; load average {load_average()}")
            args.rebuild = True
        _documents(raw)
        _rollups(raw, url, args.rebuild)
        _marketer(url)
        with psycopg.connect(raw) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        print(f"PostgreSQL {version}; commit {commit()}")
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench-" + "0" * 40,
                          "NURTURE_INSTANCE_PATH": str(Path(os.environ.get(
                              "NURTURE_INSTANCE_PATH", "instance")).resolve()),
                          **({"REDIS_URL": os.environ["REDIS_URL"]}
                             if os.environ.get("REDIS_URL") else {})})
        client = _signed_in(app)
        meter = CpuMeter(name).start()
        missed, missing = 0, []
        for label, endpoint, path in _pages(client, args.leads):
            if args.page and not any(p in label for p in args.page):
                continue
            if endpoint not in app.view_functions:
                missing.append(label)
                print(f"  {label:<32} not built ({endpoint})")
                continue
            if path is None:
                print(f"  {label:<32} not timed: the first page has no link to a next one")
                continue
            p50, p95, cpu, status = _time(lambda path=path: client.get(path), args.runs)
            verdict = ("met" if p95 < TARGET_MS else "NOT met") if status == 200 \
                else f"answered {status}"
            missed += verdict != "met"
            print(f"  {label:<32} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms   "
                  f"(app CPU p50 {cpu:6.1f} ms)   {verdict}")
        print(f"{args.runs} requests a page; {meter.stop()}; target p95 < {TARGET_MS:.0f} ms: "
              f"{'met by all' if not missed else f'NOT met by {missed}'}"
              f"{f'; not built: {len(missing)}' if missing else ''}; "
              f"load average {load_average()}")
        app.extensions["nurture.db"].dispose()
    print(f"done in {time.perf_counter() - began:.0f} s; load average {load_average()}")


if __name__ == "__main__":
    main()
