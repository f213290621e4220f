"""`nurture reports …`: the report rollups."""

from __future__ import annotations

import time

import click
from flask import current_app
from flask.cli import with_appcontext

from nurture.clock import utcnow
from nurture.reports.funnel_months import refresh as refresh_funnel_months
from nurture.reports.rebuild import rebuild as rebuild_rollups


@click.group()
def reports() -> None:
    """The numbers both teams know (docs/REPORTS.md)."""


@reports.command("rebuild")
@with_appcontext
def rebuild() -> None:
    """Recompute the report rollups from the facts, in one transaction."""
    started = time.monotonic()
    database = current_app.extensions["nurture.db"]
    with database.session_scope() as session:
        done = rebuild_rollups(session)
    click.echo(f"rebuilt {done.journeys} journeys and {done.counters} counters "
               f"in {time.monotonic() - started:.1f} s")
    started = time.monotonic()
    stored = refresh_funnel_months(database, today=utcnow().date())
    click.echo(f"stored the funnel of {stored} closed cohort months "
               f"in {time.monotonic() - started:.1f} s")


COMMANDS = [reports]
