"""`nurture sequences …` and `nurture collateral …`: the drip engine from the command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from campaigns import collateral as collateral_service
from campaigns import sequences as service
from campaigns.documents import dump_document, parse_document_text
from nurture.accounts.services import Actor
from nurture.clock import utcnow
from nurture.db import Database
from nurture.errors import DomainError, InvalidInput
from nurture.models import Role, Sequence

ROLE_CHOICE = click.Choice([r.value for r in Role])


def _db() -> Database:
    return current_app.extensions["nurture.db"]


def _fail(exc: DomainError) -> click.ClickException:
    errors = getattr(exc, "errors", None) or {}
    lines = [str(exc), *(f"  {path}: {m}" for path, ms in errors.items() for m in ms)]
    return click.ClickException("\n".join(lines))


@click.group()
def sequences() -> None:
    """Sequence documents (YAML or JSON)."""


@sequences.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--activate", is_flag=True, help="Make the imported version live.")
@with_appcontext
def import_sequence(file: Path, activate: bool) -> None:
    """Import a sequence document; a changed document becomes a new version."""
    text = file.read_bytes()
    try:
        data = parse_document_text(text, yaml_format=file.suffix.lower() in (".yaml", ".yml"))
    except ValueError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    now = utcnow()
    try:
        with _db().session_scope() as session:
            imported = service.import_sequence(session, data, actor="cli", now=now)
            sequence = imported.sequence
            what = "new version" if imported.created_version else "unchanged"
            click.echo(f"sequence {sequence.id} {sequence.key!r} version "
                       f"{imported.version.version} ({what}); status {sequence.status.value}")
        if activate:  # its own transaction: a refused activation keeps the import
            with _db().session_scope() as session:
                service.activate_sequence(session, sequence.id, now=now, today=now.date())
                click.echo(f"sequence {sequence.id} is active")
    except DomainError as exc:
        raise _fail(exc) from None


@sequences.command("export")
@click.argument("sequence_id", type=int)
@click.option("--version", "number", type=int, help="A version number (default: newest).")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml",
              show_default=True)
@with_appcontext
def export_sequence(sequence_id: int, number: int | None, fmt: str) -> None:
    """Print a sequence document; importing it again changes nothing."""
    try:
        with _db().session_scope() as session:
            version = service.get_version(session, service.get_sequence(session, sequence_id).id,
                                          number)
            sys.stdout.write(dump_document(version.document, yaml_format=fmt == "yaml"))
    except DomainError as exc:
        raise _fail(exc) from None


@sequences.command("list")
@with_appcontext
def list_sequences() -> None:
    """Sequences with their status and versions."""
    with _db().session_scope() as session:
        for sequence in session.execute(select(Sequence).order_by(Sequence.priority, Sequence.id)).scalars():
            s = service.sequence_summary(session, sequence)
            click.echo(f"{s['id']}\t{s['status']}\tv{s['latest_version']} (live v{s['active_version']})"
                       f"\t{s['key']}\t{s['name']}")


@sequences.command("activate")
@click.argument("sequence_id", type=int)
@with_appcontext
def activate(sequence_id: int) -> None:
    """Make the newest version live (refused while it features unapproved collateral)."""
    now = utcnow()
    try:
        with _db().session_scope() as session:
            sequence = service.activate_sequence(session, sequence_id, now=now, today=now.date())
            click.echo(f"sequence {sequence.id} {sequence.key!r} is active")
    except DomainError as exc:
        raise _fail(exc) from None


@click.group()
def collateral() -> None:
    """Collateral and its sales approval."""


@collateral.command("create")
@click.option("--key", required=True)
@click.option("--title", required=True)
@click.option("--url", required=True)
@click.option("--funnel-stage", type=click.Choice(["awareness", "consideration", "decision"]),
              default="consideration", show_default=True)
@click.option("--expires-on", type=click.DateTime(formats=["%Y-%m-%d"]))
@with_appcontext
def create_collateral(key: str, title: str, url: str, funnel_stage: str, expires_on) -> None:  # type: ignore[no-untyped-def]
    """Create an asset (its first version is a draft)."""
    from pydantic import ValidationError

    from campaigns.schemas import CollateralIn
    from nurture.fields import field_errors

    try:
        body = CollateralIn.model_validate({
            "key": key, "title": title, "url": url, "funnel_stage": funnel_stage,
            "expires_on": expires_on.date() if expires_on else None,
        }, strict=False)
    except ValidationError as exc:
        raise _fail(InvalidInput("invalid collateral", field_errors(exc))) from None
    fields = body.fields()
    fields.pop("key")
    try:
        with _db().session_scope() as session:
            version = collateral_service.create_collateral(
                session, key, fields, actor=Actor(email="cli", role=Role.MARKETER), now=utcnow())
            click.echo(f"collateral {key!r} version {version.version} (id {version.id}) is a draft")
    except DomainError as exc:
        raise _fail(exc) from None


@collateral.command("review")
@click.argument("version_id", type=int)
@click.argument("action", type=click.Choice(["submit", "approve", "request_changes", "retire"]))
@click.option("--as-role", "role", type=ROLE_CHOICE, required=True,
              help="The role the CLI acts as (approve needs sales_approver).")
@click.option("--by", "email", required=True, help="Who takes the action (recorded).")
@click.option("--comment")
@with_appcontext
def review(version_id: int, action: str, role: str, email: str, comment: str | None) -> None:
    """Move a collateral version through its approval workflow."""
    try:
        with _db().session_scope() as session:
            version = collateral_service.transition(
                session, version_id, action, actor=Actor(email=email, role=Role(role)),
                comment=comment, now=utcnow())
            click.echo(f"version {version.id} is {version.status.value}")
    except DomainError as exc:
        raise _fail(exc) from None


COMMANDS = [sequences, collateral]
