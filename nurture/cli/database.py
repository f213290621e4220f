"""`nurture db …`: the database schema."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from nurture.migrate import upgrade_database


@click.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Alembic revision.")
@with_appcontext
def upgrade(revision: str) -> None:
    """Migrate the database to the newest schema (idempotent)."""
    settings = current_app.extensions["nurture.settings"]
    upgrade_database(settings.database_url, revision)
    click.echo(f"database at {revision}")
