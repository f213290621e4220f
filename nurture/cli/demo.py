"""`nurture seed-demo`: six months of demo history in an empty database (nurture/demo)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

import click
from flask import current_app
from flask.cli import with_appcontext

from nurture.clock import utcnow
from nurture.config import Settings
from nurture.db import Database
from nurture.demo.seeding import DEFAULT_LEADS, DEFAULT_SEED, Seeded, seed_demo
from nurture.demo.simulation import Interrupted
from nurture.errors import Conflict


def run_demo(database: Database, settings: Settings, *, seed: int, leads: int,
             until: date, stop: Callable[[], bool] = lambda: False) -> Seeded:
    """Seed, printing a line per simulated month; ClickException on a non-empty database
    or when `stop` said so."""
    def progress(moment: datetime) -> None:
        click.echo(f"  demo: {moment:%Y-%m} …", err=True)

    try:
        return seed_demo(database, settings, seed=seed, leads=leads, until=until,
                         progress=progress, stop=stop)
    except Conflict as exc:
        raise click.ClickException(str(exc)) from None
    except Interrupted as exc:
        raise click.ClickException(f"demo data interrupted: {exc}") from None


def describe(seeded: Seeded, *, leads: int, seed: int) -> str:
    """The demo's figures and its sign-in, as printed after seeding."""
    lines = [
        f"demo data: {leads:,} leads over {seeded.start:%Y-%m-%d} to {seeded.end:%Y-%m-%d} "
        f"(seed {seed}) built in {seeded.wall_s:.1f} s ({seeded.cpu_s:.1f} s CPU in this "
        f"process); {seeded.emails_sunk:,} emails and rep notifications went to no one",
        "demo sign-in (passwords shown only this once):",
    ]
    for sign_in in seeded.sign_ins:
        team = f", team {sign_in.team}" if sign_in.team else ""
        lines.append(f"  {sign_in.role.value:<15} {sign_in.email:<32} {sign_in.password}"
                     f"  ({sign_in.name}{team})")
    return "\n".join(lines)


@click.command("seed-demo")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True,
              help="Random seed: the same seed builds the same history.")
@click.option("--leads", type=click.IntRange(1, 100_000), default=DEFAULT_LEADS,
              show_default=True, help="How many leads sales gives back over the six months.")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="The day the history ends at (UTC midnight). Default: today.")
@with_appcontext
def seed_demo_command(seed: int, leads: int, until: datetime | None) -> None:
    """Build six months of demo history in an empty database, through the real services
    with a simulated clock; nothing is sent to anyone (no SMTP, no CRM webhook)."""
    settings: Settings = current_app.extensions["nurture.settings"]
    database: Database = current_app.extensions["nurture.db"]
    day = until.date() if until else utcnow().date()
    seeded = run_demo(database, settings, seed=seed, leads=leads, until=day)
    click.echo(describe(seeded, leads=leads, seed=seed))


COMMANDS = [seed_demo_command]
